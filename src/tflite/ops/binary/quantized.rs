//! ADD, SUB and MUL of int8 and uint8 values with LiteRT's reference integer arithmetic: ADD
//! and SUB bring both inputs to a common scale with 20 bits of headroom before combining them;
//! MUL multiplies the offset values and requantizes the product once.

#[cfg(target_arch = "x86_64")]
use super::single_precision::SinglePrecisionPair;
use super::{Broadcast, Kind};
use crate::nn::kernels::quantized::Multiplier;
use crate::nn::kernels::quantized::Quantized;
use crate::tflite::ops::fused_activation::Fused;
use crate::tflite::ops::quantized::{activation_bounds, affine, multiplier};
use crate::tflite::tensor::Tensor;

/// The headroom ADD and SUB shift their inputs into (LiteRT's `left_shift` for 8-bit types).
pub(super) const LEFT_SHIFT: i32 = 20;

#[derive(Clone, Copy)]
pub(super) struct QuantizedBinary {
    pub(super) arithmetic: Arithmetic,
    pub(super) offsets: [i32; 2],
    pub(super) output_zero_point: i32,
    pub(super) min: i32,
    pub(super) max: i32,
    /// The same bytes in single precision, where AVX-512 runs them and every pair of inputs
    /// showed them equal.
    #[cfg(target_arch = "x86_64")]
    single: Option<SinglePrecisionPair>,
}

