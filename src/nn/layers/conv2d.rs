//! Conv2D as im2col + GEMM per image, images spread over the worker threads, bias and
//! activation fused into the output pass. Kernel layout is Keras's (kh, kw, in, filters).

use super::window::Axis;
use super::{
    add_bias, kernel_and_bias, kernel_and_bias_mut, workers, Layer, LayerConfig, Mode, Padding,
    Pair, Param,
};
use crate::nn::activation::Activation;
use crate::nn::gemm::{matmul, Mat, Threads};
use crate::nn::init::glorot_uniform;
use crate::nn::shape::Shape;
use rayon::prelude::*;
use std::ops::Range;

/// Output rows are processed in bands whose im2col matrix fits in a core's L2 cache (about
/// 512 KB), so the GEMM reads what im2col just wrote from cache instead of memory.
const BAND_VALUES: usize = 128 * 1024;

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

    /// Output rows per band.
    fn band_rows(&self) -> usize {
        (BAND_VALUES / (self.cols.output * self.patch_len()).max(1)).clamp(1, self.rows.output)
    }

    /// The output rows of each band.
    fn bands(&self) -> impl Iterator<Item = Range<usize>> {
        let (step, end) = (self.band_rows(), self.rows.output);
        (0..end)
            .step_by(step)
            .map(move |start| start..(start + step).min(end))
    }

    fn ensure_scratch(&mut self) {
        let n = workers();
        if self.scratch.len() != n {
            self.scratch = (0..n).map(|_| Scratch::default()).collect();
        }
    }
}

/// Copies the receptive field of every output pixel in rows `band` into one row of `columns`
/// (zeros where padded).
fn im2col(
    image: &[f32],
    rows: &Axis,
    cols: &Axis,
    channels: usize,
    band: Range<usize>,
    columns: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor has AVX2, the only thing `im2col_avx2` adds.
        return unsafe { im2col_avx2(image, rows, cols, channels, band, columns) };
    }
    im2col_portable(image, rows, cols, channels, band, columns)
}

/// [`im2col_portable`] compiled with AVX2: its many short copies take half the instructions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn im2col_avx2(
    image: &[f32],
    rows: &Axis,
    cols: &Axis,
    channels: usize,
    band: Range<usize>,
    columns: &mut [f32],
) {
    im2col_portable(image, rows, cols, channels, band, columns)
}

