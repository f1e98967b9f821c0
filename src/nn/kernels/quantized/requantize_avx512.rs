//! Conversions to int8 and uint8 written out in AVX-512, sixteen values per step, bit for bit
//! their portable forms where the compiler's own vectorisation spends twice the instructions:
//! the fixed-point requantization of [`super::Requantize`] (64-bit products of the even and
//! odd lanes, gemmlowp's rounding, then the rounding shift, as [`super::fixed_point::scale`]),
//! and QUANTIZE's float rounding; and the element-wise arithmetic of two rows of stored
//! values (quantized ADD, SUB and MUL) on the same fixed-point steps.

use super::{Multiplier, Multipliers, Requantize};
use std::arch::x86_64::*;
use std::ops::Range;

/// Rows of the sums of `channels` to stored bytes (two's complement for int8), as
/// `store_fixed_portable` does, each row the maxima of `pool` neighbouring rows of sums.
///
/// # Safety
/// The processor must have AVX-512F, BW and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn store_bytes(
    r: &Requantize,
    m: &Multipliers,
    channels: Range<usize>,
    pool: usize,
    sums: &[i32],
    out: &mut [u8],
) {
    // Unpooled rows, nearly all of them, get a loop without the pooling's: its per-row
    // branches and address arithmetic cost as much as requantizing.
    match pool > 1 {
        true => store_rows::<true>(r, m, channels, pool, sums, out),
        false => store_rows::<false>(r, m, channels, 1, sums, out),
    }
}

/// [`store_bytes`], with rows pooled or not. (Its own target features, not `inline(always)`:
/// closures take the features of the function they are written in.)
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn store_rows<const POOLED: bool>(
    r: &Requantize,
    m: &Multipliers,
    channels: Range<usize>,
    pool: usize,
    sums: &[i32],
    out: &mut [u8],
) {
    let first = channels.start;
    let channels = channels
        .end
        .min(m.values.len())
        .saturating_sub(first)
        .max(1);
    let pool = pool.max(1);
    let rows = (sums.len() / channels / pool).min(out.len() / channels);
    let bounds = Bounds::new(r);
    // A channel group's multipliers are loaded once for every row: the rows are then
    // independent chains the processor overlaps.
    let mut c = 0;
    while c < channels {
        let group = Group::new(m, first + c, (channels - c).min(16), r.zero_point);
        let at = |row: usize| row * channels + c;
        let pooled = |row: usize| match POOLED {
            true => group.load_max(sums, row * pool * channels + c, pool, channels),
            false => group.load(sums, row * channels + c),
        };
        let mut row = 0;
        while row + 4 <= rows {
            let v = [0, 1, 2, 3].map(|i| group.requantized(pooled(row + i)));
            let packed = bounds.pack(v);
            if group.lanes == 16 && channels == 16 {
                _mm512_storeu_si512(out.as_mut_ptr().add(at(row)) as *mut _, packed);
            } else {
                for (i, bytes) in lanes_of(packed).into_iter().enumerate() {
                    group.store(bytes, out.as_mut_ptr().add(at(row + i)));
                }
            }
            row += 4;
        }
        for row in row..rows {
            let v = group.requantized(pooled(row));
            let [bytes, ..] = lanes_of(bounds.pack([v; 4]));
            group.store(bytes, out.as_mut_ptr().add(at(row)));
        }
        c += group.lanes;
    }
}

/// The requantization of sums a product still holds in registers, for a [`Requantize`] whose
/// every channel takes the single-precision path ([`SinglePrecision`]): multipliers below one
/// half, the zero point within ±255. The rare uncertain lanes go through the fixed-point arithmetic.
pub(crate) struct InRegisters<'a> {
    m: &'a Multipliers,
    zero_point: i32,
    bounds: Bounds,
    start: __m512,
}

/// Up to 16 channels' single-precision multipliers, from channel `first` on.
#[derive(Clone, Copy)]
pub(crate) struct RegisterChannels {
    first: usize,
    lanes: usize,
    mask: __mmask16,
    single: SinglePrecision,
}