#[derive(Clone, Copy)]
pub(super) enum Arithmetic {
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
        let q = QuantizedBinary {
            arithmetic,
            offsets: [-qa.zero_point, -qb.zero_point],
            output_zero_point: qo.zero_point,
            min,
            max,
            #[cfg(target_arch = "x86_64")]
            single: None,
        };
        #[cfg(target_arch = "x86_64")]
        let q = q.with_shortcut(a.dtype() == crate::tflite::tensor::DType::I8);
        Ok(q)
    }

    /// This arithmetic with the single-precision shortcut for int8 (`signed`) or uint8 values,
    /// where every pair of inputs proves it at the selected instruction set.
    #[cfg(target_arch = "x86_64")]
    fn with_shortcut(self, signed: bool) -> Self {
        use crate::nn::kernels::quantized::{avx2_fma, avx512bw};
        let single = match (avx512bw(), avx2_fma()) {
            (true, _) => SinglePrecisionPair::verified(&self, signed),
            (false, true) => SinglePrecisionPair::verified_avx2(&self, signed),
            (false, false) => None,
        };
        QuantizedBinary { single, ..self }
    }

    /// The stored output of `x` and `y` by the fixed-point arithmetic.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(super) fn stored_exact<T: Quantized>(&self, x: T, y: T) -> T {
        match self.arithmetic {
            Arithmetic::Sum { .. } => self.sum(x, y),
            Arithmetic::Product(_) => self.product(x, y),
        }
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
        T::narrow(self.product_value(x.get(), y.get()))
    }

    /// MUL's stored output as a number, of stored inputs as numbers (0 for another operator).
    #[inline(always)]
    pub(super) fn product_value(&self, x: i32, y: i32) -> i32 {
        let Arithmetic::Product(m) = self.arithmetic else {
            return 0;
        };
        self.stored(m.apply((x + self.offsets[0]) * (y + self.offsets[1])))
    }

    /// [`lines`] of inputs of one shape in AVX-512, each step the same integers as
    /// [`QuantizedBinary::sum`] and [`QuantizedBinary::product`].
    ///
    /// # Safety
    /// The processor must have AVX-512F, BW and VL.
    #[cfg(target_arch = "x86_64")]
    unsafe fn lines_avx512<T: Quantized>(&self, a: &[T], b: &[T], out: &mut [T]) {
        use crate::nn::kernels::quantized::requantize_avx512::combine_bytes;
        let (a, b) = (T::bytes(a), T::bytes(b));
        let out = T::bytes_mut(out);
        let bounds = (self.min, self.max);
        match (T::MIN < 0, &self.single) {
            (true, Some(single)) => combine_bytes::<true, _>(a, b, out, single, bounds),
            (false, Some(single)) => combine_bytes::<false, _>(a, b, out, single, bounds),
            (true, None) => combine_bytes::<true, _>(a, b, out, self, bounds),
            (false, None) => combine_bytes::<false, _>(a, b, out, self, bounds),
        }
    }

    /// [`QuantizedBinary::lines_avx512`] from output value `start` on where input `repeated`
    /// is one line of `inner` values (a squeeze-and-excite MUL's channel weights), as
    /// `Broadcast::run_repeated` walks it.
    ///
    /// # Safety
    /// The processor must have AVX-512F, BW and VL.
    #[cfg(target_arch = "x86_64")]
    unsafe fn repeated_avx512<T: Quantized>(
        &self,
        a: &[T],
        b: &[T],
        out: &mut [T],
        start: usize,
        inner: usize,
        repeated: usize,
    ) {
        let walk = (start, inner, repeated);
        Broadcast::repeated_stretches(a, b, out, walk, |a, b, out| {
            // SAFETY: the caller's promise.
            unsafe { self.lines_avx512(a, b, out) }
        });
    }

    /// The stored output of `scaled`, the operation's result at the output's scale.
    #[inline(always)]
    fn finish<T: Quantized>(&self, scaled: i32) -> T {
        T::narrow(self.stored(scaled))
    }

    /// [`QuantizedBinary::finish`] as a number.
    #[inline(always)]
    fn stored(&self, scaled: i32) -> i32 {
        (scaled + self.output_zero_point).clamp(self.min, self.max)
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
    #[cfg(target_arch = "x86_64")]
    if crate::nn::kernels::quantized::avx512bw() {
        // SAFETY: the processor has AVX-512F, BW and VL, checked just now.
        if broadcast.same_shape {
            return unsafe { q.lines_avx512(&a[first..], &b[first..], out) };
        }
        if let Some(repeated) = broadcast.repeated_line() {
            let inner = broadcast.dims[broadcast.dims.len() - 1];
            return unsafe { q.repeated_avx512(a, b, out, first * inner, inner, repeated) };
        }
    }
    #[cfg(target_arch = "x86_64")]
    if let (Some(single), true) = (&q.single, broadcast.same_shape) {
        // Made for AVX2 where AVX-512's byte instructions are missing (see `new`).
        let (a, b) = (T::bytes(&a[first..]), T::bytes(&b[first..]));
        let out = T::bytes_mut(out);
        // SAFETY: `new` verified the shortcut at AVX2, after checking the processor has it.
        return unsafe {
            match T::MIN < 0 {
                true => single.bytes_avx2::<true>(q, a, b, out),
                false => single.bytes_avx2::<false>(q, a, b, out),
            }
        };
    }
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

/// The arithmetic on sixteen lanes.
#[cfg(target_arch = "x86_64")]
impl crate::nn::kernels::quantized::requantize_avx512::PairArithmetic for QuantizedBinary {
    #[inline(always)]
    unsafe fn combine(
        &self,
        x: std::arch::x86_64::__m512i,
        y: std::arch::x86_64::__m512i,
    ) -> std::arch::x86_64::__m512i {
        let exact = (self.offsets, self.output_zero_point);
        self.arithmetic.combine_avx512(exact, x, y)
    }
}

#[cfg(target_arch = "x86_64")]
impl Arithmetic {
    /// The results of stored values `x` and `y`, sixteen lanes at a time, before the clamp:
    /// each step the same integers as [`QuantizedBinary::sum`] and
    /// [`QuantizedBinary::product`], for inputs with these `offsets` and this output zero
    /// point.
    ///
    /// # Safety
    /// The processor must have AVX-512F and BW.
    #[inline(always)]
    pub(super) unsafe fn combine_avx512(
        &self,
        (offsets, output_zero_point): ([i32; 2], i32),
        x: std::arch::x86_64::__m512i,
        y: std::arch::x86_64::__m512i,
    ) -> std::arch::x86_64::__m512i {
        use crate::nn::kernels::quantized::requantize_avx512::Uniform;
        use std::arch::x86_64::*;
        let [oa, ob] = offsets;
        let x = _mm512_add_epi32(x, _mm512_set1_epi32(oa));
        let y = _mm512_add_epi32(y, _mm512_set1_epi32(ob));
        let scaled = match *self {
            Arithmetic::Sum {
                inputs: [ma, mb],
                output,
                subtract,
            } => {
                let sa = Uniform::new(ma).apply(_mm512_slli_epi32::<{ LEFT_SHIFT as u32 }>(x));
                let sb = Uniform::new(mb).apply(_mm512_slli_epi32::<{ LEFT_SHIFT as u32 }>(y));
                let raw = match subtract {
                    true => _mm512_sub_epi32(sa, sb),
                    false => _mm512_add_epi32(sa, sb),
                };
                Uniform::new(output).apply(raw)
            }
            Arithmetic::Product(m) => Uniform::new(m).apply(_mm512_mullo_epi32(x, y)),
        };
        _mm512_add_epi32(scaled, _mm512_set1_epi32(output_zero_point))
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// The lines at the selected instruction set, with and without the single-precision
    /// shortcut, give the portable arithmetic's bytes for every pair of int8 and of uint8
    /// values (and a ragged tail), for ADD, SUB and MUL, multipliers that shift right and
    /// left, and narrow output ranges.
    #[test]
    fn the_lines_give_the_portable_bytes() {
        let m = |real: f64| Multiplier::new(real).unwrap();
        let arithmetics = [
            Arithmetic::Sum {
                inputs: [m(0.37), m(0.5)],
                output: m(0.0009),
                subtract: false,
            },
            Arithmetic::Sum {
                inputs: [m(0.5), m(0.11)],
                output: m(0.00003),
                subtract: true,
            },
            Arithmetic::Product(m(0.0031)),
            Arithmetic::Product(m(3.7)),
        ];
        let pairs = 256 * 256 + 7;
        for arithmetic in arithmetics {
            for (offsets, output_zero_point, min, max) in [
                ([5, -128], -3, -128, 127),
                ([0, 77], 130, 0, 255),
                ([-9, 3], 10, -20, 90),
            ] {
                let exact = exact(arithmetic, offsets, (output_zero_point, min, max));
                for q in [exact, exact.with_shortcut(min < 0)] {
                    if min < 0 {
                        let a: Vec<i8> = (0..pairs).map(|i| i as i8).collect();
                        let b: Vec<i8> = (0..pairs).map(|i| (i / 256) as i8).collect();
                        check(&q, &a, &b);
                    } else {
                        let a: Vec<u8> = (0..pairs).map(|i| i as u8).collect();
                        let b: Vec<u8> = (0..pairs).map(|i| (i / 256) as u8).collect();
                        check(&q, &a, &b);
                    }
                }
            }
        }
    }

    /// Residual ADDs and squeeze-and-excite MULs with the scales of real models take the
    /// single-precision shortcut, plain or checked near the rounding points.
    #[test]
    fn residual_adds_and_excitation_muls_take_the_shortcut() {
        use crate::nn::kernels::quantized::{avx2_fma, avx512bw};
        if !(avx512bw() || avx2_fma()) {
            return;
        }
        let m = |real: f64| Multiplier::new(real).unwrap();
        let sum = |(a, b, out): (f64, f64, f64)| {
            let twice_max = 2.0 * a.max(b);
            Arithmetic::Sum {
                inputs: [m(a / twice_max), m(b / twice_max)],
                output: m(twice_max / ((1 << LEFT_SHIFT) as f64 * out)),
                subtract: false,
            }
        };
        let arithmetics = [
            sum((0.0621, 0.0413, 0.0857)),
            sum((0.173, 0.094, 0.151)),
            sum((0.0311, 0.0395, 0.0402)),
            Arithmetic::Product(m(0.0236 * 0.00392 / 0.0151)),
            Arithmetic::Product(m(0.0419 * 0.00392 / 0.0302)),
        ];
        for arithmetic in arithmetics {
            for (offsets, output_zero_point, min, max) in
                [([11, -4], -9, -128, 127), ([128, 37], 0, 0, 255)]
            {
                let q = exact(arithmetic, offsets, (output_zero_point, min, max));
                assert!(
                    q.with_shortcut(min < 0).single.is_some(),
                    "{offsets:?} → {output_zero_point}"
                );
            }
        }
    }

    /// A repeated line (a squeeze-and-excite MUL's weights) in either operand, from a line
    /// part way in, gives the portable bytes.
    #[test]
    fn the_avx512_repeated_lines_give_the_portable_bytes() {
        if !crate::nn::kernels::quantized::avx512bw() {
            return;
        }
        let q = QuantizedBinary {
            arithmetic: Arithmetic::Sum {
                inputs: [Multiplier::new(0.3).unwrap(), Multiplier::new(0.5).unwrap()],
                output: Multiplier::new(0.0007).unwrap(),
                subtract: true,
            },
            offsets: [3, -20],
            output_zero_point: 5,
            min: -128,
            max: 127,
            single: None,
        };
        for inner in [3, 40, 100] {
            let whole: Vec<i8> = (0..inner * 9).map(|i| (i * 13) as i8).collect();
            let line: Vec<i8> = (0..inner).map(|i| (i * 71 + 5) as i8).collect();
            let start = 2 * inner;
            for repeated in [0, 1] {
                let pair = |i: usize| match repeated {
                    1 => (whole[i], line[i % inner]),
                    _ => (line[i % inner], whole[i]),
                };
                let expected: Vec<i8> = (start..whole.len())
                    .map(|i| q.sum(pair(i).0, pair(i).1))
                    .collect();
                let (a, b) = match repeated {
                    1 => (&whole, &line),
                    _ => (&line, &whole),
                };
                let mut got = vec![0i8; expected.len()];
                // SAFETY: checked the processor above.
                unsafe { q.repeated_avx512(a, b, &mut got, start, inner, repeated) };
                assert_eq!(got, expected, "line of {inner}, repeated {repeated}");
            }
        }
    }

    /// The fixed-point arithmetic alone, for inputs with these `offsets` and the output's
    /// zero point and range.
    fn exact(
        arithmetic: Arithmetic,
        offsets: [i32; 2],
        (output_zero_point, min, max): (i32, i32, i32),
    ) -> QuantizedBinary {
        QuantizedBinary {
            arithmetic,
            offsets,
            output_zero_point,
            min,
            max,
            single: None,
        }
    }

    fn check<T: Quantized + PartialEq + std::fmt::Debug>(q: &QuantizedBinary, a: &[T], b: &[T]) {
        let expected: Vec<T> = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| match q.arithmetic {
                Arithmetic::Sum { .. } => q.sum(x, y),
                Arithmetic::Product(_) => q.product(x, y),
            })
            .collect();
        let broadcast = Broadcast::new(&[a.len()], &[a.len()]).unwrap();
        let mut got = vec![T::default(); a.len()];
        lines(&broadcast, q, a, b, &mut got, 0);
        assert_eq!(got, expected);
    }
}
