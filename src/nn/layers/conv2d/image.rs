//! The work on one image (or some of its output rows) for Conv2D: forward and backward, by the
//! direct kernels when the layer's plan allows, otherwise by im2col + GEMM.

use crate::nn::activation::Activation;
use crate::nn::kernels::conv::direct::{self, Geometry};
use crate::nn::kernels::conv::im2col::{col2im, im2col};
use crate::nn::kernels::conv::pool::{self, Unpool};
use crate::nn::kernels::gemm::{matmul, Mat, Threads};
use crate::nn::layers::add_bias;
use crate::nn::layers::window::Axis;
use crate::nn::simd::Level;
use rayon::prelude::*;
use std::ops::Range;

/// Output rows are processed in bands whose im2col matrix fits in a core's L2 cache (about
/// 512 KB), so the GEMM reads what im2col just wrote from cache instead of memory.
const BAND_VALUES: usize = 128 * 1024;

/// How the direct kernels see this layer.
pub(super) struct DirectPlan {
    /// The forward pass over the zero-padded input.
    pub geometry: Geometry,
    /// Zero rows above and columns left of the image in the padded input.
    pub pad: (usize, usize),
    /// The input gradient as a convolution of the padded output gradient, for stride 1 and
    /// input channels in whole vectors; otherwise the input gradient takes the GEMM path.
    pub input_grad: Option<InputGradPlan>,
    /// Zeros standing in for a bias where there is none.
    pub zeros: Vec<f32>,
}

pub(super) struct InputGradPlan {
    pub geometry: Geometry,
    /// Where the output gradient sits in its padded copy: (kh−1−top, kw−1−left).
    pub offset: (usize, usize),
}

/// One worker's buffers, kept across steps.
#[derive(Default)]
pub(super) struct Scratch {
    pub columns: Vec<f32>,
    pub dcolumns: Vec<f32>,
    /// The output gradient, zero-padded (direct path's input gradient).
    pub padded_grad: Vec<f32>,
    /// Two output rows, about to be max-pooled (fused pool).
    pub pair: Vec<f32>,
    /// The output gradient rebuilt from the pool's (fused pool without a direct input gradient).
    pub dconv: Vec<f32>,
    pub dkernel: Vec<f32>,
    pub dbias: Vec<f32>,
}

impl DirectPlan {
    pub fn new(
        rows: Axis,
        cols: Axis,
        channels: usize,
        filters: usize,
        level: Level,
    ) -> Option<Self> {
        let geometry = Geometry {
            kh: rows.window,
            kw: cols.window,
            channels,
            filters,
            sy: rows.stride,
            sx: cols.stride,
            in_h: (rows.output - 1) * rows.stride + rows.window,
            in_w: (cols.output - 1) * cols.stride + cols.window,
            out_h: rows.output,
            out_w: cols.output,
            level,
        };
        if !direct::supports(&geometry) {
            return None;
        }
        let input_grad = (rows.stride == 1 && cols.stride == 1)
            .then(|| InputGradPlan {
                geometry: Geometry {
                    channels: filters,
                    filters: channels,
                    in_h: rows.input + rows.window - 1,
                    in_w: cols.input + cols.window - 1,
                    out_h: rows.input,
                    out_w: cols.input,
                    ..geometry
                },
                offset: (
                    rows.window - 1 - rows.pad_before,
                    cols.window - 1 - cols.pad_before,
                ),
            })
            .filter(|plan| direct::supports(&plan.geometry));
        Some(DirectPlan {
            geometry,
            pad: (rows.pad_before, cols.pad_before),
            input_grad,
            zeros: vec![0.0; filters.max(channels)],
        })
    }
}

/// Output rows of the kernel gradient's blocks: a band whose output gradient and input stay in
/// a core's L2 cache while each block of kernel rows passes over it.
const GRAD_BAND_ROWS: usize = 8;

/// What every worker reads during one pass: the layer's geometry and weights.
pub(super) struct Pass<'a> {
    pub rows: Axis,
    pub cols: Axis,
    pub channels: usize,
    pub filters: usize,
    pub activation: Activation,
    pub kernel: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub direct: Option<&'a DirectPlan>,
    /// The flipped kernel of the direct input gradient (backward only).
    pub flipped: &'a [f32],
}

