//! [`Simd`] in plain Rust: 8 floats as an array, which the compiler vectorises with whatever
//! the target's baseline has (two SSE2 registers on x86-64). The `scalar` level, and the
//! reference the other levels are tested against.

use super::Simd;

#[derive(Clone, Copy)]
pub(crate) struct Portable;

type F8 = [f32; 8];

#[inline(always)]
fn map(a: F8, f: impl Fn(f32) -> f32) -> F8 {
    a.map(f)
}

#[inline(always)]
fn zip(a: F8, b: F8, f: impl Fn(f32, f32) -> f32) -> F8 {
    std::array::from_fn(|i| f(a[i], b[i]))
}

impl Simd for Portable {
    const LANES: usize = 8;
    type Narrow = Portable;
    type F = F8;

    #[inline(always)]
    unsafe fn zero() -> F8 {
        [0.0; 8]
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> F8 {
        [x; 8]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> F8 {
        p.cast::<F8>().read_unaligned()
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: F8) {
        p.cast::<F8>().write_unaligned(v)
    }
    #[inline(always)]
    unsafe fn mul_add(a: F8, b: F8, c: F8) -> F8 {
        std::array::from_fn(|i| a[i] * b[i] + c[i])
    }
    #[inline(always)]
    unsafe fn add(a: F8, b: F8) -> F8 {
        zip(a, b, |x, y| x + y)
    }
    #[inline(always)]
    unsafe fn clamp(a: F8, lo: F8, hi: F8) -> F8 {
        let above = zip(a, lo, |x, l| if x < l { l } else { x });
        zip(above, hi, |x, h| if h < x { h } else { x })
    }
    #[inline(always)]
    unsafe fn relu(a: F8) -> F8 {
        map(a, |x| if x > 0.0 { x } else { 0.0 })
    }
    #[inline(always)]
    unsafe fn select_gt(a: F8, b: F8, yes: F8, no: F8) -> F8 {
        std::array::from_fn(|i| if a[i] > b[i] { yes[i] } else { no[i] })
    }
    #[inline(always)]
    unsafe fn select_eq(a: F8, b: F8, yes: F8, no: F8) -> F8 {
        std::array::from_fn(|i| if a[i] == b[i] { yes[i] } else { no[i] })
    }
    #[inline(always)]
    unsafe fn store_bytes(p: *mut u8, v: F8) {
        p.cast::<[u8; 8]>().write_unaligned(v.map(|x| x as u8))
    }
    #[inline(always)]
    unsafe fn load_bytes(p: *const u8) -> F8 {
        p.cast::<[u8; 8]>().read_unaligned().map(f32::from)
    }
}
