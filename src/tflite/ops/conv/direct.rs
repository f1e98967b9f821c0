//! Float CONV_2D by the training engine's direct kernels (`nn::kernels::conv::direct`), where
//! they take the shape: each window read straight from a zero-padded copy of the image, with
//! no receptive-field rows in between. The tutorial's convolutions (3×3, 16 to 64 filters)
//! and MobileNet's first (3×3/2 on RGB) spend most of their time building those rows
//! otherwise.

use super::Geometry;
use crate::nn::kernels::conv::direct;
use crate::nn::kernels::conv::pool::pool_pair;
use crate::nn::kernels::{clamp, ThenApply};
use crate::nn::simd::Level;
use crate::nn::thread_pool::{for_each_chunk, threads};
use crate::tflite::ops::fused_activation::Fused;
use std::cell::RefCell;

/// The most input channels the direct kernels take (see [`DirectConv::takes`]).
const MOST_CHANNELS: usize = 32;

pub(super) struct DirectConv {
    /// Height × width × channels × filters, as the kernels (and Keras) lay it out.
    kernel: Vec<f32>,
    bias: Vec<f32>,
    relu: bool,
    /// RELU6's upper bound, applied to each band as it is made (the kernels know only ReLU).
    cap: Option<f32>,
}

thread_local! {
    /// The image being convolved, padded: one buffer for every convolution a thread runs,
    /// not one kept by each.
    static PADDED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl DirectConv {
    /// The filter (`filters` × height × width × channels, TensorFlow Lite's layout), or `None`
    /// where the kernels do not take the activation or the shape (see [`DirectConv::takes`]).
    pub fn new(
        filter: &[f32],
        bias: Option<&[f32]>,
        (filters, kh, kw, c): (usize, usize, usize, usize),
        activation: Fused,
    ) -> Option<Self> {
        let (relu, cap) = match activation.range() {
            (f32::NEG_INFINITY, f32::INFINITY) => (false, None),
            (0.0, f32::INFINITY) => (true, None),
            (0.0, cap) => (true, Some(cap)),
            _ => return None,
        };
        let taps = kh * kw * c;
        let mut kernel = vec![0.0; taps * filters];
        for (f, weights) in filter.chunks_exact(taps).enumerate().take(filters) {
            for (t, &w) in weights.iter().enumerate() {
                kernel[t * filters + f] = w;
            }
        }
        Some(DirectConv {
            kernel,
            bias: bias.map_or_else(|| vec![0.0; filters], <[f32]>::to_vec),
            relu,
            cap,
        })
    }

    /// Whether the kernels take this convolution, and are faster at it than the packed GEMM:
    /// a window of several taps over few channels (measured: the tutorial's 3×3 convolutions
    /// over 3 to 32 channels, RGB first layers), undilated, filters in whole vectors. On
    /// 1×1 convolutions and deep inputs (ResNet50's 3×3 over 64 channels and more) the GEMM
    /// wins, by up to 1.6×.
    pub fn takes(g: &Geometry) -> bool {
        let few_channels = g.channels <= MOST_CHANNELS && g.rows.window * g.cols.window > 1;
        few_channels
            && g.rows.dilation == 1
            && g.cols.dilation == 1
            && direct::supports(&kernel_geometry(g))
    }

    /// The convolution of each image of `x`; with `pooled`, max-pooled by 2×2 windows at
    /// stride 2 (an odd last row or column left out), each pair of rows pooled while it is
    /// in the level-1 cache, as training's fused Conv2D + MaxPooling2D does; else `then` over
    /// each band of rows.
    pub fn run(&self, g: &Geometry, pooled: bool, x: &[f32], y: &mut [f32], then: ThenApply) {
        let k = kernel_geometry(g);
        let mut padded = PADDED.with_borrow_mut(std::mem::take);
        padded.resize(k.input_len(), 0.0);
        let size = (g.rows.input, g.cols.input, g.channels);
        let pad = (g.rows.pad_before, g.cols.pad_before);
        let (rows, row_len) = match pooled {
            true => (k.out_h / 2, k.out_w / 2 * k.filters),
            false => (k.out_h, k.out_w * k.filters),
        };
        let images = x.chunks_exact(g.image_len());
        for (x, y) in images.zip(y.chunks_exact_mut(rows * row_len)) {
            // In parts on the threads: one thread padding a 224×224 RGB image took as long as
            // a tenth of MobileNetV2's first convolution.
            let line = k.in_w * g.channels;
            let part = k.in_h.div_ceil(threads()) * line;
            for_each_chunk(&mut padded[..k.in_h * line], part, |i, rows| {
                direct::pad_rows(x, size, pad, k.in_w, i * part / line, rows)
            });
            let (padded, kernel, bias) = (&padded[..], &self.kernel, &self.bias);
            // Split by rows, not by output size: a pooled output is small for its work.
            let band_len = rows.div_ceil(threads() * 4).max(1) * row_len;
            for_each_chunk(y, band_len, |i, band| {
                let first = i * band_len / row_len;
                if !pooled {
                    let rows = first..first + band.len() / row_len;
                    direct::forward(&k, padded, kernel, bias, self.relu, rows, band);
                    if let Some(cap) = self.cap {
                        band.iter_mut()
                            .for_each(|v| *v = clamp(*v, f32::NEG_INFINITY, cap));
                    }
                    if let Some(then) = then {
                        then(band);
                    }
                    return;
                }
                let mut pair = vec![0.0; 2 * k.out_w * k.filters];
                // Which corner won: training's backward pass needs it, inference does not.
                let mut corners = vec![0u8; row_len];
                for (i, out) in band.chunks_exact_mut(row_len).enumerate() {
                    let rows = 2 * (first + i)..2 * (first + i) + 2;
                    direct::forward(&k, padded, kernel, bias, self.relu, rows, &mut pair);
                    if let Some(cap) = self.cap {
                        pair.iter_mut()
                            .for_each(|v| *v = clamp(*v, f32::NEG_INFINITY, cap));
                    }
                    pool_pair(&pair, k.out_w, k.filters, (out, &mut corners), k.level);
                }
            });
        }
        PADDED.with_borrow_mut(|kept| *kept = padded);
    }
}

/// The convolution in the kernels' terms: the input padded so that every window lies inside.
fn kernel_geometry(g: &Geometry) -> direct::Geometry {
    direct::Geometry {
        kh: g.rows.window,
        kw: g.cols.window,
        channels: g.channels,
        filters: g.filters,
        sy: g.rows.stride,
        sx: g.cols.stride,
        in_h: (g.rows.output - 1) * g.rows.stride + g.rows.window,
        in_w: (g.cols.output - 1) * g.cols.stride + g.cols.window,
        out_h: g.rows.output,
        out_w: g.cols.output,
        level: Level::selected(),
    }
}
