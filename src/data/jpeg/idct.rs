//! The inverse DCT TensorFlow decodes with: libjpeg's "fast integer" (AAN) algorithm, in the
//! 16-bit arithmetic of libjpeg-turbo's SSE2 version, which TensorFlow's x86-64 builds run.
//! Products keep the high half of a 16-bit multiply (`pmulhw`) and sums wrap at 16 bits, so
//! even out-of-range coefficients give libjpeg-turbo's pixels. Eight columns (then eight rows)
//! go through together as lanes, which the compiler turns into vector instructions.

/// 16384·s(u)·s(v) with s(0) = 1 and s(k) = √2·cos(kπ/16): the AAN scale folded into the
/// dequantization multipliers (jddctmgr.c).
const AAN_SCALES: [i32; 64] = [
    16384, 22725, 21407, 19266, 16384, 12873, 8867, 4520, 22725, 31521, 29692, 26722, 22725, 17855,
    12299, 6270, 21407, 29692, 27969, 25172, 21407, 16819, 11585, 5906, 19266, 26722, 25172, 22654,
    19266, 15137, 10426, 5315, 16384, 22725, 21407, 19266, 16384, 12873, 8867, 4520, 12873, 17855,
    16819, 15137, 12873, 10114, 6967, 3552, 8867, 12299, 11585, 10426, 8867, 6967, 4799, 2446,
    4520, 6270, 5906, 5315, 4520, 3552, 2446, 1247,
];

/// The dequantization multipliers for a quantization table (natural order): quantum × AAN
/// scale, rounded to 2 fractional bits and kept to 16 bits as libjpeg-turbo keeps them.
pub(super) fn multipliers(quant: &[u16; 64]) -> [i16; 64] {
    std::array::from_fn(|i| ((quant[i] as i64 * AAN_SCALES[i] as i64 + (1 << 11)) >> 12) as i16)
}

/// Constants of the 8-bit fixed-point products, pre-shifted for a high-half multiply of a
/// value scaled by 4: x·c >> 8 == (4x · 64c) >> 16.
const F_1_414: i16 = 362 << 6;
const F_1_847: i16 = 473 << 6;
const F_1_082: i16 = 277 << 6;
/// −(2.613 − 1): the SSE2 code multiplies by this and subtracts the value once more.
const MINUS_F_1_613: i16 = -(413 << 6);

/// Eight 16-bit lanes and the three operations the transform needs, with the wrapping and
/// high-half semantics of SSE2's `paddw`, `psubw` and `psllw 2` + `pmulhw`.
trait Lanes: Copy {
    fn add(self, other: Self) -> Self;
    fn sub(self, other: Self) -> Self;
    /// `(4·self · c) >> 16`: the value times a constant pre-shifted for the high half.
    fn mul(self, c: i16) -> Self;
}

impl Lanes for [i16; 8] {
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        std::array::from_fn(|i| self[i].wrapping_add(other[i]))
    }
    #[inline(always)]
    fn sub(self, other: Self) -> Self {
        std::array::from_fn(|i| self[i].wrapping_sub(other[i]))
    }
    #[inline(always)]
    fn mul(self, c: i16) -> Self {
        std::array::from_fn(|i| ((self[i].wrapping_shl(2) as i32 * c as i32) >> 16) as i16)
    }
}

// SAFETY (all three): SSE2 is part of every x86-64 processor, and these touch no memory.
#[cfg(target_arch = "x86_64")]
impl Lanes for std::arch::x86_64::__m128i {
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        unsafe { std::arch::x86_64::_mm_add_epi16(self, other) }
    }
    #[inline(always)]
    fn sub(self, other: Self) -> Self {
        unsafe { std::arch::x86_64::_mm_sub_epi16(self, other) }
    }
    #[inline(always)]
    fn mul(self, c: i16) -> Self {
        use std::arch::x86_64::*;
        unsafe { _mm_mulhi_epi16(_mm_slli_epi16(self, 2), _mm_set1_epi16(c)) }
    }
}

/// One 1-D pass over eight lanes: `x[k]` holds input k of every lane; returns outputs 0..7.
#[inline(always)]
fn pass<V: Lanes>(x: [V; 8]) -> [V; 8] {
    let tmp10 = x[0].add(x[4]);
    let tmp11 = x[0].sub(x[4]);
    let tmp13 = x[2].add(x[6]);
    let tmp12 = x[2].sub(x[6]).mul(F_1_414).sub(tmp13);
    let tmp0 = tmp10.add(tmp13);
    let tmp3 = tmp10.sub(tmp13);
    let tmp1 = tmp11.add(tmp12);
    let tmp2 = tmp11.sub(tmp12);

    let z13 = x[5].add(x[3]);
    let z10 = x[5].sub(x[3]);
    let z11 = x[1].add(x[7]);
    let z12 = x[1].sub(x[7]);
    let tmp7 = z11.add(z13);
    let tmp11 = z11.sub(z13).mul(F_1_414);
    let z5 = z10.add(z12).mul(F_1_847);
    let tmp10 = z12.mul(F_1_082).sub(z5);
    let tmp12 = z10.mul(MINUS_F_1_613).sub(z10).add(z5);
    let tmp6 = tmp12.sub(tmp7);
    let tmp5 = tmp11.sub(tmp6);
    let tmp4 = tmp10.add(tmp5);

    [
        tmp0.add(tmp7),
        tmp1.add(tmp6),
        tmp2.add(tmp5),
        tmp3.sub(tmp4),
        tmp3.add(tmp4),
        tmp2.sub(tmp5),
        tmp1.sub(tmp6),
        tmp0.sub(tmp7),
    ]
}

