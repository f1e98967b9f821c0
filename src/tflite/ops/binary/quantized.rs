//! ADD, SUB and MUL of int8 and uint8 values with LiteRT's reference integer arithmetic: ADD
//! and SUB bring both inputs to a common scale with 20 bits of headroom before combining them;
//! MUL multiplies the offset values and requantizes the product once.

use super::{Broadcast, Kind};
use crate::nn::kernels::quantized::Multiplier;
use crate::nn::kernels::quantized::Quantized;
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

#[derive(Clone, Copy)]
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

    /// ADD's or SUB's stored output. LiteRT's `MultiplyByQuantizedMultiplierSmallerThanOneExp`
    /// is [`Multiplier::apply`] for the multipliers below one that `new` checked.
    #[inline(always)]
    fn sum<T: Quantized>(&self, x: T, y: T) -> T {
        let Arithmetic::Sum {
            inputs: [ma, mb],
            output,
            subtract,
        } = self.arithmetic
        else {
            return T::default();
        };
        let sa = ma.apply((x.get() + self.offsets[0]) * (1 << LEFT_SHIFT));
        let sb = mb.apply((y.get() + self.offsets[1]) * (1 << LEFT_SHIFT));
        let raw = match subtract {
            true => sa.wrapping_sub(sb),
            false => sa.wrapping_add(sb),
        };
        self.finish(output.apply(raw))
    }

    /// MUL's stored output.
    #[inline(always)]
    fn product<T: Quantized>(&self, x: T, y: T) -> T {
        let Arithmetic::Product(m) = self.arithmetic else {
            return T::default();
        };
        self.finish(m.apply((x.get() + self.offsets[0]) * (y.get() + self.offsets[1])))
    }

    /// The stored output of `scaled`, the operation's result at the output's scale.
    #[inline(always)]
    fn finish<T: Quantized>(&self, scaled: i32) -> T {
        T::narrow((scaled + self.output_zero_point).clamp(self.min, self.max))
    }
}

/// [`Broadcast::run_lines`] with the integer arithmetic. Inputs of one shape (residual
/// connections) take a plain loop of inlined arithmetic that vectorises.
#[inline(always)]
pub(super) fn lines<T: Quantized>(
    broadcast: &Broadcast,
    q: &QuantizedBinary,
    a: &[T],
    b: &[T],
    out: &mut [T],
    first: usize,
) {
    if broadcast.same_shape {
        let pairs = a[first..].iter().zip(&b[first..]);
        match q.arithmetic {
            Arithmetic::Sum { .. } => {
                for (o, (&x, &y)) in out.iter_mut().zip(pairs) {
                    *o = q.sum(x, y);
                }
            }
            Arithmetic::Product(_) => {
                for (o, (&x, &y)) in out.iter_mut().zip(pairs) {
                    *o = q.product(x, y);
                }
            }
        }
        return;
    }
    match q.arithmetic {
        Arithmetic::Sum { .. } => broadcast.run_lines(a, b, out, first, |x, y| q.sum(x, y)),
        Arithmetic::Product(_) => broadcast.run_lines(a, b, out, first, |x, y| q.product(x, y)),
    }
}
