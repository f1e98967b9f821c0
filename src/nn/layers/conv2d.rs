//! Conv2D as im2col + GEMM per image, images spread over the worker threads, bias and
//! activation fused into the output pass. Kernel layout is Keras's (kh, kw, in, filters).

use super::window::Axis;
use super::{workers, Layer, LayerConfig, Mode, Padding, Pair, Param};
use crate::nn::activation::Activation;
use crate::nn::gemm::{matmul, Mat, Threads};
use crate::nn::init::glorot_uniform;
use crate::nn::shape::Shape;
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
    scratch: Vec<Scratch>,
}

/// One worker's buffers, kept across steps.
#[derive(Default)]
struct Scratch {
    columns: Vec<f32>,
    dcolumns: Vec<f32>,
    dkernel: Vec<f32>,
    dbias: Vec<f32>,
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
    /// `None` when the kernel does not fit the input with "valid" padding.
    pub fn new(
        name: String,
        input: (usize, usize, usize),
        spec: Conv2DSpec,
        seed: u32,
    ) -> Option<Self> {
        let (h, w, c) = input;
        let (kh, kw) = spec.kernel;
        let rows = Axis::new(h, kh, spec.strides.0, spec.padding)?;
        let cols = Axis::new(w, kw, spec.strides.1, spec.padding)?;
        let fan_in = kh * kw * c;
        let values = glorot_uniform(fan_in * spec.filters, fan_in, kh * kw * spec.filters, seed);
        let kernel = Param::new("kernel", vec![kh, kw, c, spec.filters], values);
        let bias = spec
            .use_bias
            .then(|| Param::new("bias", vec![spec.filters], vec![0.0; spec.filters]));
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
            scratch: Vec::new(),
        })
    }

    fn patch_len(&self) -> usize {
        self.rows.window * self.cols.window * self.channels
    }

    fn pixels(&self) -> usize {
        self.rows.output * self.cols.output
    }

    fn ensure_scratch(&mut self) {
        let n = workers();
        if self.scratch.len() != n {
            self.scratch = (0..n).map(|_| Scratch::default()).collect();
        }
    }
}