impl<'a> InRegisters<'a> {
    /// `None` where some channel needs the fixed-point path, or the processor lacks AVX-512
    /// F, BW or VL.
    pub(crate) fn new(r: &'a Requantize) -> Option<Self> {
        let super::Scaling::Fixed(m) = &r.scaling else {
            return None;
        };
        let single = m.single_precision(0..m.len(), r.zero_point);
        // SAFETY: `avx512bw()` checked the features the constructors' intrinsics need.
        (single && super::avx512bw()).then(|| unsafe {
            InRegisters {
                m,
                zero_point: r.zero_point,
                bounds: Bounds::new(r),
                start: _mm512_set1_ps(r.zero_point as f32 + 0.5 - WINDOW),
            }
        })
    }

    /// The multipliers of channels `first..first + lanes` (`lanes` at most 16).
    #[inline(always)]
    pub(crate) unsafe fn channels(&self, first: usize, lanes: usize) -> RegisterChannels {
        let mask = lane_mask(lanes);
        let load = |v: &[f32]| _mm512_maskz_loadu_ps(mask, v.as_ptr().add(first));
        RegisterChannels {
            first,
            lanes,
            mask,
            single: SinglePrecision {
                value: load(&self.m.real_values),
                half_step: load(&self.m.half_steps),
                start: self.start,
            },
        }
    }

    /// Four vectors of sums as clamped bytes, vector `i` (of channels `c[i]`) in 128-bit
    /// lane `i`.
    #[inline(always)]
    pub(crate) unsafe fn bytes(&self, c: [&RegisterChannels; 4], sums: [__m512i; 4]) -> __m512i {
        // Loops, not closures: a closure would not take the caller's target features.
        let mut outputs = sums;
        let mut uncertain = [0; 4];
        for ((x, c), uncertain) in outputs.iter_mut().zip(c).zip(&mut uncertain) {
            (*x, *uncertain) = c.single.outputs(*x);
        }
        if uncertain != [0; 4] {
            let channels = c.map(|c| (c.first, c.lanes));
            fixed_point_outputs(
                self.m,
                channels,
                self.zero_point,
                (sums, uncertain),
                &mut outputs,
            );
        }
        self.bounds.pack(outputs)
    }

    /// Two panels' bytes of one row, the second panel's channels `c`.
    #[inline(always)]
    pub(crate) unsafe fn store_two(&self, c: &RegisterChannels, bytes: __m256i, to: *mut u8) {
        match c.lanes {
            16 => _mm256_storeu_si256(to as *mut _, bytes),
            lanes => _mm256_mask_storeu_epi8(to as *mut _, (1 << (16 + lanes)) - 1, bytes),
        }
    }

    /// One row's bytes for the channels.
    #[inline(always)]
    pub(crate) unsafe fn store(&self, c: &RegisterChannels, bytes: __m128i, to: *mut u8) {
        match c.lanes {
            16 => _mm_storeu_si128(to as *mut _, bytes),
            _ => _mm_mask_storeu_epi8(to as *mut _, c.mask, bytes),
        }
    }
}

/// The rows' bytes in 128-bit lanes, as [`InRegisters::bytes`] packs them.
#[inline(always)]
pub(crate) unsafe fn row_bytes(packed: __m512i) -> [__m128i; 4] {
    lanes_of(packed)
}

/// The fixed-point outputs of those of four vectors of sums (each of channels `first..first +
/// lanes`) where a lane lies too near a rounding point for single precision: about one in
/// sixty.
#[cold]
#[inline(never)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn fixed_point_outputs(
    m: &Multipliers,
    channels: [(usize, usize); 4],
    zero_point: i32,
    (sums, uncertain): ([__m512i; 4], [__mmask16; 4]),
    outputs: &mut [__m512i; 4],
) {
    for i in 0..4 {
        if uncertain[i] != 0 {
            let group = Group::new(m, channels[i].0, channels[i].1, zero_point);
            outputs[i] = _mm512_add_epi32(group.scaled(sums[i]), group.zero_point);
        }
    }
}

