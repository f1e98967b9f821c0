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
    for (sums, out) in sums.chunks(channels).zip(out.chunks_mut(channels)) {
        let len = sums.len().min(out.len());
        let mut c = 0;
        while c < len {
            let lanes = (len - c).min(16);
            let k: __mmask16 = if lanes == 16 {
                0xffff
            } else {
                (1u16 << lanes) - 1
            };
            let load = |v: &[i32]| _mm512_maskz_loadu_epi32(k, v.as_ptr().add(c) as *const _);
            let x = _mm512_mullo_epi32(load(sums), load(&m.left_factors));
            let value = load(&m.values);
            let even = _mm512_mul_epi32(x, value);
            let odd = _mm512_mul_epi32(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(value, 32));
            let even = _mm512_srai_epi64(_mm512_add_epi64(even, rounding), 31);
            let odd = _mm512_srai_epi64(_mm512_add_epi64(odd, rounding), 31);
            let high = _mm512_mask_blend_epi32(0xaaaa, even, _mm512_slli_epi64(odd, 32));
            let (mask, right) = (load(&m.masks), load(&m.right_shifts));
            let negative = _mm512_srli_epi32(high, 31);
            let threshold = _mm512_add_epi32(_mm512_srai_epi32(mask, 1), negative);
            let remainder = _mm512_and_si512(high, mask);
            let up = _mm512_cmpgt_epi32_mask(remainder, threshold);
            let shifted = _mm512_srav_epi32(high, right);
            let scaled = _mm512_mask_add_epi32(shifted, up, shifted, _mm512_set1_epi32(1));
            let v = _mm512_add_epi32(scaled, zero_point);
            let v = _mm512_min_epi32(_mm512_max_epi32(v, min), max);
            // Narrowed in a register, then stored: the narrowing store to memory is slow on
            // some processors (Zen 4).
            let bytes = _mm512_cvtepi32_epi8(v);
            let at = out.as_mut_ptr().add(c);
            if lanes == 16 {
                _mm_storeu_si128(at as *mut _, bytes);
            } else {
                _mm_mask_storeu_epi8(at as *mut _, k, bytes);
            }
            c += lanes;
        }
    }
}
