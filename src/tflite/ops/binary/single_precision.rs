//! Quantized ADD, SUB and MUL in single precision, used only where it gives the reference's
//! integers for every pair of stored inputs. An 8-bit operator's output depends on nothing but
//! its two stored inputs, so trying all 65 536 pairs against the fixed-point arithmetic when
//! the operator is prepared proves the shortcut for that operator: a few multiply-adds for
//! sixteen values, against three fixed-point multiplications each (ResNet50's residual ADDs
//! took a sixth of its time). AVX-512 makes sixteen values at a time, AVX2 eight; each proves
//! its own shortcut.

use super::quantized::{Arithmetic, QuantizedBinary};
use crate::nn::kernels::quantized::requantize_avx2::low_bytes;
use crate::nn::kernels::quantized::requantize_avx512::{combine_bytes, PairArithmetic};
use crate::nn::kernels::quantized::Multiplier;
use std::arch::x86_64::*;

/// The operation's result at the output's scale, `w`, made in single precision from the offset
/// inputs, then stored as `⌊w + zero point + ½ ± d⌋` clamped: `d` half the output
/// multiplier's right-shift step with the sign of `w`, the reference's rounding of ties away
/// from zero folded in (as `requantize_avx512`'s single-precision requantization does).
#[derive(Clone, Copy)]
pub(super) struct SinglePrecisionPair {
    form: Form,
    offsets: [i32; 2],
    /// `zero point + ½`, less [`WINDOW`] where the result is `checked`.
    start: f32,
    half_step: f32,
    /// The activation's range, `(min, max + ½)`: clamped before the rounding, so that no
    /// value is beyond what the conversion to integers holds.
    bounds: (f32, f32),
    /// For an operator where the plain shortcut missed some pairs (their results lie nearer a
    /// rounding point than single precision tells): the fixed-point arithmetic and output
    /// zero point, which make the sixteen values again wherever one lies within [`WINDOW`] of
    /// a rounding point.
    checked: Option<(Arithmetic, i32)>,
}

#[derive(Clone, Copy)]
enum Form {
    /// `w = a × scales[0] + b × scales[1]` (the second negative for SUB).
    Sum([f32; 2]),
    /// `w = a × b × scale`.
    Product(f32),
}

/// Half the width of the band around each rounding point where a checked shortcut hands over
/// to the fixed-point arithmetic.
const WINDOW: f32 = 1.0 / 2048.0;

/// The share of pairs near a rounding point above which the checked shortcut, handing over
/// for so many groups of sixteen, is no faster than the fixed-point arithmetic.
const MOST_UNCERTAIN: usize = 65_536 / 100;

impl SinglePrecisionPair {
    /// The shortcut for `q` on int8 (`signed`) or uint8 values, where it stores the same bytes
    /// as `q`'s fixed-point arithmetic for every pair of inputs: plain where it can be, else
    /// checked near the rounding points where few pairs lie there. The processor must have
    /// AVX-512F, BW and VL.
    pub(super) fn verified(q: &QuantizedBinary, signed: bool) -> Option<Self> {
        let (plain, checked) = (Self::plain(q), Self::checked(q));
        // SAFETY: the caller's promise.
        unsafe {
            let pairs = AllPairs::new(signed);
            let exact = pairs.bytes(q, (q.min, q.max));
            if pairs.bytes(&plain, (q.min, q.max)) == exact {
                return Some(plain);
            }
            let rare = pairs.uncertain(&checked) <= MOST_UNCERTAIN;
            (rare && pairs.bytes(&checked, (q.min, q.max)) == exact).then_some(checked)
        }
    }

    /// The shortcut for `q`, checked near the rounding points.
    fn checked(q: &QuantizedBinary) -> Self {
        let plain = Self::plain(q);
        SinglePrecisionPair {
            start: plain.start - WINDOW,
            checked: Some((q.arithmetic, q.output_zero_point)),
            ..plain
        }
    }

