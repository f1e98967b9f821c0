//! Conv2D with the images of a batch spread over the worker threads. Each image is convolved
//! directly by AVX-512 kernels when the processor and the shape allow (`direct.rs`), otherwise as
//! im2col + GEMM (`im2col.rs`); bias and activation are fused into the output pass either way.
//! Kernel layout is Keras's (kh, kw, in, filters).

mod image;

use super::window::Axis;
use super::{
    kernel_and_bias, kernel_and_bias_mut, workers, Build, Layer, LayerConfig, Mode, Padding, Pair,
    Param,
};
use crate::nn::activation::Activation;
use crate::nn::init::glorot_uniform;
use crate::nn::kernels::conv::direct;
use crate::nn::kernels::conv::pool::Unpool;
use crate::nn::shape::Shape;
use crate::nn::simd::Level;
use image::{DirectPlan, Pass, Scratch};
use rayon::prelude::*;

pub struct Conv2D {
    name: String,
    channels: usize,
    filters: usize,
    rows: Axis,
    cols: Axis,
    padding: Padding,
    activation: Activation,
    kernel: Param,
    bias: Option<Param>,
    /// The direct kernels' plan, when they handle this layer on this processor.
    direct: Option<DirectPlan>,
    /// The kernel flipped and transposed for the direct input gradient, rebuilt each backward.
    flipped: Vec<f32>,
    /// With a fused max-pool: which corner of each window won, per pooled value of the batch.
    corner: Vec<u8>,
    /// Each image of the last forward batch zero-padded (direct path), reused by backward.
    padded_inputs: Vec<Vec<f32>>,
    scratch: Vec<Scratch>,
}

/// The geometry and arguments of a Conv2D, checked.
pub struct Conv2DSpec {
    pub filters: usize,
    pub kernel: (usize, usize),
    pub strides: (usize, usize),
    pub padding: Padding,
    pub activation: Activation,
    pub use_bias: bool,
}

impl Conv2D {
    pub(crate) fn from_config(config: &LayerConfig, b: Build) -> Result<Self, String> {
        let LayerConfig::Conv2D {
            filters,
            kernel_size,
            strides,
            padding,
            activation,
            use_bias,
            ..
        } = *config
        else {
            return Err(Build::not_for("Conv2D", config));
        };
        let input = b.image("Conv2D")?;
        if filters == 0 {
            return Err("argument `filters` must be at least 1, got 0".into());
        }
        let kernel = Build::positive("kernel_size", kernel_size)?;
        let weights = (kernel.0 * kernel.1)
            .saturating_mul(input.2)
            .saturating_mul(filters);
        b.check_room(weights, weights)?;
        let spec = Conv2DSpec {
            filters,
            kernel,
            strides: Build::positive("strides", strides)?,
            padding,
            activation,
            use_bias,
        };
        Conv2D::new(b.name, input, spec, b.seed).ok_or_else(|| {
            format!(
                "a {kernel:?} kernel does not fit the {} input with padding \"valid\"",
                b.input
            )
        })
    }

    /// `None` when the kernel does not fit the input with "valid" padding.
    pub fn new(
        name: String,
        input: (usize, usize, usize),
        spec: Conv2DSpec,
        seed: u32,
    ) -> Option<Self> {
        let (kh, kw) = spec.kernel;
        let fan_in = kh * kw * input.2;
        let values = glorot_uniform(fan_in * spec.filters, fan_in, kh * kw * spec.filters, seed);
        let bias = spec.use_bias.then(|| vec![0.0; spec.filters]);
        Self::with_weights(name, input, spec, values, bias)
    }

