//! MEAN of int8 and uint8 values as LiteRT's reference kernel takes it
//! (`QuantizedMeanOrSum`): 32-bit sums of the stored values, less the zero point's share, times
//! `input scale / output scale` with the division by the count folded into the fixed-point
//! multiplier (by truncating integer division, as LiteRT folds it).

use super::Plan;
use crate::nn::kernels::quantized::{Multiplier, Quantized};
use crate::tflite::ops::quantized::{affine, multiplier, with_quantized};
use crate::tflite::tensor::{Data, Tensor};

pub(super) struct QuantizedMean {
    input_zero_point: i32,
    count: i64,
    multiplier: Multiplier,
    output_zero_point: i32,
}

impl QuantizedMean {
    pub fn new(x: &Tensor, y: &Tensor, count: usize) -> Result<Self, String> {
        if y.dtype() != x.dtype() {
            return Err(format!(
                "a {} input makes a {} output",
                x.dtype(),
                y.dtype()
            ));
        }
        let (from, to) = (affine(x, "input")?, affine(y, "output")?);
        let Multiplier { value, shift } =
            multiplier(from.scale as f64 / to.scale as f64, "output")?;
        let count = count.max(1) as i64;
        let fold = (63 - count.leading_zeros() as i32).min(32).min(31 + shift);
        // A right shift beyond 31 leaves nothing of any 32-bit sum (LiteRT shifts out of range
        // there): zero.
        let folded = match shift - fold >= -31 {
            true => Multiplier {
                value: (((value as i64) << fold) / count) as i32,
                shift: shift - fold,
            },
            false => Multiplier::default(),
        };
        Ok(QuantizedMean {
            input_zero_point: from.zero_point,
            count,
            multiplier: folded,
            output_zero_point: to.zero_point,
        })
    }

    pub fn run(&self, plan: &Plan, x: &Data, y: &mut Data) -> Result<(), String> {
        let mismatch = || "the tensors are not of the types prepared".to_string();
        with_quantized!(x, x => with_quantized!(y, y => { self.mean(plan, x, y); Ok(()) },
            Err(mismatch())), Err(mismatch()))
    }

    fn mean<T: Quantized, U: Quantized>(&self, plan: &Plan, x: &[T], y: &mut [U]) {
        let mut sums = vec![0i32; y.len()];
        match plan.over_all_but_last() {
            Some(inner) if inner == sums.len() => T::column_sums(x, &mut sums),
            _ if !x.is_empty() => {
                plan.reduce(x, &mut sums, |acc: i32, v: T| acc.wrapping_add(v.get()))
            }
            _ => {}
        }
        let zero_share = self.input_zero_point as i64 * self.count;
        for (y, &sum) in y.iter_mut().zip(&sums) {
            let shifted = (sum as i64 - zero_share) as i32;
            let v = self.multiplier.apply(shifted) + self.output_zero_point;
            *y = U::narrow(v.clamp(U::MIN, U::MAX));
        }
    }
}