/// Up to 16 channels' multipliers, in registers: the 32-bit lanes' fractions and left
/// factors, and for the 64-bit products of the even and odd lanes what [`Group::scaled`]
/// adds and shifts by.
struct Group {
    lanes: usize,
    mask: __mmask16,
    /// The left shifts, by which the sums are shifted every time: one instruction, cheaper
    /// than the branch that would skip it for the convolutions that have none.
    left: __m512i,
    value: __m512i,
    /// The odd lanes' fractions in the even lanes, where `vpmuldq` reads them.
    odd_value: __m512i,
    even: Rounding,
    odd: Rounding,
    zero_point: __m512i,
    /// Where every lane's left shift is 0 and the zero point within ±255.
    single: Option<SinglePrecision>,
}

/// gemmlowp's two roundings (the doubling high multiply's, then the rounding right shift's)
/// folded into one shift of the 64-bit product `p`: with `h = ⌊(p + 2^30) / 2^31⌋` and a right
/// shift `s ≥ 1`, the reference result `⌊(h + 2^(s−1) − [h < 0]) / 2^s⌋` equals
/// `⌊(p + 2^30 + 2^(30+s) − [p < −2^30]·2^31) / 2^(31+s)⌋`, since `⌊(⌊a/b⌋ + c)/d⌋ =
/// ⌊(a + cb)/(bd)⌋` for integers; with `s = 0` it is `⌊(p + 2^30) / 2^31⌋`. No term overflows:
/// `|p| < 2^62` and `s ≤ 31`.
struct Rounding {
    /// `2^30 + 2^(30+s)`, or `2^30` when `s = 0`.
    add: __m512i,
    /// `−2^31` when `s ≥ 1`: added for the negative products. The fractions are 0 or at
    /// least 2^30, so a negative product is at most `−2^30`; at `−2^30` itself (a sum of −1
    /// by the fraction 2^30) both readings of the condition give 0.
    below: __m512i,
    /// `31 + s`.
    shift: __m512i,
}

impl Rounding {
    #[inline(always)]
    unsafe fn new(right_shifts: __m512i) -> Self {
        let shifting = _mm512_cmpgt_epi64_mask(right_shifts, _mm512_setzero_si512());
        let half = _mm512_set1_epi64(1 << 30);
        Rounding {
            add: _mm512_add_epi64(half, _mm512_maskz_sllv_epi64(shifting, half, right_shifts)),
            below: _mm512_maskz_mov_epi64(shifting, _mm512_set1_epi64(-(1 << 31))),
            shift: _mm512_add_epi64(right_shifts, _mm512_set1_epi64(31)),
        }
    }

    /// The rounded, shifted products, each in its 64-bit lane's low half. The correction is
    /// arithmetic rather than a masked subtraction: LLVM recomputes a loop-invariant mask
    /// every time, and the compares crowd the shuffle port.
    #[inline(always)]
    unsafe fn apply(&self, products: __m512i) -> __m512i {
        let below = _mm512_and_si512(_mm512_srai_epi64(products, 63), self.below);
        let sum = _mm512_add_epi64(_mm512_add_epi64(products, self.add), below);
        _mm512_srav_epi64(sum, self.shift)
    }
}

impl Group {
    #[inline(always)]
    unsafe fn new(m: &Multipliers, first: usize, lanes: usize, zero_point: i32) -> Self {
        let mask = lane_mask(lanes);
        let load = |v: &[i32]| _mm512_maskz_loadu_epi32(mask, v.as_ptr().add(first) as *const _);
        let load_real = |v: &[f32]| _mm512_maskz_loadu_ps(mask, v.as_ptr().add(first));
        let value = load(&m.values);
        let right = load(&m.right_shifts);
        let left = load(&m.left_shifts);
        Group {
            lanes,
            mask,
            left,
            value,
            odd_value: odd_to_even(value),
            even: Rounding::new(_mm512_srai_epi64(_mm512_slli_epi64(right, 32), 32)),
            odd: Rounding::new(_mm512_srai_epi64(right, 32)),
            zero_point: _mm512_set1_epi32(zero_point),
            single: m
                .single_precision(first..first + lanes, zero_point)
                .then(|| SinglePrecision {
                    value: load_real(&m.real_values),
                    half_step: load_real(&m.half_steps),
                    start: _mm512_set1_ps(zero_point as f32 + 0.5 - WINDOW),
                }),
        }
    }

