//! Quantized FULLY_CONNECTED (int8 with per-tensor or per-channel weights, uint8 with
//! zero-pointed ones): each row less its zero point times the widened weights, each sum
//! requantized with its unit's multiplier.

use crate::nn::kernels::quantized::fields::{byte_rows, widened_rows};
use crate::nn::kernels::quantized::gemm::QuantizedWeights;
use crate::nn::kernels::quantized::Quantized;
use crate::tflite::ops::fused_activation::Fused;
use crate::tflite::ops::quantized::{bias, with_quantized, ProductQuantization, Requantization};
use crate::tflite::ops::Inputs;
use crate::tflite::tensor::Data;

pub(super) struct QuantizedFullyConnected {
    weights: QuantizedWeights,
    depth: usize,
    quantization: ProductQuantization,
}

impl QuantizedFullyConnected {
    pub fn new(
        inputs: &Inputs,
        units: usize,
        depth: usize,
        activation: Fused,
    ) -> Result<Self, String> {
        let weights = inputs.value(1).ok_or("the weights must be a constant")?;
        let quantization =
            ProductQuantization::new(inputs, 0, units, activation, Requantization::Real)?;
        let bias = bias(inputs, 2, units)?;
        let zeros = &quantization.filter_zero_points;
        let packed = with_quantized!(&weights.data,
            w => QuantizedWeights::new(w, units, depth, zeros, Some(&bias)),
            return Err(format!("the weights must be INT8 or UINT8, got {}", weights.dtype())));
        Ok(QuantizedFullyConnected {
            weights: packed,
            depth,
            quantization,
        })
    }

    pub fn run(&self, rows: usize, x: &Data, y: &mut Data) -> Result<(), String> {
        let mismatch = || "the tensors are not of the types prepared".to_string();
        with_quantized!(x, x => with_quantized!(y, y => { self.rows(rows, x, y); Ok(()) },
            Err(mismatch())), Err(mismatch()))
    }

    fn rows<T: Quantized, U: Quantized>(&self, rows: usize, x: &[T], y: &mut [U]) {
        let (offset, stride, depth) = (
            self.quantization.input_offset,
            self.weights.stride(),
            self.depth,
        );
        let stage = &self.quantization.stage;
        if self.weights.takes_bytes() {
            let (shift, stride) = (-T::MIN, self.weights.byte_stride());
            let make = |range, fields: &mut [u8]| byte_rows(x, depth, range, shift, stride, fields);
            self.weights
                .multiply_bytes(make, rows, shift - offset, y, stage);
        } else {
            let make =
                |range, fields: &mut [i16]| widened_rows(x, depth, range, offset, stride, fields);
            self.weights.multiply(make, rows, y, stage);
        }
    }
}
