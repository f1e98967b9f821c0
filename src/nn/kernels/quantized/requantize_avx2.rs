//! The requantization of rows of sums to int8 and uint8 in AVX2, eight values per step, by
//! the single-precision first try that `requantize_avx512` proves exact (multipliers below one
//! half, zero points within ±255): the uncertain groups of eight, about one in a hundred, and
//! every channel group whose multipliers do not qualify take the fixed-point arithmetic, the
//! portable loop's.

use super::fixed_point::scale;
use super::{Multipliers, Requantize};
use std::arch::x86_64::*;
use std::ops::Range;

/// Half the width of the window around each rounding point within which a value is left to
/// the fixed-point arithmetic (see `requantize_avx512::SinglePrecision`).
const WINDOW: f32 = 1.0 / 2048.0;

/// Rows of the sums of `channels` to stored bytes (two's complement for int8), as
/// `store_fixed_portable` does.
///
/// # Safety
/// The processor must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn store_bytes(
    r: &Requantize,
    m: &Multipliers,
    channels: Range<usize>,
    sums: &[i32],
    out: &mut [u8],
) {
    let first = channels.start;
    let width = channels.len().max(1);
    let rows = (sums.len() / width).min(out.len() / width);
    let mut c = 0;
    while c < channels.len() {
        let lanes = (channels.len() - c).min(8);
        let group = Group::new(r, m, first + c..first + c + lanes);
        for row in 0..rows {
            let at = row * width + c;
            group.store(&sums[at..at + lanes], &mut out[at..at + lanes]);
        }
        c += lanes;
    }
}

/// Up to eight channels' multipliers, in registers where they qualify.
struct Group<'a> {
    r: &'a Requantize,
    m: &'a Multipliers,
    channels: Range<usize>,
    single: Option<SinglePrecision>,
    mask: __m256i,
    bounds: (__m256i, __m256i),
}

struct SinglePrecision {
    value: __m256,
    half_step: __m256,
    /// `z + ½ − WINDOW`.
    start: __m256,
}

impl<'a> Group<'a> {
    #[inline(always)]
    unsafe fn new(r: &'a Requantize, m: &'a Multipliers, channels: Range<usize>) -> Self {
        let lanes = channels.len() as i32;
        let mask = _mm256_cmpgt_epi32(
            _mm256_set1_epi32(lanes),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        );
        let qualifies = m.single_precision(channels.clone(), r.zero_point);
        // No closures: they would not take the caller's target features.
        let single = match qualifies {
            true => Some(SinglePrecision {
                value: _mm256_maskload_ps(m.real_values.as_ptr().add(channels.start), mask),
                half_step: _mm256_maskload_ps(m.half_steps.as_ptr().add(channels.start), mask),
                start: _mm256_set1_ps(r.zero_point as f32 + 0.5 - WINDOW),
            }),
            false => None,
        };
        Group {
            r,
            m,
            single,
            channels,
            mask,
            bounds: (_mm256_set1_epi32(r.min), _mm256_set1_epi32(r.max)),
        }
    }

    /// One row's sums of the group's channels as stored bytes.
    #[inline(always)]
    unsafe fn store(&self, sums: &[i32], out: &mut [u8]) {
        let x = _mm256_maskload_epi32(sums.as_ptr(), self.mask);
        let outputs = match &self.single {
            Some(single) => single.outputs(x),
            None => None,
        };
        let Some(outputs) = outputs else {
            return self.store_fixed(sums, out);
        };
        let (lo, hi) = self.bounds;
        let v = _mm256_min_epi32(_mm256_max_epi32(outputs, lo), hi);
        // Within the range, the low byte of each lane is the stored byte.
        let bytes = low_bytes(v);
        match out.len() {
            8 => _mm_storel_epi64(out.as_mut_ptr() as *mut _, bytes),
            n => out.copy_from_slice(&_mm_cvtsi128_si64(bytes).to_le_bytes()[..n]),
        }
    }

    /// The row by the fixed-point arithmetic.
    #[cold]
    fn store_fixed(&self, sums: &[i32], out: &mut [u8]) {
        let (m, r) = (self.m, self.r);
        for ((o, &sum), c) in out.iter_mut().zip(sums).zip(self.channels.clone()) {
            let scaled = scale(
                sum,
                m.values[c],
                m.left_factors[c],
                m.right_shifts[c],
                m.masks[c],
            );
            *o = scaled.wrapping_add(r.zero_point).clamp(r.min, r.max) as u8;
        }
    }
}

/// The low byte of each 32-bit lane, in order.
#[inline(always)]
pub(crate) unsafe fn low_bytes(v: __m256i) -> __m128i {
    let gather = _mm256_setr_epi8(
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1,
        -1, -1, -1, -1, -1, -1, -1, -1,
    );
    let v = _mm256_shuffle_epi8(v, gather);
    _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(
        v,
        _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0),
    ))
}

impl SinglePrecision {
    /// The outputs, unless a lane lies within the window of a rounding point.
    #[inline(always)]
    unsafe fn outputs(&self, x: __m256i) -> Option<__m256i> {
        let x = _mm256_cvtepi32_ps(x);
        let signed_step = _mm256_or_ps(
            _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN))),
            self.half_step,
        );
        let low = _mm256_fmadd_ps(x, self.value, _mm256_add_ps(self.start, signed_step));
        let high = _mm256_add_ps(low, _mm256_set1_ps(2.0 * WINDOW));
        let floor = _mm256_cvttps_epi32(_mm256_floor_ps(low));
        let certain = _mm256_cmpeq_epi32(floor, _mm256_cvttps_epi32(_mm256_floor_ps(high)));
        (_mm256_movemask_epi8(certain) == -1).then_some(floor)
    }
}