    /// The sums requantized and moved to the zero point: in single precision where that is
    /// exact ([`SinglePrecision`]), else in fixed point.
    #[inline(always)]
    unsafe fn requantized(&self, x: __m512i) -> __m512i {
        if let Some(single) = &self.single {
            let (outputs, uncertain) = single.outputs(x);
            if uncertain == 0 {
                return outputs;
            }
        }
        _mm512_add_epi32(self.scaled(x), self.zero_point)
    }

    /// The maxima of the group's sums at `sums[at..]` and the `pool − 1` rows of `step` after.
    #[inline(always)]
    unsafe fn load_max(&self, sums: &[i32], at: usize, pool: usize, step: usize) -> __m512i {
        let mut max = self.load(sums, at);
        for i in 1..pool {
            max = _mm512_max_epi32(max, self.load(sums, at + i * step));
        }
        max
    }

    /// The group's sums at `sums[at..]`.
    #[inline(always)]
    unsafe fn load(&self, sums: &[i32], at: usize) -> __m512i {
        _mm512_maskz_loadu_epi32(self.mask, sums.as_ptr().add(at) as *const _)
    }

    /// Sums scaled as [`super::fixed_point::scale`]: 64-bit products of the even and odd
    /// lanes, both roundings in one shift ([`Rounding`]).
    #[inline(always)]
    unsafe fn scaled(&self, x: __m512i) -> __m512i {
        let values = (self.value, self.odd_value);
        fixed_point(x, self.left, values, (&self.even, &self.odd))
    }

    /// One row's bytes for this group's channels.
    #[inline(always)]
    unsafe fn store(&self, bytes: __m128i, to: *mut u8) {
        if self.lanes == 16 {
            _mm_storeu_si128(to as *mut _, bytes);
        } else {
            _mm_mask_storeu_epi8(to as *mut _, self.mask, bytes);
        }
    }
}

/// Half the width of the window around each rounding point within which
/// [`SinglePrecision`] leaves a value to the fixed-point arithmetic.
const WINDOW: f32 = 1.0 / 2048.0;

/// The fixed-point requantization in single precision, where it is exact, for multipliers
/// below one half (a right shift, no left one) or zero: half the instructions.
///
/// With the right shift `s`, the product `f = x × fraction / 2^(31+s)` and `d = 2^−(1+s)`
/// (0 when `s = 0`), the reference's two roundings give exactly `⌊f + ½ + d⌋` for `x ≥ 0` and
/// `⌊f + ½ − d⌋` for `x < 0` (the fold in [`Rounding`], with `[p < 0] = [x < 0]` as the
/// fraction is 0 or at least 2^30). With the zero point `z`, the output is `⌊v⌋` for
/// `v = f + ½ ± d + z`.
///
/// Here `low` is `v − WINDOW` computed in single precision: `x` and the multiplier each
/// rounded (relative error 2^−24), `½ − WINDOW + z ± d` rounded once, and one fused
/// multiply-add. Where `|f| ≤ 2^10`, its error is below `2^−13 + 2^−16 + 2^−13.6 <
/// WINDOW / 2`, so `low < v`; `high = low + 2 WINDOW` (one more rounding, below 2^−13) is
/// above `v`. Where both round down to the same integer, so does `v`: that is the output.
/// Where `|f| > 2^10`, the exact and the computed outputs both lie beyond any stored range
/// from any zero point within ±255, and clamp alike: below one half, the multiplier keeps
/// `|f|` within 2^30, so the conversion back to integers never overflows. Values within about a window of a
/// rounding point (about one lane in a thousand) fail the test and take the fixed-point path.
#[derive(Clone, Copy)]
struct SinglePrecision {
    value: __m512,
    half_step: __m512,
    /// `z + ½ − WINDOW`, exact for `|z| ≤ 255`.
    start: __m512,
}