#[inline(always)]
fn transpose(m: [[i16; 8]; 8]) -> [[i16; 8]; 8] {
    std::array::from_fn(|r| std::array::from_fn(|c| m[c][r]))
}

/// Descales by 8 and the 2 fraction bits, saturates to a signed byte and recentres (`psraw 5`,
/// `packsswb`, `paddb 128`).
#[inline(always)]
fn to_sample(v: i16) -> u8 {
    ((v >> 5).clamp(-128, 127) + 128) as u8
}

/// Inverse-transforms one block (coefficients in natural order) into 8 rows of 8 samples at
/// `out[0..]`, `out[stride..]`, …
#[inline]
pub(super) fn idct_block(
    coefficients: &[i16; 64],
    multipliers: &[i16; 64],
    out: &mut [u8],
    stride: usize,
) {
    assert!(
        out.len() >= 7 * stride + 8,
        "an 8×8 block needs 8 rows of output"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of x86-64; `out` holds the 8 rows of 8 bytes written (checked above).
    unsafe {
        sse2::idct_block(coefficients, multipliers, out, stride)
    }
    #[cfg(not(target_arch = "x86_64"))]
    portable_idct_block(coefficients, multipliers, out, stride)
}

/// The same transform over arrays of lanes, for processors other than x86-64 and as the
/// reference the SSE2 version is tested against.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn portable_idct_block(
    coefficients: &[i16; 64],
    multipliers: &[i16; 64],
    out: &mut [u8],
    stride: usize,
) {
    let rows: [[i16; 8]; 8] = std::array::from_fn(|r| {
        std::array::from_fn(|c| coefficients[r * 8 + c].wrapping_mul(multipliers[r * 8 + c]))
    });
    // Pass 1 transforms the columns (lanes are columns); after the transpose, pass 2 the rows.
    let columns_done = transpose(pass(rows));
    let pixels = transpose(pass(columns_done));
    for (r, row) in pixels.iter().enumerate() {
        let line = &mut out[r * stride..r * stride + 8];
        for (dst, &v) in line.iter_mut().zip(row) {
            *dst = to_sample(v);
        }
    }
}

/// libjpeg-turbo's SSE2 instruction sequence written with intrinsics: the compiler does not
/// vectorise the lane arrays' transposes and high-half products well enough by itself.
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::*;

    type V = __m128i;

    #[inline(always)]
    unsafe fn transpose(m: [V; 8]) -> [V; 8] {
        let a0 = _mm_unpacklo_epi16(m[0], m[1]);
        let a1 = _mm_unpackhi_epi16(m[0], m[1]);
        let a2 = _mm_unpacklo_epi16(m[2], m[3]);
        let a3 = _mm_unpackhi_epi16(m[2], m[3]);
        let a4 = _mm_unpacklo_epi16(m[4], m[5]);
        let a5 = _mm_unpackhi_epi16(m[4], m[5]);
        let a6 = _mm_unpacklo_epi16(m[6], m[7]);
        let a7 = _mm_unpackhi_epi16(m[6], m[7]);
        let b0 = _mm_unpacklo_epi32(a0, a2);
        let b1 = _mm_unpackhi_epi32(a0, a2);
        let b2 = _mm_unpacklo_epi32(a1, a3);
        let b3 = _mm_unpackhi_epi32(a1, a3);
        let b4 = _mm_unpacklo_epi32(a4, a6);
        let b5 = _mm_unpackhi_epi32(a4, a6);
        let b6 = _mm_unpacklo_epi32(a5, a7);
        let b7 = _mm_unpackhi_epi32(a5, a7);
        [
            _mm_unpacklo_epi64(b0, b4),
            _mm_unpackhi_epi64(b0, b4),
            _mm_unpacklo_epi64(b1, b5),
            _mm_unpackhi_epi64(b1, b5),
            _mm_unpacklo_epi64(b2, b6),
            _mm_unpackhi_epi64(b2, b6),
            _mm_unpacklo_epi64(b3, b7),
            _mm_unpackhi_epi64(b3, b7),
        ]
    }

    /// # Safety
    /// `out` must hold `7 * stride + 8` bytes.
    #[inline]
    pub(super) unsafe fn idct_block(
        coefficients: &[i16; 64],
        multipliers: &[i16; 64],
        out: &mut [u8],
        stride: usize,
    ) {
        let rows: [V; 8] = std::array::from_fn(|r| {
            let c = _mm_loadu_si128(coefficients.as_ptr().add(8 * r) as *const V);
            let m = _mm_loadu_si128(multipliers.as_ptr().add(8 * r) as *const V);
            _mm_mullo_epi16(c, m)
        });
        let pixels = transpose(super::pass(transpose(super::pass(rows))));
        let centre = _mm_set1_epi8(-128);
        for (r, row) in pixels.iter().enumerate() {
            let shifted = _mm_srai_epi16(*row, 5);
            let bytes = _mm_add_epi8(_mm_packs_epi16(shifted, shifted), centre);
            _mm_storel_epi64(out.as_mut_ptr().add(r * stride) as *mut V, bytes);
        }
    }
}

