//! Dynamic-range CONV_2D (float input and output, int8 filter), as LiteRT's hybrid kernels
//! compute it: each image quantized to int8 at run time, integer products with the filter, then
//! back to floats. Per-channel filter scales that differ take LiteRT's per-channel kernel (the
//! image quantized asymmetrically, `(sum × filter scale) × image scale`); one scale for all
//! takes the per-tensor one (symmetrically, `sum × (image scale × filter scale)`).

use super::quantized::packed_filter;
use super::Geometry;
use crate::nn::kernels::quantized::dynamic_range::{asymmetric, symmetric, ToFloat};
use crate::nn::kernels::quantized::fields::{receptive_fields, widened_rows};
use crate::nn::kernels::quantized::gemm::QuantizedWeights;
use crate::nn::kernels::quantized::padded::PaddedImage;
use crate::tflite::ops::fused_activation::Fused;
use crate::tflite::ops::quantized::symmetric_weights;
use crate::tflite::ops::Inputs;

pub(super) struct HybridConv {
    weights: QuantizedWeights,
    /// As `QuantizedConv`'s: the channels of the padded image VNNI reads windows from.
    direct_channels: Option<usize>,
    /// One per filter.
    scales: Vec<f32>,
    per_channel: bool,
    bias: Vec<f32>,
    activation: Fused,
    /// One image as int8.
    image: Vec<i8>,
}

impl HybridConv {
    /// `shape` is the filter's (height, width, channels); `undilated` whether its taps are
    /// neighbours.
    pub fn new(
        inputs: &Inputs,
        filters: usize,
        shape: (usize, usize, usize),
        undilated: bool,
        activation: Fused,
    ) -> Result<Self, String> {
        let (filter, scales) = symmetric_weights(inputs, 0, filters)?;
        let bias = inputs
            .f32_bias(2, filters)?
            .map_or_else(|| vec![0.0; filters], <[f32]>::to_vec);
        let (weights, direct_channels) =
            packed_filter(filter, filters, shape, undilated, &[0], None);
        Ok(HybridConv {
            weights,
            direct_channels,
            per_channel: scales.iter().any(|&s| s != scales[0]),
            scales,
            bias,
            activation,
            image: Vec::new(),
        })
    }

    pub fn run(&mut self, g: &Geometry, x: &[f32], y: &mut [f32]) {
        let pixels = g.pixels();
        for (x, y) in x
            .chunks_exact(g.image_len())
            .zip(y.chunks_exact_mut(pixels * g.filters))
        {
            self.image.resize(x.len(), 0);
            let (scale, zero_point) = match self.per_channel {
                true => asymmetric(x, &mut self.image),
                false => (symmetric(x, &mut self.image), 0),
            };
            let (q, stride, offset) = (&self.image, self.weights.stride(), -zero_point);
            let to_float = ToFloat {
                input_scale: scale,
                filter_scales: match self.per_channel {
                    true => &self.scales,
                    false => &self.scales[..1],
                },
                bias: &self.bias,
                range: self.activation.range(),
            };
            let finish =
                |_, channels, sums: &[i32], out: &mut [f32]| to_float.row(channels, sums, out);
            if let (Some(c4), false) = (self.direct_channels, g.pointwise) {
                // Unsigned bytes (plus 128), padded with the image's zero point.
                let offset = 128 + zero_point;
                let edge = (128, offset as u8);
                let image = PaddedImage::new(q, &g.rows, &g.cols, g.channels, c4, edge);
                let filters = g.filters;
                self.weights
                    .convolve_bytes_then(&image, offset, y, (1, 1), |sums, line| {
                        for (sums, pixel) in sums
                            .chunks_exact(filters)
                            .zip(line.chunks_exact_mut(filters))
                        {
                            finish(0, 0..filters, sums, pixel);
                        }
                    });
            } else if g.pointwise {
                let rows = |range, fields: &mut [i16]| {
                    widened_rows(q, g.channels, range, offset, stride, fields)
                };
                self.weights.multiply_then(rows, pixels, y, finish);
            } else {
                let rows = |range, fields: &mut [i16]| {
                    receptive_fields(
                        q, &g.rows, &g.cols, g.channels, range, offset, stride, fields,
                    )
                };
                self.weights.multiply_then(rows, pixels, y, finish);
            }
        }
    }
}
