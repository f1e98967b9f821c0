//! The float inputs of dynamic-range ("hybrid") ops quantized to int8 at run time, as LiteRT's
//! `tensor_utils` does it: symmetrically (zero stays zero) or asymmetrically (the range
//! stretched over all 256 values), with one scale per row or image.

/// Quantizes `x` into `q` with zero point 0; returns the scale (1 for an all-zero `x`).
pub fn symmetric(x: &[f32], q: &mut [i8]) -> f32 {
    let (min, max) = min_max(x);
    let range = min.abs().max(max.abs());
    if range == 0.0 {
        q.fill(0);
        return 1.0;
    }
    let inverse = 127.0 / range;
    for (q, &v) in q.iter_mut().zip(x) {
        *q = ((v * inverse).round() as i32).clamp(-127, 127) as i8;
    }
    range / 127.0
}

/// Quantizes `x` into `q` over [min(x, 0), max(x, 0)]; returns the scale and zero point.
pub fn asymmetric(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    let (min, max) = min_max(x);
    let (low, high) = (min.min(0.0) as f64, max.max(0.0) as f64);
    if low == high {
        q.fill(0);
        return (1.0, 0);
    }
    let scale = (high - low) / 255.0;
    let from_min = -128.0 - low / scale;
    let from_max = 127.0 - high / scale;
    let error_from_min = 128.0 + (low / scale).abs();
    let error_from_max = 127.0 + (high / scale).abs();
    let zero = if error_from_min < error_from_max {
        from_min
    } else {
        from_max
    };
    let zero_point = if zero <= -128.0 {
        -128
    } else if zero >= 127.0 {
        127
    } else {
        zero.round() as i32
    };
    let scale = scale as f32;
    let inverse = 1.0 / scale;
    for (q, &v) in q.iter_mut().zip(x) {
        *q = ((zero_point as f32 + v * inverse).round() as i32).clamp(-128, 127) as i8;
    }
    (scale, zero_point)
}

fn min_max(x: &[f32]) -> (f32, f32) {
    x.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_keeps_zero_and_spans_the_largest_magnitude() {
        let x = [0.0, -2.0, 1.0, 0.5];
        let mut q = [0i8; 4];
        let scale = symmetric(&x, &mut q);
        assert_eq!(q, [0, -127, 64, 32]);
        assert_eq!(scale, 2.0 / 127.0);
        assert_eq!(symmetric(&[0.0; 4], &mut q), 1.0);
        assert_eq!(q, [0; 4]);
    }

    #[test]
    fn asymmetric_spans_the_range_with_zero_inside() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let mut q = [0i8; 4];
        let (scale, zero_point) = asymmetric(&x, &mut q);
        assert_eq!(zero_point, -128);
        assert!((scale - 4.0 / 255.0).abs() < 1e-7);
        assert_eq!(q[3], 127);
        for (&q, &v) in q.iter().zip(&x) {
            assert!(((q as i32 - zero_point) as f32 * scale - v).abs() <= scale / 2.0 + 1e-6);
        }
    }
}