    /// The shortcut for `q`, unchecked.
    fn plain(q: &QuantizedBinary) -> Self {
        let (output, form) = match q.arithmetic {
            Arithmetic::Sum {
                inputs: [ma, mb],
                output,
                subtract,
            } => {
                let headroom = (1 << super::quantized::LEFT_SHIFT) as f64 * real(output);
                let b = if subtract { -real(mb) } else { real(mb) };
                (
                    output,
                    Form::Sum([(real(ma) * headroom) as f32, (b * headroom) as f32]),
                )
            }
            Arithmetic::Product(m) => (m, Form::Product(real(m) as f32)),
        };
        SinglePrecisionPair {
            form,
            offsets: q.offsets,
            start: q.output_zero_point as f32 + 0.5,
            half_step: match (-output.shift).max(0) {
                0 => 0.0,
                s => 2f32.powi(-1 - s),
            },
            bounds: (q.min as f32, q.max as f32 + 0.5),
            checked: None,
        }
    }

    /// The offset inputs' result before the rounding, `w + start ± d`.
    #[inline(always)]
    unsafe fn unrounded(&self, x: __m512i, y: __m512i) -> __m512 {
        let [oa, ob] = self.offsets;
        let x = _mm512_cvtepi32_ps(_mm512_add_epi32(x, _mm512_set1_epi32(oa)));
        let y = _mm512_cvtepi32_ps(_mm512_add_epi32(y, _mm512_set1_epi32(ob)));
        let w = match self.form {
            Form::Sum([sa, sb]) => {
                _mm512_fmadd_ps(x, _mm512_set1_ps(sa), _mm512_mul_ps(y, _mm512_set1_ps(sb)))
            }
            Form::Product(scale) => _mm512_mul_ps(_mm512_mul_ps(x, y), _mm512_set1_ps(scale)),
        };
        // `±d` with the sign of w: (w AND sign bit) OR d.
        let signed_step = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
            _mm512_castps_si512(w),
            _mm512_set1_epi32(i32::MIN),
            _mm512_castps_si512(_mm512_set1_ps(self.half_step)),
            0xea,
        ));
        _mm512_add_ps(w, _mm512_add_ps(_mm512_set1_ps(self.start), signed_step))
    }

    /// The lanes of `v` (one of [`SinglePrecisionPair::unrounded`]) within the window's width
    /// below a rounding point (`v` itself being a window below the result).
    #[inline(always)]
    unsafe fn uncertain_lanes(v: __m512) -> __mmask16 {
        let high = _mm512_add_ps(v, _mm512_set1_ps(2.0 * WINDOW));
        _mm512_cmpneq_epi32_mask(floor(v), floor(high))
    }
}

impl SinglePrecisionPair {
    /// [`SinglePrecisionPair::verified`] for AVX2, eight values at a time
    /// ([`SinglePrecisionPair::bytes_avx2`]). The processor must have AVX2 and FMA.
    pub(super) fn verified_avx2(q: &QuantizedBinary, signed: bool) -> Option<Self> {
        let (plain, checked) = (Self::plain(q), Self::checked(q));
        let pairs = AllPairs::new(signed);
        let run = |shortcut: &Self| {
            let mut out = vec![0u8; pairs.firsts.len()];
            let (a, b) = (&pairs.firsts, &pairs.seconds);
            // SAFETY: the caller's promise.
            unsafe {
                match signed {
                    true => shortcut.bytes_avx2::<true>(q, a, b, &mut out),
                    false => shortcut.bytes_avx2::<false>(q, a, b, &mut out),
                }
            }
            out
        };
        let exact: Vec<u8> = (pairs.firsts.iter().zip(&pairs.seconds))
            .map(|(&x, &y)| exact_byte(q, signed, x, y))
            .collect();
        if run(&plain) == exact {
            return Some(plain);
        }
        // SAFETY: the caller's promise.
        let rare = unsafe { pairs.uncertain_avx2(&checked) } <= MOST_UNCERTAIN;
        (rare && run(&checked) == exact).then_some(checked)
    }

