//! How real values become int8 scales and zero points, step for step as TensorFlow's converter
//! computes them (`quantization_utils.cc` and `FakeQuantSupport.cc` in TensorFlow's MLIR
//! quantizer), so that petal's files quantize like the converter's.

/// Ranges narrower than this are widened: a tiny scale would make huge quantized values.
const NEAR_ZERO_TOLERANCE: f64 = 1e-6;

/// A range widened to include 0 (so that 0, a padding or ReLU value, is exact) and to at least
/// [`NEAR_ZERO_TOLERANCE`].
fn effective_range(min: f64, max: f64) -> (f64, f64) {
    let (min, max) = (min.min(0.0), max.max(0.0));
    if max - min > NEAR_ZERO_TOLERANCE {
        (min, max)
    } else {
        let half = NEAR_ZERO_TOLERANCE / 2.0;
        (min.min(-half), max.max(half))
    }
}

/// The scale and zero point of an int8 activation whose values ran from `min` to `max`.
pub(super) fn affine_int8(min: f32, max: f32) -> (f32, i64) {
    let (qmin, qmax) = (-128.0, 127.0);
    let (rmin, rmax) = effective_range(f64::from(min), f64::from(max));
    let scale = (rmax - rmin) / (qmax - qmin);
    // Of the two ways to solve for the zero point, the one with the smaller rounding error.
    let from_min = qmin - rmin / scale;
    let from_max = qmax - rmax / scale;
    let zero_point = if qmin.abs() + (rmin / scale).abs() < qmax.abs() + (rmax / scale).abs() {
        from_min
    } else {
        from_max
    };
    (scale as f32, zero_point.round().clamp(qmin, qmax) as i64)
}

/// Symmetric int8 weights, one scale per slice along axis 0 (`channels` of them): scale
/// max|w| / 127, values rounded and kept within ±127 (TensorFlow's narrow range), zero point 0.
pub(super) fn symmetric_per_channel(values: &[f32], channels: usize) -> (Vec<i8>, Vec<f32>) {
    let per_channel = values.len() / channels.max(1);
    let mut quantized = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(channels);
    for slice in values.chunks_exact(per_channel.max(1)).take(channels) {
        let largest = slice.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let (_, max) = effective_range(-f64::from(largest), f64::from(largest));
        let scale = (max / 127.0) as f32;
        let inverse = (1.0 / f64::from(scale)) as f32;
        quantized.extend(
            slice
                .iter()
                .map(|&v| (v * inverse).round().clamp(-127.0, 127.0) as i8),
        );
        scales.push(scale);
    }
    (quantized, scales)
}

/// int32 biases at scale `input_scale × weight_scale[c]` (the product LiteRT checks them
/// against), zero point 0; values beyond int32 saturate.
pub(super) fn bias_int32(
    values: &[f32],
    input_scale: f32,
    weight_scales: &[f32],
) -> (Vec<i32>, Vec<f32>) {
    let scales: Vec<f32> = weight_scales
        .iter()
        .map(|&w| (f64::from(input_scale) * f64::from(w)) as f32)
        .collect();
    let quantized = values
        .iter()
        .zip(&scales)
        .map(|(&b, &s)| {
            let inverse = if s == 0.0 {
                0.0
            } else {
                (1.0 / f64::from(s)) as f32
            };
            (b * inverse)
                .round()
                .clamp(i32::MIN as f32, i32::MAX as f32) as i32
        })
        .collect();
    (quantized, scales)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_after_relu_start_at_the_lowest_code() {
        let (scale, zero_point) = affine_int8(0.0, 1.242_76);
        assert_eq!(zero_point, -128);
        assert!((scale - 1.242_76 / 255.0).abs() < 1e-9);
    }

    #[test]
    fn zero_is_exact_for_ranges_on_both_sides() {
        let (scale, zero_point) = affine_int8(-0.539, 0.31);
        let zero = (0.0 / scale).round() as i64 + zero_point;
        assert!((-128..=127).contains(&zero));
        assert_eq!(
            zero_point,
            (-128.0f64 + 0.539 / f64::from(scale)).round() as i64
        );
    }

    #[test]
    fn ranges_entirely_above_zero_are_stretched_down_to_it() {
        let (scale, zero_point) = affine_int8(2.0, 4.0);
        assert_eq!(zero_point, -128);
        assert!((scale - 4.0 / 255.0).abs() < 1e-9);
    }

    #[test]
    fn a_single_value_gives_a_usable_scale_not_zero() {
        for value in [0.0, 1e-9, -1e-9] {
            let (scale, zero_point) = affine_int8(value, value);
            assert!(scale > 0.0 && scale.is_finite(), "{value}: {scale}");
            assert!((-128..=127).contains(&zero_point));
        }
    }

    #[test]
    fn weights_use_the_narrow_symmetric_range_per_channel() {
        let (q, scales) = symmetric_per_channel(&[1.0, -0.5, 0.25, 0.0, 0.02, -0.04], 2);
        assert_eq!(q, [127, -64, 32, 0, 64, -127]);
        assert!((scales[0] - 1.0 / 127.0).abs() < 1e-9);
        assert!((scales[1] - 0.04 / 127.0).abs() < 1e-9);
    }

    #[test]
    fn an_all_zero_channel_gets_a_positive_scale_and_zeros() {
        let (q, scales) = symmetric_per_channel(&[0.0; 4], 2);
        assert_eq!(q, [0; 4]);
        assert!(scales.iter().all(|&s| s > 0.0 && s.is_finite()));
    }

    #[test]
    fn biases_saturate_instead_of_wrapping() {
        let (q, scales) = bias_int32(&[0.5, 1e30, -1e30], 0.01, &[0.1, 1e-9, 1e-9]);
        assert_eq!(q[0], 500);
        assert_eq!(&q[1..], [i32::MAX, i32::MIN]);
        assert!((scales[0] - 0.001).abs() < 1e-9);
    }
}