/// Copies every receptive field of `image` into one row of `columns` (zeros where padded).
fn im2col(image: &[f32], rows: &Axis, cols: &Axis, channels: usize, columns: &mut [f32]) {
    let run = cols.window * channels;
    let patch = rows.window * run;
    for oy in 0..rows.output {
        for ox in 0..cols.output {
            let out = &mut columns[(oy * cols.output + ox) * patch..][..patch];
            for ky in 0..rows.window {
                let dst = &mut out[ky * run..][..run];
                let Some(iy) = rows.source(oy, ky) else {
                    dst.fill(0.0);
                    continue;
                };
                let line = &image[iy * cols.input * channels..][..cols.input * channels];
                match (cols.source(ox, 0), cols.source(ox, cols.window - 1)) {
                    (Some(first), Some(_)) => dst.copy_from_slice(&line[first * channels..][..run]),
                    _ => {
                        for kx in 0..cols.window {
                            let d = &mut dst[kx * channels..][..channels];
                            match cols.source(ox, kx) {
                                Some(ix) => d.copy_from_slice(&line[ix * channels..][..channels]),
                                None => d.fill(0.0),
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each row of `columns` back onto the pixels it came from.
fn col2im(columns: &[f32], rows: &Axis, cols: &Axis, channels: usize, image: &mut [f32]) {
    image.fill(0.0);
    let run = cols.window * channels;
    let patch = rows.window * run;
    for oy in 0..rows.output {
        for ox in 0..cols.output {
            let src = &columns[(oy * cols.output + ox) * patch..][..patch];
            for ky in 0..rows.window {
                let Some(iy) = rows.source(oy, ky) else {
                    continue;
                };
                let line = &mut image[iy * cols.input * channels..][..cols.input * channels];
                for kx in 0..cols.window {
                    if let Some(ix) = cols.source(ox, kx) {
                        let s = &src[ky * run + kx * channels..][..channels];
                        for (d, &v) in line[ix * channels..][..channels].iter_mut().zip(s) {
                            *d += v;
                        }
                    }
                }
            }
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
        std::iter::once(&self.kernel)
            .chain(self.bias.as_ref())
            .collect()
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        std::iter::once(&mut self.kernel)
            .chain(self.bias.as_mut())
            .collect()
    }

    fn forward(&mut self, x: &[f32], y: &mut [f32], batch: usize, _mode: Mode) {
        self.ensure_scratch();
        let (pixels, patch, filters) = (self.pixels(), self.patch_len(), self.filters);
        let in_size = self.rows.input * self.cols.input * self.channels;
        let out_size = pixels * filters;
        let per_worker = batch.div_ceil(self.scratch.len()).max(1);
        let (rows, cols, channels, activation) =
            (self.rows, self.cols, self.channels, self.activation);
        let kernel = &self.kernel.value;
        let bias = self.bias.as_ref().map(|b| &b.value[..]);
        y[..batch * out_size]
            .par_chunks_mut(per_worker * out_size)
            .zip(x[..batch * in_size].par_chunks(per_worker * in_size))
            .zip(self.scratch.par_iter_mut())
            .for_each(|((ys, xs), scratch)| {
                scratch.columns.resize(pixels * patch, 0.0);
                for (out, image) in ys.chunks_exact_mut(out_size).zip(xs.chunks_exact(in_size)) {
                    im2col(image, &rows, &cols, channels, &mut scratch.columns);
                    let a = Mat::new(&scratch.columns, pixels, patch);
                    matmul(
                        out,
                        a,
                        Mat::new(kernel, patch, filters),
                        false,
                        Threads::One,
                    );
                    if let Some(bias) = bias {
                        for row in out.chunks_exact_mut(filters) {
                            row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
                        }
                    }
                    activation.forward(out, filters);
                }
            });
    }

    fn backward(
        &mut self,
        x: &[f32],
        y: &[f32],
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        batch: usize,
    ) {
        self.ensure_scratch();
        let (pixels, patch, filters) = (self.pixels(), self.patch_len(), self.filters);
        let in_size = self.rows.input * self.cols.input * self.channels;
        let out_size = pixels * filters;
        let per_worker = batch.div_ceil(self.scratch.len()).max(1);
        let (rows, cols, channels, activation) =
            (self.rows, self.cols, self.channels, self.activation);
        let kernel = &self.kernel.value;
        let with_bias = self.bias.is_some();
        let jobs_count = batch.div_ceil(per_worker);
        let dx_parts: Vec<Option<&mut [f32]>> = match dx {
            Some(dx) => dx[..batch * in_size]
                .chunks_mut(per_worker * in_size)
                .map(Some)
                .collect(),
            None => (0..jobs_count).map(|_| None).collect(),
        };
        let jobs: Vec<_> = dy[..batch * out_size]
            .chunks_mut(per_worker * out_size)
            .zip(x[..batch * in_size].chunks(per_worker * in_size))
            .zip(y[..batch * out_size].chunks(per_worker * out_size))
            .zip(self.scratch.iter_mut())
            .zip(dx_parts)
            .map(|((((dys, xs), ys), scratch), dxs)| (dys, xs, ys, scratch, dxs))
            .collect();
        jobs.into_par_iter()
            .for_each(|(dys, xs, ys, scratch, mut dxs)| {
                scratch.columns.resize(pixels * patch, 0.0);
                scratch.dkernel.clear();
                scratch.dkernel.resize(patch * filters, 0.0);
                scratch.dbias.clear();
                scratch.dbias.resize(filters, 0.0);
                if dxs.is_some() {
                    scratch.dcolumns.resize(pixels * patch, 0.0);
                }
                for (n, ((dout, image), out)) in dys
                    .chunks_exact_mut(out_size)
                    .zip(xs.chunks_exact(in_size))
                    .zip(ys.chunks_exact(out_size))
                    .enumerate()
                {
                    activation.backward(out, dout, filters);
                    if with_bias {
                        for row in dout.chunks_exact(filters) {
                            scratch.dbias.iter_mut().zip(row).for_each(|(b, g)| *b += g);
                        }
                    }
                    im2col(image, &rows, &cols, channels, &mut scratch.columns);
                    let columns = Mat::new(&scratch.columns, pixels, patch);
                    let grad = Mat::new(dout, pixels, filters);
                    matmul(&mut scratch.dkernel, columns.t(), grad, true, Threads::One);
                    if let Some(dxs) = dxs.as_deref_mut() {
                        let kt = Mat::new(kernel, patch, filters).t();
                        matmul(&mut scratch.dcolumns, grad, kt, false, Threads::One);
                        col2im(
                            &scratch.dcolumns,
                            &rows,
                            &cols,
                            channels,
                            &mut dxs[n * in_size..][..in_size],
                        );
                    }
                }
            });
        let used = &self.scratch[..jobs_count];
        reduce_into(&mut self.kernel.grad, used.iter().map(|s| &s.dkernel[..]));
        if let Some(bias) = self.bias.as_mut() {
            reduce_into(&mut bias.grad, used.iter().map(|s| &s.dbias[..]));
        }
    }
}

/// Sums the workers' partial gradients in a fixed order, so results do not depend on timing.
fn reduce_into<'a>(total: &mut [f32], parts: impl Iterator<Item = &'a [f32]>) {
    total.fill(0.0);
    let len = total.len();
    for part in parts.filter(|p| p.len() == len) {
        total.iter_mut().zip(part).for_each(|(t, p)| *t += p);
    }
}