    /// `out[i]`, the stored output of stored inputs `a[i]` and `b[i]` (two's complement with
    /// `SIGNED`), eight at a time; a checked shortcut makes a group of eight with a value
    /// near a rounding point by `q`'s fixed-point arithmetic.
    ///
    /// # Safety
    /// The processor must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn bytes_avx2<const SIGNED: bool>(
        &self,
        q: &QuantizedBinary,
        a: &[u8],
        b: &[u8],
        out: &mut [u8],
    ) {
        let n = out.len().min(a.len()).min(b.len());
        let mut i = 0;
        while i + 8 <= n {
            let x = widened_avx2::<SIGNED>(&a[i..i + 8]);
            let y = widened_avx2::<SIGNED>(&b[i..i + 8]);
            let v = self.unrounded_avx2(x, y);
            if self.checked.is_some() && uncertain_lanes_avx2(v) != 0 {
                for j in i..i + 8 {
                    out[j] = exact_byte(q, SIGNED, a[j], b[j]);
                }
            } else {
                let (lo, hi) = self.bounds;
                let v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(lo)), _mm256_set1_ps(hi));
                let stored = _mm256_cvttps_epi32(_mm256_floor_ps(v));
                _mm_storel_epi64(out.as_mut_ptr().add(i) as *mut _, low_bytes(stored));
            }
            i += 8;
        }
        if i < n {
            let (mut x, mut y, mut last) = ([0u8; 8], [0u8; 8], [0u8; 8]);
            x[..n - i].copy_from_slice(&a[i..n]);
            y[..n - i].copy_from_slice(&b[i..n]);
            self.bytes_avx2::<SIGNED>(q, &x, &y, &mut last);
            out[i..n].copy_from_slice(&last[..n - i]);
        }
    }

    /// [`SinglePrecisionPair::unrounded`] in eight lanes.
    #[inline(always)]
    unsafe fn unrounded_avx2(&self, x: __m256i, y: __m256i) -> __m256 {
        let [oa, ob] = self.offsets;
        let x = _mm256_cvtepi32_ps(_mm256_add_epi32(x, _mm256_set1_epi32(oa)));
        let y = _mm256_cvtepi32_ps(_mm256_add_epi32(y, _mm256_set1_epi32(ob)));
        let w = match self.form {
            Form::Sum([sa, sb]) => {
                _mm256_fmadd_ps(x, _mm256_set1_ps(sa), _mm256_mul_ps(y, _mm256_set1_ps(sb)))
            }
            Form::Product(scale) => _mm256_mul_ps(_mm256_mul_ps(x, y), _mm256_set1_ps(scale)),
        };
        let sign = _mm256_and_ps(w, _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN)));
        let signed_step = _mm256_or_ps(sign, _mm256_set1_ps(self.half_step));
        _mm256_add_ps(w, _mm256_add_ps(_mm256_set1_ps(self.start), signed_step))
    }
}

/// Eight stored bytes widened to 32-bit lanes.
#[inline(always)]
unsafe fn widened_avx2<const SIGNED: bool>(bytes: &[u8]) -> __m256i {
    let v = _mm_loadl_epi64(bytes.as_ptr() as *const _);
    match SIGNED {
        true => _mm256_cvtepi8_epi32(v),
        false => _mm256_cvtepu8_epi32(v),
    }
}

/// The lanes of `v` (one of [`SinglePrecisionPair::unrounded_avx2`]) within the window's width
/// below a rounding point, as bits.
#[inline(always)]
unsafe fn uncertain_lanes_avx2(v: __m256) -> i32 {
    let high = _mm256_add_ps(v, _mm256_set1_ps(2.0 * WINDOW));
    let differ = _mm256_cmp_ps::<_CMP_NEQ_OQ>(_mm256_floor_ps(v), _mm256_floor_ps(high));
    _mm256_movemask_ps(differ)
}