impl SinglePrecision {
    /// The outputs where the mask's lane is clear.
    #[inline(always)]
    unsafe fn outputs(&self, x: __m512i) -> (__m512i, __mmask16) {
        const FLOOR: i32 = _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC;
        let x = _mm512_cvtepi32_ps(x);
        // `±d` with the sign of x: (x AND sign bit) OR d.
        let signed_step = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
            _mm512_castps_si512(x),
            _mm512_set1_epi32(i32::MIN),
            _mm512_castps_si512(self.half_step),
            0xea,
        ));
        let low = _mm512_fmadd_ps(x, self.value, _mm512_add_ps(self.start, signed_step));
        let high = _mm512_add_ps(low, _mm512_set1_ps(2.0 * WINDOW));
        let floor = _mm512_cvt_roundps_epi32::<FLOOR>(low);
        let uncertain = _mm512_cmpneq_epi32_mask(floor, _mm512_cvt_roundps_epi32::<FLOOR>(high));
        (floor, uncertain)
    }
}

/// One multiplier for every lane: [`Multiplier::apply`], sixteen values at a time.
pub(crate) struct Uniform {
    left: __m512i,
    value: __m512i,
    rounding: Rounding,
}

impl Uniform {
    #[inline(always)]
    pub(crate) unsafe fn new(m: Multiplier) -> Uniform {
        Uniform {
            left: _mm512_set1_epi32(m.shift.max(0)),
            value: _mm512_set1_epi32(m.value),
            rounding: Rounding::new(_mm512_set1_epi64((-m.shift).max(0) as i64)),
        }
    }

    #[inline(always)]
    pub(crate) unsafe fn apply(&self, x: __m512i) -> __m512i {
        let roundings = (&self.rounding, &self.rounding);
        fixed_point(x, self.left, (self.value, self.value), roundings)
    }
}

/// `x` shifted left by `left`, then the 64-bit products of its even and odd lanes by the
/// fractions `values` (the odd lanes' in even lanes, where `vpmuldq` reads them), each rounded
/// and shifted by its [`Rounding`], back in 32-bit lanes.
#[inline(always)]
unsafe fn fixed_point(
    x: __m512i,
    left: __m512i,
    (value, odd_value): (__m512i, __m512i),
    (even, odd): (&Rounding, &Rounding),
) -> __m512i {
    let x = _mm512_sllv_epi32(x, left);
    let even = even.apply(products(x, value));
    let odd = odd.apply(products(odd_to_even(x), odd_value));
    // Each odd result moves from its 64-bit lane's low half to the high one.
    _mm512_mask_shuffle_epi32(even, 0xaaaa, odd, _MM_PERM_CCAA)
}

/// What [`combine_bytes`] does to each pair of values, widened to 32 bits: the result before
/// the clamp. (A trait, not a closure: a closure written outside this module would not take
/// its target features, and the intrinsics would not inline.)
pub(crate) trait PairArithmetic {
    /// # Safety
    /// The processor has AVX-512F and BW.
    unsafe fn combine(&self, x: __m512i, y: __m512i) -> __m512i;
}

/// `out[i] = clamp(f(a[i], b[i]), min, max)` for stored values (two's complement bytes for
/// int8, `SIGNED`), sixteen at a time.
///
/// # Safety
/// The processor must have AVX-512F, BW and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(crate) unsafe fn combine_bytes<const SIGNED: bool, F: PairArithmetic>(
    a: &[u8],
    b: &[u8],
    out: &mut [u8],
    f: &F,
    (min, max): (i32, i32),
) {
    let n = out.len().min(a.len()).min(b.len());
    let (lo, hi) = (_mm512_set1_epi32(min), _mm512_set1_epi32(max));
    let widened = |at: *const u8, k: __mmask16| {
        let bytes = _mm_maskz_loadu_epi8(k, at as *const i8);
        match SIGNED {
            true => _mm512_cvtepi8_epi32(bytes),
            false => _mm512_cvtepu8_epi32(bytes),
        }
    };
    let mut i = 0;
    while i < n {
        let lanes = (n - i).min(16);
        let k = lane_mask(lanes);
        let (x, y) = (widened(a.as_ptr().add(i), k), widened(b.as_ptr().add(i), k));
        let v = _mm512_min_epi32(_mm512_max_epi32(f.combine(x, y), lo), hi);
        _mm_mask_storeu_epi8(out.as_mut_ptr().add(i) as *mut i8, k, low_bytes(v));
        i += lanes;
    }
}

