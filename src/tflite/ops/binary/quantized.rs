//! ADD, SUB and MUL of int8 and uint8 values with LiteRT's reference integer arithmetic: ADD
//! and SUB bring both inputs to a common scale with 20 bits of headroom before combining them;
//! MUL multiplies the offset values and requantizes the product once.

use super::Kind;
use crate::nn::kernels::quantized::Multiplier;
use crate::tflite::ops::fused_activation::Fused;
use crate::tflite::ops::quantized::{activation_bounds, affine, multiplier};
use crate::tflite::tensor::Tensor;

/// The headroom ADD and SUB shift their inputs into (LiteRT's `left_shift` for 8-bit types).
const LEFT_SHIFT: i32 = 20;

pub(super) struct QuantizedBinary {
    arithmetic: Arithmetic,
    offsets: [i32; 2],
    output_zero_point: i32,
    min: i32,
    max: i32,
}

enum Arithmetic {
    /// Each input scaled to twice the larger input scale, then the sum (or difference) to the
    /// output's.
    Sum {
        inputs: [Multiplier; 2],
        output: Multiplier,
        subtract: bool,
    },
    Product(Multiplier),
}

impl QuantizedBinary {
    pub fn new(
        kind: Kind,
        a: &Tensor,
        b: &Tensor,
        out: &Tensor,
        fused: Fused,
    ) -> Result<Self, String> {
        let (qa, qb, qo) = (
            affine(a, "first input")?,
            affine(b, "second input")?,
            affine(out, "output")?,
        );
        if out.dtype() != a.dtype() {
            return Err(format!(
                "{} inputs make a {} output",
                a.dtype(),
                out.dtype()
            ));
        }
        let below_one = |real: f64, what: &str| {
            let m = multiplier(real, what)?;
            match m.shift <= 0 {
                true => Ok(m),
                false => Err(format!(
                    "the scales make the {what} multiplier {real}, which LiteRT's kernel needs \
                     below one"
                )),
            }
        };
        let arithmetic = match kind {
            Kind::Add | Kind::Sub => {
                let twice_max = (2.0 * qa.scale.max(qb.scale)) as f64;
                let headroom = ((1 << LEFT_SHIFT) as f32 * qo.scale) as f64;
                Arithmetic::Sum {
                    inputs: [
                        below_one(qa.scale as f64 / twice_max, "first input")?,
                        below_one(qb.scale as f64 / twice_max, "second input")?,
                    ],
                    output: below_one(twice_max / headroom, "output")?,
                    subtract: kind == Kind::Sub,
                }
            }
            Kind::Mul => Arithmetic::Product(multiplier(
                (qa.scale * qb.scale / qo.scale) as f64,
                "output",
            )?),
            _ => {
                return Err(format!(
                    "petal runs ADD, SUB and MUL on {}, not this operator",
                    a.dtype()
                ))
            }
        };
        let (min, max) = activation_bounds(fused, qo, out.dtype())?;
        Ok(QuantizedBinary {
            arithmetic,
            offsets: [-qa.zero_point, -qb.zero_point],
            output_zero_point: qo.zero_point,
            min,
            max,
        })
    }

    /// The stored output for stored inputs `x` and `y`.
    #[inline(always)]
    pub fn apply(&self, x: i32, y: i32) -> i32 {
        let (x, y) = (x + self.offsets[0], y + self.offsets[1]);
        let scaled = match &self.arithmetic {
            Arithmetic::Sum {
                inputs: [ma, mb],
                output,
                subtract,
            } => {
                let sa = ma.apply_smaller_than_one(x * (1 << LEFT_SHIFT));
                let sb = mb.apply_smaller_than_one(y * (1 << LEFT_SHIFT));
                let raw = if *subtract {
                    sa.wrapping_sub(sb)
                } else {
                    sa.wrapping_add(sb)
                };
                output.apply_smaller_than_one(raw)
            }
            Arithmetic::Product(m) => m.apply(x * y),
        };
        (scaled + self.output_zero_point).clamp(self.min, self.max)
    }
}