/// `q`'s stored output of two stored bytes by its fixed-point arithmetic.
fn exact_byte(q: &QuantizedBinary, signed: bool, x: u8, y: u8) -> u8 {
    match signed {
        true => q.stored_exact(x as i8, y as i8) as u8,
        false => q.stored_exact(x, y),
    }
}

/// The integers below each lane (the lowest int32 where it is beyond their range).
#[inline(always)]
unsafe fn floor(v: __m512) -> __m512i {
    _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(v)
}

/// The multiplier's real value, `fraction × 2^(shift − 31)`.
fn real(m: Multiplier) -> f64 {
    m.value as f64 * 2f64.powi(m.shift - 31)
}

impl PairArithmetic for SinglePrecisionPair {
    #[inline(always)]
    unsafe fn combine(&self, x: __m512i, y: __m512i) -> __m512i {
        let v = self.unrounded(x, y);
        if let Some((arithmetic, zero_point)) = &self.checked {
            if Self::uncertain_lanes(v) != 0 {
                return arithmetic.combine_avx512((self.offsets, *zero_point), x, y);
            }
        }
        let (lo, hi) = self.bounds;
        floor(_mm512_min_ps(
            _mm512_max_ps(v, _mm512_set1_ps(lo)),
            _mm512_set1_ps(hi),
        ))
    }
}

/// Every pair of stored 8-bit values, the first varying fastest.
struct AllPairs {
    signed: bool,
    firsts: Vec<u8>,
    seconds: Vec<u8>,
}

impl AllPairs {
    fn new(signed: bool) -> Self {
        AllPairs {
            signed,
            firsts: (0..=u16::MAX).map(|i| i as u8).collect(),
            seconds: (0..=u16::MAX).map(|i| (i >> 8) as u8).collect(),
        }
    }

    /// The bytes `f` stores for every pair.
    ///
    /// # Safety
    /// The processor must have AVX-512F, BW and VL.
    unsafe fn bytes<F: PairArithmetic>(&self, f: &F, bounds: (i32, i32)) -> Vec<u8> {
        let (a, b) = (&self.firsts, &self.seconds);
        let mut out = vec![0u8; a.len()];
        match self.signed {
            true => combine_bytes::<true, _>(a, b, &mut out, f, bounds),
            false => combine_bytes::<false, _>(a, b, &mut out, f, bounds),
        }
        out
    }

    /// How many pairs' results `shortcut` finds near a rounding point in eight lanes.
    ///
    /// # Safety
    /// The processor must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn uncertain_avx2(&self, shortcut: &SinglePrecisionPair) -> usize {
        let pairs = self
            .firsts
            .chunks_exact(8)
            .zip(self.seconds.chunks_exact(8));
        let mut count = 0;
        for (a, b) in pairs {
            let (x, y) = match self.signed {
                true => (widened_avx2::<true>(a), widened_avx2::<true>(b)),
                false => (widened_avx2::<false>(a), widened_avx2::<false>(b)),
            };
            let v = shortcut.unrounded_avx2(x, y);
            count += uncertain_lanes_avx2(v).count_ones() as usize;
        }
        count
    }

    /// How many pairs' results `shortcut` finds near a rounding point.
    ///
    /// # Safety
    /// The processor must have AVX-512F, BW and VL.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn uncertain(&self, shortcut: &SinglePrecisionPair) -> usize {
        let widened = |bytes: &[u8]| {
            let v = _mm_loadu_si128(bytes.as_ptr() as *const _);
            match self.signed {
                true => _mm512_cvtepi8_epi32(v),
                false => _mm512_cvtepu8_epi32(v),
            }
        };
        let pairs = self
            .firsts
            .chunks_exact(16)
            .zip(self.seconds.chunks_exact(16));
        pairs
            .map(|(a, b)| {
                let v = shortcut.unrounded(widened(a), widened(b));
                SinglePrecisionPair::uncertain_lanes(v).count_ones() as usize
            })
            .sum()
    }
}
