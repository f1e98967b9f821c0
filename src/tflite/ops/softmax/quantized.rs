//! SOFTMAX of int8 and uint8 values as LiteRT's reference kernel computes it: differences from
//! the row's maximum scaled into Q5.26, gemmlowp's fixed-point exponential, their sum in Q12.19
//! and its fixed-point reciprocal. The output's scale is 1/256 and its zero point the type's
//! lowest value, as LiteRT requires.

use crate::nn::kernels::quantized::fixed_point::{
    exp_on_negative_values_q5, reciprocal, rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
};
use crate::nn::kernels::quantized::Quantized;
use crate::tflite::ops::quantized::{affine, type_range, with_quantized};
use crate::tflite::tensor::{Data, Tensor};

/// Integer bits of the scaled differences (Q5.26) and of their sum (Q12.19).
const DIFF_INTEGER_BITS: i32 = 5;
const SUM_INTEGER_BITS: i32 = 12;

pub(super) struct QuantizedSoftmax {
    input_multiplier: i32,
    input_left_shift: i32,
    /// Differences below this give exp ≈ 0 and are skipped.
    diff_min: i32,
}

impl QuantizedSoftmax {
    pub fn new(x: &Tensor, y: &Tensor, beta: f32) -> Result<Self, String> {
        let input = affine(x, "input")?;
        let output = affine(y, "output")?;
        let (lowest, _) = type_range(y.dtype())?;
        if y.dtype() != x.dtype()
            || output.zero_point != lowest
            || (output.scale as f64 - 1.0 / 256.0).abs() > 0.001 / 256.0
        {
            return Err(format!(
                "a quantized softmax's output must be {} with scale 1/256 and zero point \
                 {lowest}, as LiteRT requires",
                x.dtype()
            ));
        }
        // LiteRT's `PreprocessSoftmaxScaling`: β × scale in Q5.26, as a multiplier above one.
        let real = (beta as f64 * input.scale as f64 * (1u64 << (31 - DIFF_INTEGER_BITS)) as f64)
            .min(i32::MAX as f64);
        if real.is_nan() || real <= 1.0 {
            return Err(format!(
                "beta {beta} times the input scale {} is too small for LiteRT's softmax",
                input.scale
            ));
        }
        let m = crate::tflite::ops::quantized::multiplier(real, "softmax input")?;
        let radius = ((1 << DIFF_INTEGER_BITS) - 1) as f64
            * (1u64 << (31 - DIFF_INTEGER_BITS)) as f64
            / (1u64 << m.shift) as f64;
        Ok(QuantizedSoftmax {
            input_multiplier: m.value,
            input_left_shift: m.shift,
            diff_min: -(radius.floor() as i32),
        })
    }

    pub fn run(&self, row: usize, x: &Data, y: &mut Data) -> Result<(), String> {
        let mismatch = || "the tensors are not of the types prepared".to_string();
        with_quantized!(x, x => with_quantized!(y, y => { self.rows(row, x, y); Ok(()) },
            Err(mismatch())), Err(mismatch()))
    }

    /// `exp(β × scale × diff)` in Q0.31, for a difference not below `diff_min`.
    fn exp(&self, diff: i32) -> i32 {
        let scaled = saturating_rounding_doubling_high_mul(
            diff.wrapping_mul(1 << self.input_left_shift),
            self.input_multiplier,
        );
        exp_on_negative_values_q5(scaled)
    }

    fn rows<T: Quantized, U: Quantized>(&self, row: usize, x: &[T], y: &mut [U]) {
        for (x, y) in x.chunks_exact(row).zip(y.chunks_exact_mut(row)) {
            let max = x.iter().map(|v| v.get()).max().unwrap_or(T::MIN);
            let sum = x
                .iter()
                .map(|v| v.get() - max)
                .filter(|&d| d >= self.diff_min)
                .fold(0i32, |sum, d| {
                    sum.wrapping_add(rounding_divide_by_pot(self.exp(d), SUM_INTEGER_BITS))
                });
            let (scale, bits_over_unit) = reciprocal(sum, SUM_INTEGER_BITS);
            // Above 31 only where a row's sum wrapped (thousands of equal values): the
            // quotients are zero, and the clamp keeps the shift defined.
            let exponent = (bits_over_unit + 31 - 8).min(31);
            for (y, v) in y.iter_mut().zip(x) {
                let d = v.get() - max;
                *y = U::narrow(match d >= self.diff_min {
                    true => (rounding_divide_by_pot(
                        saturating_rounding_doubling_high_mul(scale, self.exp(d)),
                        exponent,
                    ) + U::MIN)
                        .clamp(U::MIN, U::MAX),
                    false => U::MIN,
                });
            }
        }
    }
}
