//! The float inputs of dynamic-range ("hybrid") ops quantized to int8 at run time, as LiteRT's
//! `tensor_utils` does it: symmetrically (zero stays zero) or asymmetrically (the range
//! stretched over all 256 values), with one scale per row or image.

use crate::nn::kernels::clamp;
use crate::nn::thread_pool::{for_each_chunk, threads};

/// Quantizes `x` into `q` with zero point 0; returns the scale (1 for an all-zero `x`).
pub fn symmetric(x: &[f32], q: &mut [i8]) -> f32 {
    let (min, max) = min_max(x);
    let range = min.abs().max(max.abs());
    if range == 0.0 {
        q.fill(0);
        return 1.0;
    }
    quantize(x, 127.0 / range, 0.0, (-127, 127), q);
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
    quantize(x, 1.0 / scale, zero_point as f32, (-128, 127), q);
    (scale, zero_point)
}

/// Values below which one thread quantizes a whole input.
const PARALLEL_VALUES: usize = 1 << 15;

/// `q = clamp(round(zero_point + x × inverse))`, over the threads for large inputs.
fn quantize(x: &[f32], inverse: f32, zero_point: f32, bounds: (i32, i32), q: &mut [i8]) {
    let chunk = match x.len() < PARALLEL_VALUES {
        true => x.len(),
        false => x.len().div_ceil(threads() * 4),
    };
    for_each_chunk(q, chunk, |i, q| {
        let x = &x[i * chunk..][..q.len()];
        quantize_values(x, inverse, zero_point, bounds, q)
    });
}

crate::nn::simd::compiled_per_level! {
    fn quantize_values(x: &[f32], inverse: f32, zero_point: f32, bounds: (i32, i32), q: &mut [i8]) =
        quantize_portable
}

/// Rounding half away from zero written out, as `f32::round` does: the library call it
/// becomes does not vectorise.
#[inline(always)]
fn quantize_portable(x: &[f32], inverse: f32, zero_point: f32, (lo, hi): (i32, i32), q: &mut [i8]) {
    for (q, &v) in q.iter_mut().zip(x) {
        let v = zero_point + v * inverse;
        let whole = v.trunc();
        let rounded = match (v - whole).abs() >= 0.5 {
            true => whole + 1f32.copysign(v),
            false => whole,
        };
        *q = (rounded as i32).clamp(lo, hi) as i8;
    }
}

/// How a hybrid op's integer sums become floats: `sum × filter scale × input scale` per
/// channel, or `sum × (input scale × filter scale)` with one filter scale (LiteRT's two
/// orders of rounding), plus the bias, clamped to the fused activation's range.
pub struct ToFloat<'a> {
    pub input_scale: f32,
    /// One per channel, or one for all.
    pub filter_scales: &'a [f32],
    pub bias: &'a [f32],
    pub range: (f32, f32),
}

impl ToFloat<'_> {
    /// The outputs of `channels` from their sums.
    pub fn row(&self, channels: std::ops::Range<usize>, sums: &[i32], out: &mut [f32]) {
        let bias = &self.bias[channels.clone()];
        match self.filter_scales {
            [one] => {
                let scale = self.input_scale * one;
                scaled_per_tensor(sums, scale, bias, self.range, out)
            }
            scales => {
                let scales = &scales[channels];
                scaled_per_channel(sums, scales, self.input_scale, bias, self.range, out)
            }
        }
    }
}

crate::nn::simd::compiled_per_level! {
    fn scaled_per_channel(
        sums: &[i32],
        scales: &[f32],
        input_scale: f32,
        bias: &[f32],
        range: (f32, f32),
        out: &mut [f32],
    ) = scaled_per_channel_portable
}

crate::nn::simd::compiled_per_level! {
    fn scaled_per_tensor(sums: &[i32], scale: f32, bias: &[f32], range: (f32, f32), out: &mut [f32]) =
        scaled_per_tensor_portable
}

#[inline(always)]
fn scaled_per_channel_portable(
    sums: &[i32],
    scales: &[f32],
    input_scale: f32,
    bias: &[f32],
    (min, max): (f32, f32),
    out: &mut [f32],
) {
    for (((o, &sum), &scale), &b) in out.iter_mut().zip(sums).zip(scales).zip(bias) {
        *o = clamp(sum as f32 * scale * input_scale + b, min, max);
    }
}

#[inline(always)]
fn scaled_per_tensor_portable(
    sums: &[i32],
    scale: f32,
    bias: &[f32],
    (min, max): (f32, f32),
    out: &mut [f32],
) {
    for ((o, &sum), &b) in out.iter_mut().zip(sums).zip(bias) {
        *o = clamp(sum as f32 * scale + b, min, max);
    }
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
