//! Dynamic-range CONV_2D (float input and output, int8 filter), as LiteRT's hybrid kernels
//! compute it: each image quantized to int8 at run time, integer products with the filter, then
//! back to floats. Per-channel filter scales that differ take LiteRT's per-channel kernel (the
//! image quantized asymmetrically, `(sum × filter scale) × image scale`); one scale for all
//! takes the per-tensor one (symmetrically, `sum × (image scale × filter scale)`).

use super::Geometry;
use crate::nn::kernels::quantized::dynamic_range::{asymmetric, symmetric};
use crate::nn::kernels::quantized::fields::{receptive_fields, widened_rows};
use crate::nn::kernels::quantized::gemm::QuantizedWeights;
use crate::tflite::ops::fused_activation::Fused;
use crate::tflite::ops::quantized::symmetric_weights;
use crate::tflite::ops::Inputs;
use std::ops::Range;

pub(super) struct HybridConv {
    weights: QuantizedWeights,
    /// One per filter.
    scales: Vec<f32>,
    per_channel: bool,
    bias: Vec<f32>,
    activation: Fused,
    /// One image as int8.
    image: Vec<i8>,
}

impl HybridConv {
    pub fn new(
        inputs: &Inputs,
        filters: usize,
        depth: usize,
        activation: Fused,
    ) -> Result<Self, String> {
        let (filter, scales) = symmetric_weights(inputs, 0, filters)?;
        let bias = inputs
            .f32_bias(2, filters)?
            .map_or_else(|| vec![0.0; filters], <[f32]>::to_vec);
        Ok(HybridConv {
            weights: QuantizedWeights::new(filter, filters, depth, &[0], None),
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
            let (scales, bias, activation) = (&self.scales, &self.bias, self.activation);
            let finish = |_, channels: Range<usize>, sums: &[i32], out: &mut [f32]| {
                for (f, (o, &sum)) in channels.zip(out.iter_mut().zip(sums)) {
                    let real = match self.per_channel {
                        true => sum as f32 * scales[f] * scale,
                        false => sum as f32 * (scale * scales[0]),
                    };
                    *o = activation.clamp(real + bias[f]);
                }
            };
            if g.pointwise {
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
