//! TensorFlow Lite's integer arithmetic for real-number multipliers: a multiplier is a 32-bit
//! fraction in [0.5, 1) and a power of two, and products round exactly as LiteRT's reference
//! kernels round them (gemmlowp's doubling high multiply, then a rounding shift), so every
//! quantized output petal computes equals LiteRT's to the bit.

/// A real multiplier as `value / 2^31 × 2^shift`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Multiplier {
    pub value: i32,
    pub shift: i32,
}

impl Multiplier {
    /// LiteRT's `QuantizeMultiplier`: the fraction rounded half away from zero to 31 bits; a
    /// multiplier too small for 31 bits of shift becomes zero, one too large saturates. `None`
    /// for a negative, infinite or NaN multiplier (a hostile scale), which LiteRT's checks stop.
    pub fn new(real: f64) -> Option<Multiplier> {
        if !(real.is_finite() && real >= 0.0) {
            return None;
        }
        if real == 0.0 {
            return Some(Multiplier::default());
        }
        let (fraction, mut shift) = frexp(real);
        let mut value = (fraction * (1i64 << 31) as f64).round() as i64;
        if value == 1 << 31 {
            value /= 2;
            shift += 1;
        }
        if shift < -31 {
            return Some(Multiplier::default());
        }
        if shift > 30 {
            return Some(Multiplier {
                value: i32::MAX,
                shift: 30,
            });
        }
        Some(Multiplier {
            value: value as i32,
            shift,
        })
    }

    /// LiteRT's `MultiplyByQuantizedMultiplier` (double rounding): `x × real`, rounded.
    #[inline(always)]
    pub fn apply(self, x: i32) -> i32 {
        let right = (-self.shift).max(0);
        scale(
            x,
            self.value,
            1 << self.shift.max(0),
            right,
            ((1i64 << right) - 1) as i32,
        )
    }
}

/// `rounding_divide_by_pot(saturating_rounding_doubling_high_mul(sum × left_factor, value),
/// right_shift)` for a non-negative `value` (where the high multiply never saturates), with
/// `mask = 2^right_shift − 1`: written without branches or division so that loops of it
/// vectorise.
#[inline(always)]
pub fn scale(sum: i32, value: i32, left_factor: i32, right_shift: i32, mask: i32) -> i32 {
    let x = sum.wrapping_mul(left_factor) as i64 * value as i64;
    // gemmlowp adds 2^30 (or 1 − 2^30 below zero) and divides by 2^31 truncating toward zero:
    // for either sign that is the floor of (x + 2^30) / 2^31.
    let high = ((x + (1 << 30)) >> 31) as i32;
    let threshold = (mask >> 1) + (high < 0) as i32;
    (high >> right_shift) + ((high & mask) > threshold) as i32
}

/// `x = fraction × 2^exponent` with the fraction in [0.5, 1), as C's `frexp` (for finite,
/// positive `x`).
fn frexp(x: f64) -> (f64, i32) {
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    if exponent == 0 {
        // Subnormal: scale into the normal range first.
        let (fraction, e) = frexp(x * f64::powi(2.0, 64));
        return (fraction, e - 64);
    }
    let fraction = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (fraction, exponent - 1022)
}

/// gemmlowp's `SaturatingRoundingDoublingHighMul`: the high 32 bits of `2ab`, rounded to
/// nearest (ties away from zero), saturated where only `MIN × MIN` overflows.
#[inline(always)]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // Division, not a shift: C++ truncates toward zero.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp's `RoundingDivideByPOT`: `x / 2^exponent` rounded to nearest, ties away from zero.
#[inline(always)]
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

/// gemmlowp's `SaturatingRoundingMultiplyByPOT`: `x × 2^exponent`, saturated when shifting
/// left, rounded when shifting right.
#[inline(always)]
pub fn saturating_rounding_multiply_by_pot(x: i32, exponent: i32) -> i32 {
    if exponent <= 0 {
        return rounding_divide_by_pot(x, -exponent);
    }
    let threshold = (1i32 << (31 - exponent)) - 1;
    if x > threshold {
        i32::MAX
    } else if x < -threshold {
        i32::MIN
    } else {
        x << exponent
    }
}

/// gemmlowp's `exp_on_negative_values` for a Q5.26 input (`a ≤ 0`): `exp(a)` in Q0.31.
pub fn exp_on_negative_values_q5(a: i32) -> i32 {
    const FRACTIONAL_BITS: i32 = 26;
    const ONE_QUARTER: i32 = 1 << (FRACTIONAL_BITS - 2);
    let a_mod_quarter_minus_quarter = (a & (ONE_QUARTER - 1)).wrapping_sub(ONE_QUARTER);
    let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_rounding_multiply_by_pot(a_mod_quarter_minus_quarter, 5),
    );
    let remainder = a_mod_quarter_minus_quarter.wrapping_sub(a);
    // exp(-2^k) for k = -2..4, in Q0.31: one multiply for each bit of the remainder.
    for (exponent, multiplier) in [
        (-2, 1672461947),
        (-1, 1302514674),
        (0, 790015084),
        (1, 290630308),
        (2, 39332535),
        (3, 720401),
        (4, 242),
    ] {
        if remainder & (1 << (FRACTIONAL_BITS + exponent)) != 0 {
            result = saturating_rounding_doubling_high_mul(result, multiplier);
        }
    }
    if a == 0 {
        i32::MAX
    } else {
        result
    }
}