#[inline(always)]
fn im2col_portable(
    image: &[f32],
    rows: &Axis,
    cols: &Axis,
    channels: usize,
    band: Range<usize>,
    columns: &mut [f32],
) {
    let run = cols.window * channels;
    let patch = rows.window * run;
    let line_len = cols.input * channels;
    let first_row = band.start;
    for oy in band {
        for ox in 0..cols.output {
            let out = &mut columns[((oy - first_row) * cols.output + ox) * patch..][..patch];
            let inside = cols
                .source(ox, 0)
                .zip(cols.source(ox, cols.window - 1))
                .map(|(first, _)| first);
            for ky in 0..rows.window {
                let dst = &mut out[ky * run..][..run];
                let Some(iy) = rows.source(oy, ky) else {
                    dst.fill(0.0);
                    continue;
                };
                let line = &image[iy * line_len..][..line_len];
                match inside {
                    Some(first) => copy_run(dst, &line[first * channels..][..run]),
                    None => {
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
fn col2im(
    columns: &[f32],
    rows: &Axis,
    cols: &Axis,
    channels: usize,
    band: Range<usize>,
    image: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor has AVX2, the only thing `col2im_avx2` adds.
        return unsafe { col2im_avx2(columns, rows, cols, channels, band, image) };
    }
    col2im_portable(columns, rows, cols, channels, band, image)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn col2im_avx2(
    columns: &[f32],
    rows: &Axis,
    cols: &Axis,
    channels: usize,
    band: Range<usize>,
    image: &mut [f32],
) {
    col2im_portable(columns, rows, cols, channels, band, image)
}

#[inline(always)]
fn col2im_portable(
    columns: &[f32],
    rows: &Axis,
    cols: &Axis,
    channels: usize,
    band: Range<usize>,
    image: &mut [f32],
) {
    let run = cols.window * channels;
    let patch = rows.window * run;
    let line_len = cols.input * channels;
    let first_row = band.start;
    for oy in band {
        for ox in 0..cols.output {
            let src = &columns[((oy - first_row) * cols.output + ox) * patch..][..patch];
            let inside = cols
                .source(ox, 0)
                .zip(cols.source(ox, cols.window - 1))
                .map(|(first, _)| first);
            for ky in 0..rows.window {
                let Some(iy) = rows.source(oy, ky) else {
                    continue;
                };
                let line = &mut image[iy * line_len..][..line_len];
                let s = &src[ky * run..][..run];
                match inside {
                    Some(first) => add_run(&mut line[first * channels..][..run], s),
                    None => {
                        for kx in 0..cols.window {
                            if let Some(ix) = cols.source(ox, kx) {
                                add_run(
                                    &mut line[ix * channels..][..channels],
                                    &s[kx * channels..][..channels],
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Copies `src` into `dst` (same length). Short runs are the common case (a 3-wide kernel row of
/// 3, 16 or 32 channels): fixed-size copies compile to a few vector moves instead of a memcpy call.
#[inline(always)]
fn copy_run(dst: &mut [f32], src: &[f32]) {
    #[inline(always)]
    fn fixed<const N: usize>(dst: &mut [f32], src: &[f32]) {
        let d: &mut [f32; N] = dst.try_into().expect("run length");
        *d = src.try_into().expect("run length");
    }
    match dst.len() {
        9 => fixed::<9>(dst, src),
        48 => fixed::<48>(dst, src),
        96 => fixed::<96>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}

/// Adds `src` onto `dst` (same length), with the same fixed-size fast paths as [`copy_run`].
#[inline(always)]
fn add_run(dst: &mut [f32], src: &[f32]) {
    #[inline(always)]
    fn fixed<const N: usize>(dst: &mut [f32], src: &[f32]) {
        let d: &mut [f32; N] = dst.try_into().expect("run length");
        let s: &[f32; N] = src.try_into().expect("run length");
        for i in 0..N {
            d[i] += s[i];
        }
    }
    match dst.len() {
        9 => fixed::<9>(dst, src),
        48 => fixed::<48>(dst, src),
        96 => fixed::<96>(dst, src),
        _ => dst.iter_mut().zip(src).for_each(|(d, s)| *d += s),
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
        let (patch, filters) = (self.patch_len(), self.filters);
        let in_size = self.rows.input * self.cols.input * self.channels;
        let out_size = self.pixels() * filters;
        let band_rows = self.band_rows();
        let band_values = band_rows * self.cols.output * patch;
        let bands: Vec<Range<usize>> = self.bands().collect();
        let (rows, cols, channels, activation) =
            (self.rows, self.cols, self.channels, self.activation);
        let kernel = Mat::new(&self.kernel.value, patch, filters);
        let bias = self.bias.as_ref().map(|b| &b.value[..]);
        // One band of one image: im2col, GEMM, bias, activation, all while in cache.
        let run_band =
            |image: &[f32], band: &Range<usize>, out: &mut [f32], columns: &mut Vec<f32>| {
                columns.resize(band_values, 0.0);
                let pixels = band.len() * cols.output;
                im2col(image, &rows, &cols, channels, band.clone(), columns);
                matmul(
                    out,
                    Mat::new(columns, pixels, patch),
                    kernel,
                    false,
                    Threads::One,
                );
                if let Some(bias) = bias {
                    add_bias(out, bias);
                }
                activation.forward(out, filters);
            };
        let (x, y) = (&x[..batch * in_size], &mut y[..batch * out_size]);
        let band_out = band_rows * cols.output * filters;
        if batch < self.scratch.len() {
            // Fewer images than threads (batch-1 inference): spread one image's bands over the
            // workers instead, each with its own scratch, so no band allocates or zeroes memory.
            let per_worker = bands.len().div_ceil(self.scratch.len());
            for (out, image) in y.chunks_exact_mut(out_size).zip(x.chunks_exact(in_size)) {
                out.par_chunks_mut(per_worker * band_out)
                    .zip(bands.par_chunks(per_worker))
                    .zip(self.scratch.par_iter_mut())
                    .for_each(|((out, bands), scratch)| {
                        for (out, band) in out.chunks_mut(band_out).zip(bands) {
                            run_band(image, band, out, &mut scratch.columns);
                        }
                    });
            }
            return;
        }
        let per_worker = batch.div_ceil(self.scratch.len());
        y.par_chunks_mut(per_worker * out_size)
            .zip(x.par_chunks(per_worker * in_size))
            .zip(self.scratch.par_iter_mut())
            .for_each(|((ys, xs), scratch)| {
                for (out, image) in ys.chunks_exact_mut(out_size).zip(xs.chunks_exact(in_size)) {
                    for (out, band) in out.chunks_mut(band_out).zip(&bands) {
                        run_band(image, band, out, &mut scratch.columns);
                    }
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
        let (patch, filters) = (self.patch_len(), self.filters);
        let in_size = self.rows.input * self.cols.input * self.channels;
        let out_size = self.pixels() * filters;
        let per_worker = batch.div_ceil(self.scratch.len()).max(1);
        let band_values = self.band_rows() * self.cols.output * patch;
        let bands: Vec<Range<usize>> = self.bands().collect();
        let (rows, cols, channels, activation) =
            (self.rows, self.cols, self.channels, self.activation);
        let kernel_t = Mat::new(&self.kernel.value, patch, filters).t();
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
                scratch.columns.resize(band_values, 0.0);
                scratch.dkernel.clear();
                scratch.dkernel.resize(patch * filters, 0.0);
                scratch.dbias.clear();
                scratch.dbias.resize(filters, 0.0);
                if dxs.is_some() {
                    scratch.dcolumns.resize(band_values, 0.0);
                }
                let images = dys
                    .chunks_exact_mut(out_size)
                    .zip(xs.chunks_exact(in_size))
                    .zip(ys.chunks_exact(out_size));
                for (n, ((dout, image), out)) in images.enumerate() {
                    activation.backward(out, dout, filters);
                    if with_bias {
                        for row in dout.chunks_exact(filters) {
                            scratch.dbias.iter_mut().zip(row).for_each(|(b, g)| *b += g);
                        }
                    }
                    let mut dimage = dxs.as_deref_mut().map(|d| &mut d[n * in_size..][..in_size]);
                    if let Some(d) = dimage.as_deref_mut() {
                        d.fill(0.0);
                    }
                    for band in &bands {
                        let pixels = band.len() * cols.output;
                        let dband = &dout[band.start * cols.output * filters..][..pixels * filters];
                        im2col(
                            image,
                            &rows,
                            &cols,
                            channels,
                            band.clone(),
                            &mut scratch.columns,
                        );
                        let columns = Mat::new(&scratch.columns, pixels, patch);
                        let grad = Mat::new(dband, pixels, filters);
                        matmul(&mut scratch.dkernel, columns.t(), grad, true, Threads::One);
                        if let Some(d) = dimage.as_deref_mut() {
                            matmul(&mut scratch.dcolumns, grad, kernel_t, false, Threads::One);
                            col2im(&scratch.dcolumns, &rows, &cols, channels, band.clone(), d);
                        }
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
