//! [`Simd`] for x86-64: AVX-512F (16 lanes) and AVX2 + FMA (8 lanes).

use super::Simd;
use std::arch::x86_64::*;

#[derive(Clone, Copy)]
pub(crate) struct Avx512;

impl Simd for Avx512 {
    const LANES: usize = 16;
    type Narrow = Avx2;
    type F = __m512;

    #[inline(always)]
    unsafe fn zero() -> __m512 {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        _mm512_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        _mm512_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn mul_add(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn relu(a: __m512) -> __m512 {
        _mm512_max_ps(a, _mm512_setzero_ps())
    }
    #[inline(always)]
    unsafe fn clamp(a: __m512, lo: __m512, hi: __m512) -> __m512 {
        // maxps and minps give their second operand when either is NaN.
        _mm512_min_ps(hi, _mm512_max_ps(lo, a))
    }
    #[inline(always)]
    unsafe fn select_gt(a: __m512, b: __m512, yes: __m512, no: __m512) -> __m512 {
        _mm512_mask_mov_ps(no, _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b), yes)
    }
    #[inline(always)]
    unsafe fn select_eq(a: __m512, b: __m512, yes: __m512, no: __m512) -> __m512 {
        _mm512_mask_mov_ps(no, _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, b), yes)
    }
    #[inline(always)]
    unsafe fn store_bytes(p: *mut u8, v: __m512) {
        _mm_storeu_si128(p.cast(), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(v)))
    }
    #[inline(always)]
    unsafe fn load_bytes(p: *const u8) -> __m512 {
        _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(p.cast())))
    }
}

#[derive(Clone, Copy)]
pub(crate) struct Avx2;

impl Simd for Avx2 {
    const LANES: usize = 8;
    type Narrow = Avx2;
    type F = __m256;

    #[inline(always)]
    unsafe fn zero() -> __m256 {
        _mm256_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        _mm256_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        _mm256_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn mul_add(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        _mm256_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn relu(a: __m256) -> __m256 {
        _mm256_max_ps(a, _mm256_setzero_ps())
    }
    #[inline(always)]
    unsafe fn clamp(a: __m256, lo: __m256, hi: __m256) -> __m256 {
        // maxps and minps give their second operand when either is NaN.
        _mm256_min_ps(hi, _mm256_max_ps(lo, a))
    }
    #[inline(always)]
    unsafe fn select_gt(a: __m256, b: __m256, yes: __m256, no: __m256) -> __m256 {
        _mm256_blendv_ps(no, yes, _mm256_cmp_ps::<_CMP_GT_OQ>(a, b))
    }
    #[inline(always)]
    unsafe fn select_eq(a: __m256, b: __m256, yes: __m256, no: __m256) -> __m256 {
        _mm256_blendv_ps(no, yes, _mm256_cmp_ps::<_CMP_EQ_OQ>(a, b))
    }
    #[inline(always)]
    unsafe fn store_bytes(p: *mut u8, v: __m256) {
        let ints = _mm256_cvttps_epi32(v);
        let words = _mm_packus_epi32(
            _mm256_castsi256_si128(ints),
            _mm256_extracti128_si256(ints, 1),
        );
        _mm_storel_epi64(p.cast(), _mm_packus_epi16(words, words))
    }
    #[inline(always)]
    unsafe fn load_bytes(p: *const u8) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast())))
    }
}