/// A block whose AC terms are all zero is flat: the same value in all 64 samples, which the
/// full transform also gives.
#[inline]
pub(super) fn flat_block(dc: i16, multiplier: i16, out: &mut [u8], stride: usize) {
    let value = to_sample(dc.wrapping_mul(multiplier));
    for r in 0..8 {
        out[r * stride..r * stride + 8].fill(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aan_scales_are_the_formula() {
        let s = |k: usize| {
            if k == 0 {
                1.0
            } else {
                std::f64::consts::SQRT_2 * (k as f64 * std::f64::consts::PI / 16.0).cos()
            }
        };
        for u in 0..8 {
            for v in 0..8 {
                assert_eq!(
                    AAN_SCALES[u * 8 + v],
                    (16384.0 * s(u) * s(v)).round() as i32
                );
            }
        }
    }

    /// The float IDCT of JPEG's definition, to bound the fast one's error.
    fn reference_idct(coefficients: &[f64; 64]) -> [f64; 64] {
        let c = |k: usize| {
            if k == 0 {
                std::f64::consts::FRAC_1_SQRT_2
            } else {
                1.0
            }
        };
        std::array::from_fn(|i| {
            let (y, x) = (i / 8, i % 8);
            let mut sum = 0.0;
            for v in 0..8 {
                for u in 0..8 {
                    sum += c(u)
                        * c(v)
                        * coefficients[v * 8 + u]
                        * (((2 * x + 1) * u) as f64 * std::f64::consts::PI / 16.0).cos()
                        * (((2 * y + 1) * v) as f64 * std::f64::consts::PI / 16.0).cos();
                }
            }
            sum / 4.0 + 128.0
        })
    }

    #[test]
    fn fast_idct_stays_within_a_few_levels_of_the_exact_one() {
        // A quality-50-like quantum: the fast IDCT folds its scale into the multipliers, which
        // lose too much precision with quanta near 1 to compare this tightly.
        const QUANTUM: i16 = 16;
        let mult = multipliers(&[QUANTUM as u16; 64]);
        let mut seed = 12345u32;
        for _ in 0..200 {
            let mut block = [0i16; 64];
            for (i, b) in block.iter_mut().enumerate() {
                seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                let range = if i == 0 { 60 } else { 8 / (1 + i as i32 / 16) };
                *b = ((seed >> 8) as i32 % (2 * range + 1) - range) as i16;
            }
            let mut out = [0u8; 64];
            idct_block(&block, &mult, &mut out, 8);
            let exact = reference_idct(&block.map(|v| (v * QUANTUM) as f64));
            for (fast, exact) in out.iter().zip(exact) {
                let expected = exact.round().clamp(0.0, 255.0);
                assert!((*fast as f64 - expected).abs() <= 3.0, "{fast} vs {exact}");
            }
        }
    }

    #[test]
    fn vector_and_lane_versions_agree_even_where_16_bits_wrap() {
        let mut seed = 99u32;
        let mut next = || {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (seed >> 16) as i16
        };
        for round in 0..2000 {
            let quant: [u16; 64] = std::array::from_fn(|_| 1 + (next() as u16 % 255));
            let limit = if round % 2 == 0 { 40 } else { i16::MAX };
            let block: [i16; 64] = std::array::from_fn(|_| next() % limit);
            let mult = multipliers(&quant);
            let (mut fast, mut lanes) = ([0u8; 64], [0u8; 64]);
            idct_block(&block, &mult, &mut fast, 8);
            portable_idct_block(&block, &mult, &mut lanes, 8);
            assert_eq!(fast, lanes, "round {round}");
        }
    }

    #[test]
    fn flat_blocks_match_the_full_transform() {
        let mult = multipliers(&[3u16; 64]);
        for dc in [-1024i16, -300, -1, 0, 1, 77, 1023] {
            let mut block = [0i16; 64];
            block[0] = dc;
            let (mut full, mut flat) = ([0u8; 64], [0u8; 64]);
            idct_block(&block, &mult, &mut full, 8);
            flat_block(dc, mult[0], &mut flat, 8);
            assert_eq!(full, flat, "dc {dc}");
        }
    }
}