impl Pass<'_> {
    pub fn in_size(&self) -> usize {
        self.rows.input * self.cols.input * self.channels
    }

    pub fn out_size(&self) -> usize {
        self.rows.output * self.cols.output * self.filters
    }

    pub fn patch_len(&self) -> usize {
        self.rows.window * self.cols.window * self.channels
    }

    /// Output rows per im2col band.
    fn band_rows(&self) -> usize {
        (BAND_VALUES / (self.cols.output * self.patch_len()).max(1)).clamp(1, self.rows.output)
    }

    /// The output rows of each im2col band.
    fn bands(&self) -> impl Iterator<Item = Range<usize>> {
        let (step, end) = (self.band_rows(), self.rows.output);
        (0..end)
            .step_by(step)
            .map(move |start| start..(start + step).min(end))
    }

    /// Values per image of the fused 2×2 max-pool's output.
    pub fn pooled_size(&self) -> usize {
        (self.rows.output / 2) * (self.cols.output / 2) * self.filters
    }

    /// Writes `image` zero-padded into `padded` for the direct kernels.
    pub fn pad(&self, plan: &DirectPlan, image: &[f32], padded: &mut Vec<f32>) {
        let g = &plan.geometry;
        padded.resize(g.input_len(), 0.0);
        let size = (self.rows.input, self.cols.input, self.channels);
        direct::pad_image(image, size, plan.pad, (g.in_h, g.in_w), padded);
    }

    /// Output rows `rows` of the image whose padded copy is `padded`: `out` holds just them.
    fn forward_direct(
        &self,
        plan: &DirectPlan,
        padded: &[f32],
        rows: Range<usize>,
        out: &mut [f32],
    ) {
        let relu = self.activation == Activation::Relu;
        let bias = self.bias.unwrap_or(&plan.zeros);
        direct::forward(&plan.geometry, padded, self.kernel, bias, relu, rows, out);
        if !relu {
            self.activation.forward(out, self.filters);
        }
    }

    /// Pooled rows `prows` of the image whose padded copy is `padded`: each pair of output rows is
    /// computed into `pair` and pooled at once.
    pub fn forward_pooled_rows(
        &self,
        plan: &DirectPlan,
        padded: &[f32],
        prows: Range<usize>,
        pooled: &mut [f32],
        corner: &mut [u8],
        pair: &mut Vec<f32>,
    ) {
        let (width, f) = (self.cols.output, self.filters);
        let prow_len = width / 2 * f;
        pair.resize(2 * width * f, 0.0);
        for (i, py) in prows.enumerate() {
            self.forward_direct(plan, padded, 2 * py..2 * py + 2, pair);
            let (pooled, corner) = (&mut pooled[i * prow_len..], &mut corner[i * prow_len..]);
            pool::pool_pair(
                pair,
                width,
                f,
                (&mut pooled[..prow_len], &mut corner[..prow_len]),
                plan.geometry.level,
            );
        }
    }

    /// Adds the kernel gradient of one image, band by band so each band stays in cache.
    fn weight_grad(
        &self,
        g: &Geometry,
        padded: &[f32],
        dy: &[f32],
        dy_row: usize,
        dkernel: &mut [f32],
    ) {
        for start in (0..g.out_h).step_by(GRAD_BAND_ROWS) {
            let band = start..(start + GRAD_BAND_ROWS).min(g.out_h);
            direct::weight_grad(g, padded, dy, dy_row, band, dkernel);
        }
    }

    /// Backward of one image through the fused pool: the output gradient is rebuilt from the
    /// pool's straight into the buffer the kernel-gradient and input-gradient passes read.
    pub fn backward_pooled_image(
        &self,
        plan: &DirectPlan,
        padded: &[f32],
        unpool: &Unpool,
        dimage: Option<&mut [f32]>,
        scratch: &mut Scratch,
    ) {
        let sums = self.bias.is_some().then_some(&mut scratch.dbias[..]);
        let g = &plan.geometry;
        match (&plan.input_grad, dimage) {
            (Some(grad_plan), Some(dimage)) => {
                let gg = &grad_plan.geometry;
                let row_stride = gg.in_w * g.filters;
                let start = grad_plan.offset.0 * row_stride + grad_plan.offset.1 * g.filters;
                scratch.padded_grad.clear();
                scratch.padded_grad.resize(gg.input_len(), 0.0);
                unpool.write(&mut scratch.padded_grad[start..], row_stride, sums);
                let dy = &scratch.padded_grad[start..];
                self.weight_grad(g, padded, dy, row_stride, &mut scratch.dkernel);
                self.input_grad_direct(plan, gg, &scratch.padded_grad, dimage);
            }
            (_, dimage) => {
                let row_len = g.out_w * g.filters;
                let mut dconv = std::mem::take(&mut scratch.dconv);
                dconv.resize(g.out_h * row_len, 0.0);
                unpool.write(&mut dconv, row_len, sums);
                self.weight_grad(g, padded, &dconv, row_len, &mut scratch.dkernel);
                if let Some(dimage) = dimage {
                    self.input_grad_im2col(&dconv, dimage, scratch);
                }
                scratch.dconv = dconv;
            }
        }
    }

    /// The input gradient as a convolution of the padded output gradient with the flipped kernel.
    fn input_grad_direct(
        &self,
        plan: &DirectPlan,
        g: &Geometry,
        padded_grad: &[f32],
        dimage: &mut [f32],
    ) {
        let no_bias = &plan.zeros;
        direct::forward(
            g,
            padded_grad,
            self.flipped,
            no_bias,
            false,
            0..g.out_h,
            dimage,
        );
    }

    /// One band of one image by im2col, GEMM, bias and activation, all while in cache.
    fn forward_band(
        &self,
        image: &[f32],
        band: Range<usize>,
        out: &mut [f32],
        columns: &mut Vec<f32>,
    ) {
        let patch = self.patch_len();
        let pixels = band.len() * self.cols.output;
        columns.resize(pixels * patch, 0.0);
        let band_pixels = band.start * self.cols.output..band.end * self.cols.output;
        im2col(
            image,
            &self.rows,
            &self.cols,
            self.channels,
            band_pixels,
            columns,
        );
        let kernel = Mat::new(self.kernel, patch, self.filters);
        matmul(
            out,
            Mat::new(columns, pixels, patch),
            kernel,
            false,
            Threads::One,
        );
        if let Some(bias) = self.bias {
            add_bias(&mut out[..pixels * self.filters], bias);
        }
        self.activation
            .forward(&mut out[..pixels * self.filters], self.filters);
    }

    /// One image; on the direct path its padded copy is left in `padded` for backward.
    pub fn forward_image(
        &self,
        image: &[f32],
        padded: &mut Vec<f32>,
        out: &mut [f32],
        scratch: &mut Scratch,
    ) {
        match self.direct {
            Some(plan) => {
                self.pad(plan, image, padded);
                self.forward_direct(plan, padded, 0..self.rows.output, out);
            }
            None => {
                let band_out = self.band_rows() * self.cols.output * self.filters;
                for (out, band) in out.chunks_mut(band_out).zip(self.bands()) {
                    self.forward_band(image, band, out, &mut scratch.columns);
                }
            }
        }
    }

    /// One image with its output rows spread over the workers (fewer images than workers); on
    /// the direct path its padded copy is left in `padded` for backward.
    pub fn forward_spread(
        &self,
        image: &[f32],
        padded: &mut Vec<f32>,
        out: &mut [f32],
        scratch: &mut [Scratch],
    ) {
        let row_len = self.cols.output * self.filters;
        let workers = scratch.len();
        match self.direct {
            Some(plan) => {
                self.pad(plan, image, padded);
                let padded = &padded[..];
                let per_worker = self.rows.output.div_ceil(workers);
                out.par_chunks_mut(per_worker * row_len)
                    .enumerate()
                    .for_each(|(i, out)| {
                        let first = i * per_worker;
                        let rows = first..first + out.len() / row_len;
                        self.forward_direct(plan, padded, rows, out);
                    });
            }
            None => {
                // Each worker takes whole bands with its own scratch, so no band allocates.
                let bands: Vec<_> = self.bands().collect();
                let band_out = self.band_rows() * row_len;
                let per_worker = bands.len().div_ceil(workers);
                out.par_chunks_mut(per_worker * band_out)
                    .zip(bands.par_chunks(per_worker))
                    .zip(scratch.par_iter_mut())
                    .for_each(|((out, bands), scratch)| {
                        for (out, band) in out.chunks_mut(band_out).zip(bands) {
                            self.forward_band(image, band.clone(), out, &mut scratch.columns);
                        }
                    });
            }
        }
    }

    /// Adds one image's kernel and bias gradients to the worker's and, with `dimage`, writes
    /// its input gradient. `dout` turns from d loss / d output into d loss / d pre-activation;
    /// `padded` is the image's padded copy from forward (direct path).
    pub fn backward_image(
        &self,
        image: &[f32],
        padded: &[f32],
        out: &[f32],
        dout: &mut [f32],
        dimage: Option<&mut [f32]>,
        scratch: &mut Scratch,
    ) {
        self.activation.backward(out, dout, self.filters);
        if self.bias.is_some() {
            for row in dout.chunks_exact(self.filters) {
                scratch.dbias.iter_mut().zip(row).for_each(|(b, g)| *b += g);
            }
        }
        let Some(plan) = self.direct else {
            return self.backward_im2col(image, dout, dimage, scratch);
        };
        let g = &plan.geometry;
        let row_len = g.out_w * g.filters;
        self.weight_grad(g, padded, dout, row_len, &mut scratch.dkernel);
        let Some(dimage) = dimage else { return };
        match &plan.input_grad {
            Some(grad_plan) => {
                let gg = &grad_plan.geometry;
                scratch.padded_grad.resize(gg.input_len(), 0.0);
                let size = (g.out_h, g.out_w, g.filters);
                direct::pad_image(
                    dout,
                    size,
                    grad_plan.offset,
                    (gg.in_h, gg.in_w),
                    &mut scratch.padded_grad,
                );
                self.input_grad_direct(plan, gg, &scratch.padded_grad, dimage);
            }
            None => self.input_grad_im2col(dout, dimage, scratch),
        }
    }

    fn backward_im2col(
        &self,
        image: &[f32],
        dout: &[f32],
        dimage: Option<&mut [f32]>,
        scratch: &mut Scratch,
    ) {
        let (patch, filters) = (self.patch_len(), self.filters);
        for band in self.bands() {
            let pixels = band.len() * self.cols.output;
            let dband = &dout[band.start * self.cols.output * filters..][..pixels * filters];
            scratch.columns.resize(pixels * patch, 0.0);
            im2col(
                image,
                &self.rows,
                &self.cols,
                self.channels,
                band.start * self.cols.output..band.end * self.cols.output,
                &mut scratch.columns,
            );
            let columns = Mat::new(&scratch.columns, pixels, patch);
            let grad = Mat::new(dband, pixels, filters);
            matmul(&mut scratch.dkernel, columns.t(), grad, true, Threads::One);
        }
        if let Some(dimage) = dimage {
            self.input_grad_im2col(dout, dimage, scratch);
        }
    }

    /// The input gradient as GEMMs with the transposed kernel, scattered back by col2im.
    fn input_grad_im2col(&self, dout: &[f32], dimage: &mut [f32], scratch: &mut Scratch) {
        let (patch, filters) = (self.patch_len(), self.filters);
        let kernel_t = Mat::new(self.kernel, patch, filters).t();
        dimage.fill(0.0);
        for band in self.bands() {
            let pixels = band.len() * self.cols.output;
            let dband = &dout[band.start * self.cols.output * filters..][..pixels * filters];
            scratch.dcolumns.resize(pixels * patch, 0.0);
            let grad = Mat::new(dband, pixels, filters);
            matmul(&mut scratch.dcolumns, grad, kernel_t, false, Threads::One);
            col2im(
                &scratch.dcolumns,
                &self.rows,
                &self.cols,
                self.channels,
                band,
                dimage,
            );
        }
    }
}

impl Scratch {
    pub fn reset_grads(&mut self, kernel_len: usize, filters: usize) {
        self.dkernel.clear();
        self.dkernel.resize(kernel_len, 0.0);
        self.dbias.clear();
        self.dbias.resize(filters, 0.0);
    }
}
