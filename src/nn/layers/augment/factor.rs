//! The ranges that augmentation layers draw from, read from their factors as Keras reads them.

use crate::nn::layers::Factor;

/// Keras's base rule (RandomRotation, RandomContrast, RandomBrightness): a number `f` means
/// (max(-|f|, lowest), |f|), so RandomContrast(0.2) draws from 1 + [0, 0.2] as Keras 3 does.
/// Every value must lie in [lowest, highest].
pub fn base_range(
    factor: Factor,
    arg: &str,
    [lowest, highest]: [f32; 2],
) -> Result<(f32, f32), String> {
    let inside = |v: f32| (lowest..=highest).contains(&v);
    let describe = format!("[{lowest}, {highest}]");
    match factor {
        Factor::Single(f) => {
            check(arg, f, inside, &describe)?;
            Ok(((-f.abs()).max(lowest), f.abs()))
        }
        Factor::Range(pair) => sorted(arg, pair, inside, &describe),
    }
}

/// RandomZoom's and RandomTranslation's rule: a number `f` means (-|f|, |f|); `inside` tells
/// which values are allowed, `describe` says so in errors.
pub fn symmetric_range(
    factor: Factor,
    arg: &str,
    inside: impl Fn(f32) -> bool,
    describe: &str,
) -> Result<(f32, f32), String> {
    match factor {
        Factor::Single(f) => {
            check(arg, f, &inside, describe)?;
            Ok((-f.abs(), f.abs()))
        }
        Factor::Range(pair) => sorted(arg, pair, inside, describe),
    }
}

fn sorted(
    arg: &str,
    [a, b]: [f32; 2],
    inside: impl Fn(f32) -> bool,
    describe: &str,
) -> Result<(f32, f32), String> {
    check(arg, a, &inside, describe)?;
    check(arg, b, &inside, describe)?;
    Ok((a.min(b), a.max(b)))
}

fn check(
    arg: &str,
    value: f32,
    inside: impl Fn(f32) -> bool,
    describe: &str,
) -> Result<(), String> {
    if value.is_finite() && inside(value) {
        Ok(())
    } else {
        Err(format!(
            "argument `{arg}` must be in {describe}, got {value}"
        ))
    }
}

/// A uniform draw from [lower, upper), computed as Keras's `uniform(minval, maxval)`.
pub fn uniform(rng: &mut crate::data::numpy_rng::RandomState, (lower, upper): (f32, f32)) -> f32 {
    lower + (upper - lower) * rng.uniform() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_pairs_read_as_keras_reads_them() {
        let rotation = [-1.0, 1.0];
        assert_eq!(
            base_range(Factor::Single(0.1), "factor", rotation),
            Ok((-0.1, 0.1))
        );
        assert_eq!(
            base_range(Factor::Range([0.3, -0.2]), "factor", rotation),
            Ok((-0.2, 0.3))
        );
        assert_eq!(
            base_range(Factor::Single(0.2), "factor", [0.0, 1.0]),
            Ok((0.0, 0.2))
        );
        let zoom = |v: f32| v > -1.0 && v <= 1.0;
        assert_eq!(
            symmetric_range(Factor::Single(-0.1), "height_factor", zoom, "(-1, 1]"),
            Ok((-0.1, 0.1))
        );
    }

    #[test]
    fn out_of_range_factors_name_the_argument() {
        let err = base_range(Factor::Single(1.5), "factor", [-1.0, 1.0]).unwrap_err();
        assert_eq!(err, "argument `factor` must be in [-1, 1], got 1.5");
        let zoom = |v: f32| v > -1.0 && v <= 1.0;
        let err = symmetric_range(Factor::Range([-1.0, 0.5]), "height_factor", zoom, "(-1, 1]")
            .unwrap_err();
        assert!(
            err.contains("`height_factor`") && err.contains("-1"),
            "{err}"
        );
        assert!(base_range(Factor::Single(f32::NAN), "factor", [-1.0, 1.0]).is_err());
    }
}
