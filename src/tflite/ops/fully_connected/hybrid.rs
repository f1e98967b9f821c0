//! Dynamic-range FULLY_CONNECTED (float input and output, int8 weights): each input row
//! quantized to int8 at run time (symmetrically, or asymmetrically with the option
//! `asymmetric_quantize_inputs`), integer products with the weights, then back to floats with
//! the row's and the unit's scales, on top of the float bias, as LiteRT's hybrid kernel does.

use crate::nn::kernels::quantized::dynamic_range::{asymmetric, symmetric};
use crate::nn::kernels::quantized::fields::{byte_rows, widened_rows};
use crate::nn::kernels::quantized::gemm::QuantizedWeights;
use crate::tflite::ops::fused_activation::Fused;
use crate::tflite::ops::quantized::symmetric_weights;
use crate::tflite::ops::Inputs;
use std::ops::Range;

pub(super) struct HybridFullyConnected {
    weights: QuantizedWeights,
    /// One per unit.
    scales: Vec<f32>,
    bias: Vec<f32>,
    depth: usize,
    asymmetric: bool,
    activation: Fused,
    /// The input rows as int8, with each row's scale and zero point.
    rows: Vec<i8>,
    row_scales: Vec<(f32, i32)>,
}

impl HybridFullyConnected {
    pub fn new(
        inputs: &Inputs,
        units: usize,
        depth: usize,
        activation: Fused,
        asymmetric: bool,
    ) -> Result<Self, String> {
        let (weights, scales) = symmetric_weights(inputs, 0, units)?;
        let bias = inputs
            .f32_bias(2, units)?
            .map_or_else(|| vec![0.0; units], <[f32]>::to_vec);
        Ok(HybridFullyConnected {
            weights: QuantizedWeights::new(weights, units, depth, &[0], None),
            scales,
            bias,
            depth,
            asymmetric,
            activation,
            rows: Vec::new(),
            row_scales: Vec::new(),
        })
    }

    pub fn run(&mut self, rows: usize, x: &[f32], y: &mut [f32]) {
        let depth = self.depth;
        self.rows.resize(rows * depth, 0);
        self.row_scales.clear();
        for (x, q) in x.chunks_exact(depth).zip(self.rows.chunks_exact_mut(depth)) {
            self.row_scales.push(match self.asymmetric {
                true => asymmetric(x, q),
                false => (symmetric(x, q), 0),
            });
        }
        let (q, row_scales) = (&self.rows, &self.row_scales);
        let (scales, bias, activation) = (&self.scales, &self.bias, self.activation);
        // `shifted`: the byte product's sums, with each row's shift to unsigned bytes and its
        // zero point still in them, taken back through the filters' sums.
        let shifted = self.weights.byte_filter_sums();
        let to_float = |row: usize, units: Range<usize>, sums: &[i32], out: &mut [f32]| {
            let (row_scale, zero_point) = row_scales[row];
            for (u, (o, &sum)) in units.zip(out.iter_mut().zip(sums)) {
                let sum = match shifted {
                    Some(filter_sums) => {
                        sum.wrapping_sub((128 + zero_point).wrapping_mul(filter_sums[u]))
                    }
                    None => sum,
                };
                *o = activation.clamp(bias[u] + sum as f32 * (row_scale * scales[u]));
            }
        };
        if shifted.is_some() {
            let stride = self.weights.byte_stride();
            let make = |range, fields: &mut [u8]| byte_rows(q, depth, range, 128, stride, fields);
            return self.weights.multiply_bytes_then(make, rows, y, to_float);
        }
        let stride = self.weights.stride();
        let make = |range: Range<usize>, fields: &mut [i16]| {
            for (r, row) in range.zip(fields.chunks_exact_mut(stride)) {
                widened_rows(q, depth, r..r + 1, -row_scales[r].1, stride, row);
            }
        };
        self.weights.multiply_then(make, rows, y, to_float);
    }
}
