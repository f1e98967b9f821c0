//! One kernel source for every instruction set. Kernels are written once, generic over
//! [`Simd`] (a vector of `LANES` floats and the dozen operations the engine needs), and
//! instantiated per [`Level`] inside functions compiled for that level's features, so every
//! operation inlines to the level's own instructions. The level is chosen at run time: the best
//! the processor has, or the one `PETAL_SIMD` names; tests run every level the machine has.

#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "aarch64")]
pub(crate) use neon::Neon;
mod portable;
pub(crate) use portable::Portable;

use crate::{Error, Result};
use std::sync::OnceLock;

/// An instruction set petal's kernels are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// AVX-512F (x86-64): 32 registers of 16 floats.
    Avx512,
    /// AVX2 with FMA (x86-64 since 2013): 16 registers of 8 floats.
    Avx2,
    /// NEON (every aarch64 processor): 32 registers of 4 floats.
    Neon,
    /// Plain Rust that the compiler vectorises for the target's baseline (SSE2 on x86-64).
    Scalar,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Avx512, Level::Avx2, Level::Neon, Level::Scalar];

    pub fn name(self) -> &'static str {
        match self {
            Level::Avx512 => "avx512",
            Level::Avx2 => "avx2",
            Level::Neon => "neon",
            Level::Scalar => "scalar",
        }
    }

    /// Whether this processor runs the level's instructions.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => std::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => {
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "aarch64")]
            Level::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            Level::Scalar => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The levels this processor runs, best first.
    pub fn available() -> Vec<Level> {
        Level::ALL
            .into_iter()
            .filter(|l| l.is_available())
            .collect()
    }

    pub fn best() -> Level {
        Level::available()[0]
    }

    /// The level `PETAL_SIMD` asks for, or the best one when it is unset or empty.
    pub fn from_env() -> Result<Level> {
        match std::env::var("PETAL_SIMD") {
            Ok(name) if !name.is_empty() => name.parse(),
            _ => Ok(Level::best()),
        }
    }

    /// The level petal's kernels run at: `PETAL_SIMD`'s, read once (the CLI refuses a bad value
    /// before any work, see [`Level::from_env`]), or the best.
    pub fn selected() -> Level {
        static SELECTED: OnceLock<Level> = OnceLock::new();
        *SELECTED.get_or_init(|| Level::from_env().unwrap_or_else(|_| Level::best()))
    }
}

impl std::str::FromStr for Level {
    type Err = Error;
    fn from_str(s: &str) -> Result<Level> {
        let level = Level::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "PETAL_SIMD={s:?} is not a level petal knows: use avx512, avx2, neon or scalar"
                ))
            })?;
        if !level.is_available() {
            let have: Vec<&str> = Level::available().into_iter().map(Level::name).collect();
            return Err(Error::InvalidArgument(format!(
                "PETAL_SIMD={s}: this processor lacks {s}; it runs {}",
                have.join(", ")
            )));
        }
        Ok(level)
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A vector of `LANES` floats and the operations the kernels use. Every method is `unsafe`:
/// the caller runs on a processor with the implementing level's features (the kernels are
/// entered only through functions that check [`Level::is_available`]) and, for the memory
/// operations, passes pointers valid for `LANES` elements.
pub(crate) trait Simd: Copy {
    const LANES: usize;
    type F: Copy;
    /// This level's vectors of at most 8 lanes (AVX2's within AVX-512), for work 8 wide, such
    /// as a product's last columns when fewer than 9 remain: a narrower multiply-add costs less
    /// where the processor splits wide ones (AMD Zen 4).
    type Narrow: Simd;
    unsafe fn zero() -> Self::F;
    unsafe fn splat(x: f32) -> Self::F;
    unsafe fn load(p: *const f32) -> Self::F;
    unsafe fn store(p: *mut f32, v: Self::F);
    /// `a · b + c`, fused where the level has FMA.
    unsafe fn mul_add(a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    unsafe fn add(a: Self::F, b: Self::F) -> Self::F;
    /// `a > 0 ? a : 0` per lane (NaN gives 0): ReLU.
    unsafe fn relu(a: Self::F) -> Self::F;
    /// `a` limited to `lo…hi` per lane, NaN kept (a fused activation's clamp, as TensorFlow
    /// Lite's `std::min(std::max(a, lo), hi)`).
    unsafe fn clamp(a: Self::F, lo: Self::F, hi: Self::F) -> Self::F;
    /// `a > b ? yes : no` per lane, false for NaN.
    unsafe fn select_gt(a: Self::F, b: Self::F, yes: Self::F, no: Self::F) -> Self::F;
    /// `a == b ? yes : no` per lane.
    unsafe fn select_eq(a: Self::F, b: Self::F, yes: Self::F, no: Self::F) -> Self::F;
    /// Stores lanes holding small whole numbers (0‥255) as bytes.
    unsafe fn store_bytes(p: *mut u8, v: Self::F);
    /// Loads `LANES` bytes as floats.
    unsafe fn load_bytes(p: *const u8) -> Self::F;
}

/// Defines `$name`, which runs the `#[inline(always)]` function `$portable` compiled for the
/// selected level: plain loops that the compiler vectorises with that level's instructions (on
/// aarch64 the portable build already has NEON).
macro_rules! compiled_per_level {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) = $portable:path) => {
        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn avx512($($arg: $ty),*) {
                $portable($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2($($arg: $ty),*) {
                $portable($($arg),*)
            }
            let level = $crate::nn::simd::Level::selected();
            match level {
                // SAFETY: the processor has the level's features, checked just before.
                #[cfg(target_arch = "x86_64")]
                $crate::nn::simd::Level::Avx512 if level.is_available() => unsafe {
                    avx512($($arg),*)
                },
                #[cfg(target_arch = "x86_64")]
                $crate::nn::simd::Level::Avx2 if level.is_available() => unsafe {
                    avx2($($arg),*)
                },
                _ => $portable($($arg),*),
            }
        }
    };
}
pub(crate) use compiled_per_level;

/// Asks the processor to bring the cache line at `p` into its level-1 cache (x86; elsewhere
/// nothing). Any address will do: a prefetch never faults.
#[inline(always)]
pub(crate) fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE, which every x86-64 processor has; a prefetch reads nothing.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_unavailable_ones_are_refused_with_what_the_processor_has() {
        assert_eq!("scalar".parse::<Level>().unwrap(), Level::Scalar);
        let err = "sse9".parse::<Level>().unwrap_err().to_string();
        assert!(err.contains("avx512, avx2, neon or scalar"), "{err}");
        for level in Level::ALL {
            match level.name().parse::<Level>() {
                Ok(parsed) => assert!(parsed == level && level.is_available()),
                Err(e) => {
                    assert!(!level.is_available());
                    assert!(e.to_string().contains("lacks"), "{e}");
                }
            }
        }
        assert_eq!(Level::available().last(), Some(&Level::Scalar));
    }
}