    /// A Conv2D with given weights: `kernel` in Keras's (kh, kw, in, filters) layout, `bias`
    /// (one per filter) when `spec.use_bias`. `None` when the kernel does not fit the input with
    /// "valid" padding or the weights do not have the spec's sizes.
    pub fn with_weights(
        name: String,
        input: (usize, usize, usize),
        spec: Conv2DSpec,
        kernel: Vec<f32>,
        bias: Option<Vec<f32>>,
    ) -> Option<Self> {
        let (h, w, c) = input;
        let (kh, kw) = spec.kernel;
        let rows = Axis::new(h, kh, spec.strides.0, spec.padding)?;
        let cols = Axis::new(w, kw, spec.strides.1, spec.padding)?;
        let sizes_fit = kernel.len() == kh * kw * c * spec.filters
            && bias.as_ref().map(Vec::len) == spec.use_bias.then_some(spec.filters);
        if !sizes_fit {
            return None;
        }
        let kernel = Param::new("kernel", vec![kh, kw, c, spec.filters], kernel);
        let bias = bias.map(|b| Param::new("bias", vec![spec.filters], b));
        let direct = DirectPlan::new(rows, cols, c, spec.filters, Level::selected());
        Some(Conv2D {
            name,
            channels: c,
            filters: spec.filters,
            rows,
            cols,
            padding: spec.padding,
            activation: spec.activation,
            kernel,
            bias,
            direct,
            flipped: Vec::new(),
            corner: Vec::new(),
            padded_inputs: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// The same layer with its direct kernels at `level`.
    #[cfg(test)]
    pub(crate) fn at_level(mut self, level: Level) -> Self {
        let (rows, cols) = (self.rows, self.cols);
        self.direct = DirectPlan::new(rows, cols, self.channels, self.filters, level);
        self
    }

    fn ensure_scratch(&mut self) {
        let n = workers();
        if self.scratch.len() != n {
            self.scratch = (0..n).map(|_| Scratch::default()).collect();
        }
    }
}

impl Conv2D {
    fn pass(&self) -> Pass<'_> {
        Pass {
            rows: self.rows,
            cols: self.cols,
            channels: self.channels,
            filters: self.filters,
            activation: self.activation,
            kernel: &self.kernel.value,
            bias: self.bias.as_ref().map(|b| &b.value[..]),
            direct: self.direct.as_ref(),
            flipped: &self.flipped,
        }
    }
}

impl Layer for Conv2D {
    fn name(&self) -> &str {
        &self.name
    }

    fn config(&self) -> LayerConfig {
        LayerConfig::Conv2D {
            filters: self.filters,
            kernel_size: Pair::Two([self.rows.window, self.cols.window]),
            strides: Pair::Two([self.rows.stride, self.cols.stride]),
            padding: self.padding,
            activation: self.activation,
            use_bias: self.bias.is_some(),
            name: Some(self.name.clone()),
        }
    }

    fn output_shape(&self) -> Shape {
        Shape::image(self.rows.output, self.cols.output, self.filters)
    }

    fn params(&self) -> Vec<&Param> {
        kernel_and_bias(&self.kernel, &self.bias)
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        kernel_and_bias_mut(&mut self.kernel, &mut self.bias)
    }

    fn forward(&mut self, x: &[f32], y: &mut [f32], batch: usize, _mode: Mode) {
        self.ensure_scratch();
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut padded = self.take_padded_inputs(batch);
        let pass = self.pass();
        let (in_size, out_size) = (pass.in_size(), pass.out_size());
        let (x, y) = (&x[..batch * in_size], &mut y[..batch * out_size]);
        let images = y
            .chunks_exact_mut(out_size)
            .zip(x.chunks_exact(in_size))
            .zip(padded.iter_mut());
        if batch < scratch.len() {
            for ((out, image), padded) in images {
                pass.forward_spread(image, padded, out, &mut scratch);
            }
        } else {
            for_each_on_workers(
                images.collect(),
                &mut scratch,
                |((out, image), padded), s| {
                    pass.forward_image(image, padded, out, s);
                },
            );
        }
        self.scratch = scratch;
        self.padded_inputs = padded;
    }

    fn backward(
        &mut self,
        x: &[f32],
        y: &[f32],
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        batch: usize,
    ) {
        self.begin_backward(dx.is_some());
        let mut scratch = std::mem::take(&mut self.scratch);
        let pass = self.pass();
        let padded_inputs = &self.padded_inputs;
        let (in_size, out_size) = (pass.in_size(), pass.out_size());
        let images = dy[..batch * out_size]
            .chunks_exact_mut(out_size)
            .zip(per_image(dx, batch, in_size))
            .enumerate();
        for_each_on_workers(images.collect(), &mut scratch, |(n, (dout, dimage)), s| {
            let image = &x[n * in_size..][..in_size];
            let out = &y[n * out_size..][..out_size];
            pass.backward_image(image, &padded_inputs[n], out, dout, dimage, s);
        });
        self.scratch = scratch;
        self.finish_backward();
    }
}

/// The 2×2 max-pool fused into the convolution (the model's plan decides when).
impl Conv2D {
    /// Whether this layer can run a following 2×2 max-pool itself ([`Conv2D::forward_pooled`]),
    /// so that its own, four times larger, output is never stored.
    pub(crate) fn pools_2x2(&self) -> bool {
        let activation_fuses = matches!(self.activation, Activation::Relu | Activation::Linear);
        self.direct.is_some() && activation_fuses && self.rows.output >= 2 && self.cols.output >= 2
    }

    /// Forward followed by the 2×2 max-pool: `pooled` receives the pool's output.
    pub(crate) fn forward_pooled(&mut self, x: &[f32], pooled: &mut [f32], batch: usize) {
        self.ensure_scratch();
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut corner = std::mem::take(&mut self.corner);
        let mut padded = self.take_padded_inputs(batch);
        let pass = self.pass();
        let plan = pass
            .direct
            .expect("pools_2x2 holds only with the direct kernels");
        let (in_size, pooled_size) = (pass.in_size(), pass.pooled_size());
        corner.resize(batch * pooled_size, 0);
        let (x, pooled) = (&x[..batch * in_size], &mut pooled[..batch * pooled_size]);
        let images = pooled
            .chunks_exact_mut(pooled_size)
            .zip(corner.chunks_exact_mut(pooled_size))
            .zip(x.chunks_exact(in_size))
            .zip(padded.iter_mut());
        if batch < scratch.len() {
            // Fewer images than workers: each image's pooled rows are spread over them instead.
            let prow_len = pooled_size / (pass.rows.output / 2);
            let per_worker = (pass.rows.output / 2).div_ceil(scratch.len());
            for (((pooled, corner), image), padded) in images {
                pass.pad(plan, image, padded);
                let padded = &padded[..];
                pooled
                    .par_chunks_mut(per_worker * prow_len)
                    .zip(corner.par_chunks_mut(per_worker * prow_len))
                    .zip(scratch.par_iter_mut())
                    .enumerate()
                    .for_each(|(i, ((pooled, corner), s))| {
                        let prows = i * per_worker..i * per_worker + pooled.len() / prow_len;
                        pass.forward_pooled_rows(plan, padded, prows, pooled, corner, &mut s.pair);
                    });
            }
        } else {
            let prows = 0..pass.rows.output / 2;
            for_each_on_workers(images.collect(), &mut scratch, |item, s| {
                let (((pooled, corner), image), padded) = item;
                pass.pad(plan, image, padded);
                pass.forward_pooled_rows(plan, padded, prows.clone(), pooled, corner, &mut s.pair);
            });
        }
        self.scratch = scratch;
        self.corner = corner;
        self.padded_inputs = padded;
    }

    /// Backward from the pool's output gradient `dpooled`, given the pool's outputs `pooled`.
    pub(crate) fn backward_pooled(
        &mut self,
        _x: &[f32], // its padded copy from forward is what backward reads
        pooled: &[f32],
        dpooled: &[f32],
        dx: Option<&mut [f32]>,
        batch: usize,
    ) {
        self.begin_backward(dx.is_some());
        let mut scratch = std::mem::take(&mut self.scratch);
        let pass = self.pass();
        let plan = pass
            .direct
            .expect("pools_2x2 holds only with the direct kernels");
        let (in_size, pooled_size) = (pass.in_size(), pass.pooled_size());
        let (corner, padded_inputs) = (&self.corner, &self.padded_inputs);
        let images = per_image(dx, batch, in_size).into_iter().enumerate();
        for_each_on_workers(images.collect(), &mut scratch, |(n, dimage), s| {
            let at = n * pooled_size..(n + 1) * pooled_size;
            let unpool = Unpool {
                pooled: &pooled[at.clone()],
                grad: &dpooled[at.clone()],
                corner: &corner[at],
                relu: pass.activation == Activation::Relu,
                size: (pass.rows.output, pass.cols.output, pass.filters),
                level: plan.geometry.level,
            };
            pass.backward_pooled_image(plan, &padded_inputs[n], &unpool, dimage, s);
        });
        self.scratch = scratch;
        self.finish_backward();
    }
}

impl Conv2D {
    /// One padded-image buffer per image of the batch, taken out of the layer for the pass.
    fn take_padded_inputs(&mut self, batch: usize) -> Vec<Vec<f32>> {
        let mut padded = std::mem::take(&mut self.padded_inputs);
        padded.resize_with(batch.max(padded.len()), Vec::new);
        padded
    }

    /// Worker buffers with their gradients zeroed, and the flipped kernel when the direct input
    /// gradient will run.
    fn begin_backward(&mut self, wants_dx: bool) {
        self.ensure_scratch();
        let kernel_len = self.kernel.value.len();
        for scratch in &mut self.scratch {
            scratch.reset_grads(kernel_len, self.filters);
        }
        if wants_dx && self.direct.as_ref().is_some_and(|d| d.input_grad.is_some()) {
            let shape = (
                self.rows.window,
                self.cols.window,
                self.channels,
                self.filters,
            );
            direct::flip_kernel(&self.kernel.value, shape, &mut self.flipped);
        }
    }

    /// Sums the workers' partial gradients into the parameters.
    fn finish_backward(&mut self) {
        let parts = &self.scratch;
        reduce_into(&mut self.kernel.grad, parts.iter().map(|s| &s.dkernel[..]));
        if let Some(bias) = self.bias.as_mut() {
            reduce_into(&mut bias.grad, parts.iter().map(|s| &s.dbias[..]));
        }
    }
}

/// Runs `work` on every item, the items cut into one contiguous run per worker, each run with
/// that worker's scratch.
fn for_each_on_workers<T: Send>(
    items: Vec<T>,
    scratch: &mut [Scratch],
    work: impl Fn(T, &mut Scratch) + Sync,
) {
    let per_worker = items.len().div_ceil(scratch.len()).max(1);
    items
        .into_par_iter()
        .chunks(per_worker)
        .zip(scratch.par_iter_mut())
        .for_each(|(run, scratch)| run.into_iter().for_each(|item| work(item, scratch)));
}

/// Each image's part of the input gradient, or `None` for every image when it is not wanted.
fn per_image(dx: Option<&mut [f32]>, batch: usize, in_size: usize) -> Vec<Option<&mut [f32]>> {
    match dx {
        Some(dx) => dx[..batch * in_size]
            .chunks_exact_mut(in_size)
            .map(Some)
            .collect(),
        None => (0..batch).map(|_| None).collect(),
    }
}

/// Sums the workers' partial gradients in a fixed order, so results do not depend on timing.
fn reduce_into<'a>(total: &mut [f32], parts: impl Iterator<Item = &'a [f32]>) {
    total.fill(0.0);
    for part in parts {
        total.iter_mut().zip(part).for_each(|(t, p)| *t += p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wave(n: usize, phase: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.731 + phase).sin()).collect()
    }

    struct Case {
        input: (usize, usize, usize),
        filters: usize,
        kernel: (usize, usize),
        strides: (usize, usize),
        padding: Padding,
        activation: Activation,
        use_bias: bool,
    }

    fn layer(case: &Case) -> Conv2D {
        let (kh, kw) = case.kernel;
        let spec = Conv2DSpec {
            filters: case.filters,
            kernel: case.kernel,
            strides: case.strides,
            padding: case.padding,
            activation: case.activation,
            use_bias: case.use_bias,
        };
        let kernel = wave(kh * kw * case.input.2 * case.filters, 0.3);
        let bias = case.use_bias.then(|| wave(case.filters, 1.1));
        Conv2D::with_weights("c".into(), case.input, spec, kernel, bias).unwrap()
    }

    /// Forward outputs, input gradient and parameter gradients for `batch` images.
    fn run(mut conv: Conv2D, batch: usize) -> Vec<Vec<f32>> {
        let in_size = conv.rows.input * conv.cols.input * conv.channels;
        let out_size = conv.output_shape().size();
        let x = wave(batch * in_size, 0.0);
        let mut y = vec![f32::NAN; batch * out_size];
        conv.forward(&x, &mut y, batch, Mode::Train);
        let mut dy = wave(batch * out_size, 2.0);
        let mut dx = vec![f32::NAN; batch * in_size];
        conv.backward(&x, &y, &mut dy, Some(&mut dx), batch);
        let mut results = vec![y, dx];
        results.extend(conv.params().iter().map(|p| p.grad.clone()));
        results
    }

    #[test]
    fn direct_kernels_match_im2col_and_gemm() {
        use Activation::{Linear, Relu};
        use Padding::{Same, Valid};
        let cases = [
            // (input, filters, kernel, strides, padding, activation, bias)
            ((9, 26, 3), 16, (3, 3), (1, 1), Same, Relu, true),
            ((8, 7, 16), 32, (3, 3), (1, 1), Same, Relu, true),
            ((6, 13, 32), 64, (3, 3), (1, 1), Valid, Linear, false),
            ((10, 10, 5), 48, (3, 3), (2, 2), Same, Relu, true),
            ((7, 9, 2), 16, (2, 3), (1, 1), Same, Relu, true),
            ((5, 14, 16), 80, (3, 3), (1, 1), Same, Relu, true),
            ((12, 30, 16), 32, (5, 5), (1, 1), Same, Relu, true),
            ((11, 17, 3), 16, (3, 3), (2, 1), Valid, Linear, true),
            // RGB at stride 2, the channels' and the stride's offsets constants.
            ((13, 15, 3), 32, (3, 3), (2, 2), Same, Relu, true),
            ((9, 11, 3), 16, (3, 3), (2, 2), Valid, Linear, true),
            ((12, 17, 3), 64, (7, 7), (2, 2), Same, Relu, true),
        ];
        let mut direct_ran = false;
        for (input, filters, kernel, strides, padding, activation, use_bias) in cases {
            let case = Case {
                input,
                filters,
                kernel,
                strides,
                padding,
                activation,
                use_bias,
            };
            direct_ran |= layer(&case).direct.is_some();
            for (level, batch) in Level::available()
                .into_iter()
                .flat_map(|l| [(l, 1), (l, 3)])
            {
                let mut portable = layer(&case);
                portable.direct = None;
                let expected = run(portable, batch);
                let got = run(layer(&case).at_level(level), batch);
                for (what, (e, g)) in [
                    "output",
                    "input gradient",
                    "kernel gradient",
                    "bias gradient",
                ]
                .iter()
                .zip(expected.iter().zip(&got))
                {
                    let worst = e
                        .iter()
                        .zip(g)
                        .map(|(a, b)| (a - b).abs() / (1.0 + a.abs()))
                        .fold(
                            0.0f32,
                            |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
                        );
                    assert!(
                        worst < 1e-4,
                        "{what} differs by {worst} at {level} for input {input:?}, {filters} filters, kernel {kernel:?}, strides {strides:?}, batch {batch}"
                    );
                }
            }
        }
        assert!(direct_ran, "the direct kernels should run at every level");
    }

    #[test]
    fn padding_places_the_image_among_zeros() {
        let image: Vec<f32> = (1..=6).map(|v| v as f32).collect(); // 2 × 3 × 1
        let mut padded = vec![f32::NAN; 4 * 4];
        direct::pad_image(&image, (2, 3, 1), (1, 1), (4, 4), &mut padded);
        #[rustfmt::skip]
        let expected = [
            0.0, 0.0, 0.0, 0.0,
            0.0, 1.0, 2.0, 3.0,
            0.0, 4.0, 5.0, 6.0,
            0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(padded, expected);
    }
}
