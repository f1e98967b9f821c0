//! Element-wise transcendental functions without branches or library calls, so their loops
//! vectorise at every level: `exp` by range reduction to [−ln2/2, ln2/2] and a degree-6
//! polynomial (relative error below 2e-7), and the logistic and tanh built on it.

/// e^x for x in −86‥88; e^−86 below (about 4e-38, so no result is a slow denormal) and e^88
/// above.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 in two parts, so n·ln2 is exact to well beyond float precision.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5·2²³ rounds to an integer with the FPU's own rounding, vectorisably.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-86.0, 88.0);
    let shifted = x * LOG2_E + ROUND;
    let n = shifted - ROUND;
    // The integer n sits in the low bits of `shifted`: no float-to-int conversion needed.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2ⁿ built from its exponent bits; n lies in −124‥127 after the clamp.
    p * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

/// 1 / (1 + e^−x).
#[inline(always)]
pub(crate) fn logistic(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// tanh(x) = 1 − 2 / (1 + e^2x), odd by construction for large |x|.
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (1.0 + exp(2.0 * x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agree_with_the_standard_library() {
        let mut worst = [0f64; 3];
        for i in -20_000..=20_000 {
            let x = i as f32 / 1000.0;
            let errors = [
                (exp(x) as f64 - (x as f64).exp()).abs() / (x as f64).exp(),
                (logistic(x) as f64 - 1.0 / (1.0 + (-x as f64).exp())).abs(),
                (tanh(x) as f64 - (x as f64).tanh()).abs(),
            ];
            for (w, e) in worst.iter_mut().zip(errors) {
                *w = w.max(e);
            }
        }
        assert!(worst[0] < 3e-7, "exp relative error {}", worst[0]);
        assert!(worst[1] < 1e-7, "logistic error {}", worst[1]);
        assert!(worst[2] < 3e-7, "tanh error {}", worst[2]);
        assert_eq!(exp(-200.0), exp(-86.0));
        assert!(exp(-86.0).is_normal());
        assert!(exp(200.0).is_finite() && logistic(-200.0) >= 0.0 && logistic(200.0) == 1.0);
    }
}