/// `exp(a)` for a Q0.31 `a` in [-1/4, 0), by a Taylor series around -1/8.
fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i32) -> i32 {
    const EXP_MINUS_ONE_EIGHTH: i32 = 1895147668;
    const ONE_THIRD: i32 = 715827883;
    let mul = saturating_rounding_doubling_high_mul;
    let x = a.wrapping_add(1 << 28);
    let x2 = mul(x, x);
    let x3 = mul(x2, x);
    let x4 = mul(x2, x2);
    let x4_over_4 = rounding_divide_by_pot(x4, 2);
    let series = rounding_divide_by_pot(
        mul(x4_over_4.wrapping_add(x3), ONE_THIRD).wrapping_add(x2),
        1,
    );
    EXP_MINUS_ONE_EIGHTH.wrapping_add(mul(EXP_MINUS_ONE_EIGHTH, x.wrapping_add(series)))
}

/// gemmlowp's `one_over_one_plus_x_for_x_in_0_1`: `1 / (1 + a)` for a Q0.31 `a` in [0, 1), in
/// Q0.31, by three Newton-Raphson steps.
fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    let mul = saturating_rounding_doubling_high_mul;
    let sum = a as i64 + i32::MAX as i64;
    let half_denominator = ((sum + if sum >= 0 { 1 } else { -1 }) / 2) as i32;
    // 48/17 and -32/17 in Q2.29.
    let mut x = 1515870810i32.wrapping_add(mul(half_denominator, -1010580540));
    for _ in 0..3 {
        let one_minus_half_denominator_times_x =
            (1i32 << 29).wrapping_sub(mul(half_denominator, x));
        x = x.wrapping_add(saturating_rounding_multiply_by_pot(
            mul(x, one_minus_half_denominator_times_x),
            2,
        ));
    }
    saturating_rounding_multiply_by_pot(x, 1)
}

/// LiteRT's `GetReciprocal`: `1 / x` for a positive `x` with `integer_digits` integer bits,
/// as a Q0.31 value and the power of two it is off by.
pub fn reciprocal(x: i32, integer_digits: i32) -> (i32, i32) {
    let headroom_plus_one = (x as u32).leading_zeros() as i32;
    let bits_over_unit = integer_digits - headroom_plus_one;
    // `x` is positive, so the shift is below 32; wrapping keeps a hostile zero from panicking.
    let shifted_minus_one = (x as u32)
        .wrapping_shl(headroom_plus_one as u32)
        .wrapping_sub(1 << 31) as i32;
    (
        one_over_one_plus_x_for_x_in_0_1(shifted_minus_one),
        bits_over_unit,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frexp_splits_like_c() {
        assert_eq!(frexp(1.0), (0.5, 1));
        assert_eq!(frexp(0.75), (0.75, 0));
        assert_eq!(frexp(3.0), (0.75, 2));
        assert_eq!(frexp(f64::from_bits(1)), (0.5, -1073));
    }

    #[test]
    fn multipliers_quantize_as_litert_does() {
        assert_eq!(
            Multiplier::new(0.5),
            Some(Multiplier {
                value: 1 << 30,
                shift: 0
            })
        );
        // Rounds up to 2^31: halved, shift one more.
        let almost_one = 1.0 - 1e-12;
        assert_eq!(
            Multiplier::new(almost_one),
            Some(Multiplier {
                value: 1 << 30,
                shift: 1
            })
        );
        assert_eq!(Multiplier::new(1e-12), Some(Multiplier::default()));
        assert_eq!(Multiplier::new(f64::NAN), None);
        assert_eq!(Multiplier::new(-1.0), None);
        assert_eq!(Multiplier::new(f64::INFINITY), None);
        assert_eq!(Multiplier::new(1e12).unwrap().shift, 30);
    }

    #[test]
    fn products_round_to_nearest_as_gemmlowp_does() {
        // The high multiply rounds ties up; the shift after it rounds them away from zero.
        let half = Multiplier::new(0.5).unwrap();
        assert_eq!(half.apply(3), 2);
        assert_eq!(half.apply(-3), -1);
        assert_eq!(half.apply(4), 2);
        let quarter = Multiplier::new(0.25).unwrap();
        assert_eq!(quarter.apply(6), 2);
        assert_eq!(quarter.apply(-6), -2);
        // Double rounding: 1.25 → 2.5 → 3, then 3 / 2 → 2.
        assert_eq!(quarter.apply(5), 2);
        let three = Multiplier::new(3.0).unwrap();
        assert_eq!(three.apply(7), 21);
        assert_eq!(three.apply(-7), -21);
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
            i32::MAX
        );
    }

    #[test]
    fn fixed_point_exp_and_reciprocal_are_close_to_the_real_ones() {
        for real in [0.0, -0.01, -0.3, -1.0, -2.5, -7.0, -20.0] {
            let q = exp_on_negative_values_q5((real * 2f64.powi(26)) as i32);
            assert!(
                (q as f64 / 2f64.powi(31) - f64::exp(real)).abs() < 1e-6,
                "{real}"
            );
        }
        for x in [1 << 19, 3 << 19, 1000 << 19, 12345] {
            let (r, bits) = reciprocal(x, 12);
            let real = r as f64 / 2f64.powi(31) / 2f64.powi(bits);
            let want = 1.0 / (x as f64 / 2f64.powi(19));
            assert!((real / want - 1.0).abs() < 1e-6, "{x}: {real} vs {want}");
        }
    }

    #[test]
    fn products_match_the_real_multiplication_to_within_rounding() {
        for &real in &[0.0003, 0.0123, 0.7, 0.999, 1.5, 17.25] {
            let m = Multiplier::new(real).unwrap();
            for x in [-100_000, -1234, -1, 0, 1, 999, 65_535, 1_000_000] {
                let exact = x as f64 * real;
                assert!((m.apply(x) as f64 - exact).abs() <= 1.0 + exact.abs() * 1e-8);
            }
        }
    }
}
