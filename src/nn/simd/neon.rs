//! [`Simd`] for aarch64: NEON, 32 registers of 4 floats (every aarch64 processor has it).

use super::Simd;
use std::arch::aarch64::*;

#[derive(Clone, Copy)]
pub(crate) struct Neon;

impl Simd for Neon {
    const LANES: usize = 4;
    type Narrow = Neon;
    type F = float32x4_t;

    #[inline(always)]
    unsafe fn zero() -> float32x4_t {
        vdupq_n_f32(0.0)
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> float32x4_t {
        vdupq_n_f32(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> float32x4_t {
        vld1q_f32(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: float32x4_t) {
        vst1q_f32(p, v)
    }
    #[inline(always)]
    unsafe fn mul_add(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        vfmaq_f32(c, a, b)
    }
    #[inline(always)]
    unsafe fn add(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        vaddq_f32(a, b)
    }
    #[inline(always)]
    unsafe fn clamp(a: float32x4_t, lo: float32x4_t, hi: float32x4_t) -> float32x4_t {
        // vmaxq and vminq keep a NaN.
        vminq_f32(vmaxq_f32(a, lo), hi)
    }
    #[inline(always)]
    unsafe fn relu(a: float32x4_t) -> float32x4_t {
        // Not vmaxq_f32, which keeps a NaN: x86's max gives the 0 the other levels give.
        let zero = vdupq_n_f32(0.0);
        vbslq_f32(vcgtq_f32(a, zero), a, zero)
    }
    #[inline(always)]
    unsafe fn select_gt(
        a: float32x4_t,
        b: float32x4_t,
        yes: float32x4_t,
        no: float32x4_t,
    ) -> float32x4_t {
        vbslq_f32(vcgtq_f32(a, b), yes, no)
    }
    #[inline(always)]
    unsafe fn select_eq(
        a: float32x4_t,
        b: float32x4_t,
        yes: float32x4_t,
        no: float32x4_t,
    ) -> float32x4_t {
        vbslq_f32(vceqq_f32(a, b), yes, no)
    }
    #[inline(always)]
    unsafe fn store_bytes(p: *mut u8, v: float32x4_t) {
        let halves = vmovn_u32(vcvtq_u32_f32(v));
        let bytes = vmovn_u16(vcombine_u16(halves, halves));
        let word = vget_lane_u32::<0>(vreinterpret_u32_u8(bytes));
        p.cast::<u32>().write_unaligned(word)
    }
    #[inline(always)]
    unsafe fn load_bytes(p: *const u8) -> float32x4_t {
        let bytes = vreinterpret_u8_u32(vdup_n_u32(p.cast::<u32>().read_unaligned()));
        vcvtq_f32_u32(vmovl_u16(vget_low_u16(vmovl_u8(bytes))))
    }
}