/// The first `lanes` (at most 16) lanes.
#[inline(always)]
fn lane_mask(lanes: usize) -> __mmask16 {
    match lanes {
        16.. => 0xffff,
        _ => (1u16 << lanes) - 1,
    }
}

/// Each 64-bit lane's odd 32-bit value copied to its even one.
#[inline(always)]
unsafe fn odd_to_even(v: __m512i) -> __m512i {
    _mm512_shuffle_epi32(v, _MM_PERM_DDBB)
}

/// The 64-bit products of the even 32-bit lanes, signed: `vpmuldq`, written out because
/// `_mm512_mul_epi32` reaches LLVM as a general 64-bit multiply of sign-extended values, which
/// it may emulate with three unsigned multiplies when it no longer sees the extension (it did
/// for the odd lanes, doubling the requantization's cost).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn products(a: __m512i, b: __m512i) -> __m512i {
    let p: __m512i;
    std::arch::asm!(
        "vpmuldq {p}, {a}, {b}",
        p = lateout(zmm_reg) p,
        a = in(zmm_reg) a,
        b = in(zmm_reg) b,
        options(pure, nomem, nostack, preserves_flags),
    );
    p
}

/// The output's range, applied to packed bytes.
struct Bounds {
    signed: bool,
    min: __m512i,
    max: __m512i,
}

impl Bounds {
    #[inline(always)]
    unsafe fn new(r: &Requantize) -> Self {
        // The range lies within the output type's, so the byte's own reading of it is exact.
        Bounds {
            signed: r.min < 0,
            min: _mm512_set1_epi8(r.min as i8),
            max: _mm512_set1_epi8(r.max as i8),
        }
    }

    /// Four rows of 16 values to bytes, row `i` in 128-bit lane `i`, clamped to the range.
    /// The packs saturate on the way, which a clamp to a narrower range makes no difference
    /// to; four rows at a time, they cost a quarter of narrowing each row (`vpmovdb` is slow
    /// on Zen 4) and clamp once for all.
    #[inline(always)]
    unsafe fn pack(&self, [a, b, c, d]: [__m512i; 4]) -> __m512i {
        let (ab, cd) = (_mm512_packs_epi32(a, b), _mm512_packs_epi32(c, d));
        // Per 128-bit lane `l`: a's, b's, c's and d's values 4l..4l+4, 32 bits each.
        let interleaved = match self.signed {
            true => _mm512_packs_epi16(ab, cd),
            false => _mm512_packus_epi16(ab, cd),
        };
        let rows = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        let v = _mm512_permutexvar_epi32(rows, interleaved);
        match self.signed {
            true => _mm512_min_epi8(_mm512_max_epi8(v, self.min), self.max),
            false => _mm512_min_epu8(_mm512_max_epu8(v, self.min), self.max),
        }
    }
}

/// The four 128-bit lanes of `v`.
#[inline(always)]
unsafe fn lanes_of(v: __m512i) -> [__m128i; 4] {
    [
        _mm512_castsi512_si128(v),
        _mm512_extracti32x4_epi32(v, 1),
        _mm512_extracti32x4_epi32(v, 2),
        _mm512_extracti32x4_epi32(v, 3),
    ]
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
        let k = lane_mask(lanes);
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
        let bytes = low_bytes(q);
        let to = out.as_mut_ptr().add(i);
        if lanes == 16 {
            _mm_storeu_si128(to as *mut _, bytes);
        } else {
            _mm_mask_storeu_epi8(to as *mut _, k, bytes);
        }
        i += lanes;
    }
}

/// The low byte of each 32-bit lane, in order: what `vpmovdb` does, by two shuffles instead,
/// because the compiler folds `vpmovdb` into its store form, which Zen 4 runs several times
/// slower than shuffles and a plain store (a third of all requantization time).
#[inline(always)]
unsafe fn low_bytes(v: __m512i) -> __m128i {
    // In each 128-bit lane, its four low bytes to the lane's first 32 bits; then those four
    // 32-bit values to the first lane.
    let gather = _mm512_broadcast_i32x4(_mm_setr_epi8(
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    ));
    let lanes = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm512_castsi512_si128(_mm512_permutexvar_epi32(
        lanes,
        _mm512_shuffle_epi8(v, gather),
    ))
}
