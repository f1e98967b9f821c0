//! The fixed-point requantization of [`super::Requantize`] written out in AVX-512 for int8 and
//! uint8 outputs: sixteen sums per step, bit for bit the portable [`super::fixed_point::scale`]
//! (64-bit products of the even and odd lanes, gemmlowp's rounding, then the rounding shift),
//! where the compiler's own vectorisation of that loop spends twice the instructions.

use super::{Multipliers, Requantize};
use std::arch::x86_64::*;

/// Rows of `channels` sums to stored bytes (two's complement for int8), as
/// `store_fixed_portable` does.
///
/// # Safety
/// The processor must have AVX-512F, BW and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn store_bytes(
    r: &Requantize,
    m: &Multipliers,
    channels: usize,
    sums: &[i32],
    out: &mut [u8],
) {
    let channels = channels.min(m.values.len()).max(1);
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
        let k: __mmask16 = if lanes == 16 { 0xffff } else { (1u16 << lanes) - 1 };
        let load = |v: &[i32], at: usize| _mm512_maskz_loadu_epi32(k, v.as_ptr().add(at) as *const _);
        let (left, value) = (load(&m.left_factors, c), load(&m.values, c));
        let (mask, right) = (load(&m.masks, c), load(&m.right_shifts, c));
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
