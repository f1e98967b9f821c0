//! Conversions to int8 and uint8 written out in AVX-512, sixteen values per step, bit for bit
//! their portable forms where the compiler's own vectorisation spends twice the instructions:
//! the fixed-point requantization of [`super::Requantize`] (64-bit products of the even and
//! odd lanes, gemmlowp's rounding, then the rounding shift, as [`super::fixed_point::scale`]),
//! and QUANTIZE's float rounding.

use super::{Multipliers, Requantize};
use std::arch::x86_64::*;
use std::ops::Range;

/// Rows of the sums of `channels` to stored bytes (two's complement for int8), as
/// `store_fixed_portable` does.
///
/// # Safety
/// The processor must have AVX-512F, BW and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn store_bytes(
    r: &Requantize,
    m: &Multipliers,
    channels: Range<usize>,
    sums: &[i32],
    out: &mut [u8],
) {
    let first = channels.start;
    let channels = channels
        .end
        .min(m.values.len())
        .saturating_sub(first)
        .max(1);
    let rounding = _mm512_set1_epi64(1 << 30);
    let (zero_point, min, max) = (
        _mm512_set1_epi32(r.zero_point),
        _mm512_set1_epi32(r.min),
        _mm512_set1_epi32(r.max),
    );
    let rows = (sums.len() / channels).min(out.len() / channels);
    // A channel group's multipliers are loaded once for every row: the rows are then
    // independent chains the processor overlaps.
    let mut c = 0;
    while c < channels {
        let lanes = (channels - c).min(16);
        let k: __mmask16 = if lanes == 16 {
            0xffff
        } else {
            (1u16 << lanes) - 1
        };
        let load =
            |v: &[i32], at: usize| _mm512_maskz_loadu_epi32(k, v.as_ptr().add(at) as *const _);
        let (left, value) = (load(&m.left_factors, first + c), load(&m.values, first + c));
        let (mask, right) = (load(&m.masks, first + c), load(&m.right_shifts, first + c));
        let half_mask = _mm512_srai_epi32(mask, 1);
        let odd_value = _mm512_srli_epi64(value, 32);
        for row in 0..rows {
            let at = row * channels + c;
            let x = _mm512_mullo_epi32(load(sums, at), left);
            let even = _mm512_mul_epi32(x, value);
            let odd = _mm512_mul_epi32(_mm512_srli_epi64(x, 32), odd_value);
            let even = _mm512_srai_epi64(_mm512_add_epi64(even, rounding), 31);
            let odd = _mm512_srai_epi64(_mm512_add_epi64(odd, rounding), 31);
            let high = _mm512_mask_blend_epi32(0xaaaa, even, _mm512_slli_epi64(odd, 32));
            let threshold = _mm512_add_epi32(half_mask, _mm512_srli_epi32(high, 31));
            let up = _mm512_cmpgt_epi32_mask(_mm512_and_si512(high, mask), threshold);
            let shifted = _mm512_srav_epi32(high, right);
            let scaled = _mm512_mask_add_epi32(shifted, up, shifted, _mm512_set1_epi32(1));
            let v = _mm512_add_epi32(scaled, zero_point);
            let v = _mm512_min_epi32(_mm512_max_epi32(v, min), max);
            // Narrowed in a register, then stored: the narrowing store to memory is slow on
            // some processors (Zen 4).
            let bytes = _mm512_cvtepi32_epi8(v);
            let to = out.as_mut_ptr().add(at);
            if lanes == 16 {
                _mm_storeu_si128(to as *mut _, bytes);
            } else {
                _mm_mask_storeu_epi8(to as *mut _, k, bytes);
            }
        }
        c += lanes;
    }
}

/// `clamp(round(x / scale) + zero_point, lo, hi)` as stored bytes, rounding half away from
/// zero and NaN to 0 as QUANTIZE's portable loop does; `zero_point` within ±2^30.
///
/// # Safety
/// The processor must have AVX-512F, BW and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(crate) unsafe fn bytes_from_float(
    x: &[f32],
    scale: f32,
    zero_point: i32,
    (lo, hi): (i32, i32),
    out: &mut [u8],
) {
    let n = x.len().min(out.len());
    let (scale, half, one) = (
        _mm512_set1_ps(scale),
        _mm512_set1_ps(0.5),
        _mm512_set1_ps(1.0),
    );
    // Beyond ±2^30 every value clamps alike; within it the conversion is exact.
    let (low, high) = (
        _mm512_set1_ps(-1_073_741_824.0),
        _mm512_set1_ps(1_073_741_824.0),
    );
    let sign = _mm512_set1_epi32(i32::MIN);
    let (zero_point, lo, hi) = (
        _mm512_set1_epi32(zero_point),
        _mm512_set1_epi32(lo),
        _mm512_set1_epi32(hi),
    );
    let mut i = 0;
    while i < n {
        let lanes = (n - i).min(16);
        let k: __mmask16 = if lanes == 16 {
            0xffff
        } else {
            (1u16 << lanes) - 1
        };
        let v = _mm512_div_ps(_mm512_maskz_loadu_ps(k, x.as_ptr().add(i)), scale);
        let v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), v);
        let whole = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        let away = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, whole)), half, _CMP_GE_OQ);
        let signed_one = _mm512_castsi512_ps(_mm512_or_si512(
            _mm512_and_si512(_mm512_castps_si512(v), sign),
            _mm512_castps_si512(one),
        ));
        let rounded = _mm512_mask_add_ps(whole, away, whole, signed_one);
        let rounded = _mm512_min_ps(_mm512_max_ps(rounded, low), high);
        let q = _mm512_add_epi32(_mm512_cvttps_epi32(rounded), zero_point);
        let q = _mm512_min_epi32(_mm512_max_epi32(q, lo), hi);
        let bytes = _mm512_cvtepi32_epi8(q);
        let to = out.as_mut_ptr().add(i);
        if lanes == 16 {
            _mm_storeu_si128(to as *mut _, bytes);
        } else {
            _mm_mask_storeu_epi8(to as *mut _, k, bytes);
        }
        i += lanes;
    }
}
