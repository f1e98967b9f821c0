//! `C = clamp(bias + A·Bᵀ)` for a constant B (a layer's weights) packed once into panels of 16
//! columns: what inference convolutions and dense layers compute. Small products dominate
//! image classifiers at batch 1 (a 1×1 convolution over 48×48 pixels of 8 channels), where a
//! general GEMM spends longer arranging its operands than multiplying; here B is arranged when
//! the model is prepared and A is read in place.

use crate::nn::simd::{Level, Simd};
use rayon::prelude::*;

/// Columns of C per panel: one AVX-512 register, two AVX2 or four NEON ones.
const NR: usize = 16;
/// Multiply-adds below which one thread does the whole product: waking the others costs more.
const PARALLEL_WORK: usize = 1 << 21;

/// B (`n × k`, row-major, as TensorFlow Lite keeps filters: one row per output channel) in
/// panels of [`NR`] columns of Bᵀ, zero-padded, and the bias likewise.
pub(crate) struct PackedB {
    /// The instruction set the product runs at.
    level: Level,
    k: usize,
    n: usize,
    panels: Vec<f32>,
    bias: Vec<f32>,
}

impl PackedB {
    /// Packs `b` (`n` rows of `k` values) and `bias` (`n` values, or zeros), for the level
    /// petal runs at.
    pub fn new(b: &[f32], n: usize, k: usize, bias: Option<&[f32]>) -> PackedB {
        Self::at_level(Level::selected(), b, n, k, bias)
    }

    pub fn at_level(level: Level, b: &[f32], n: usize, k: usize, bias: Option<&[f32]>) -> PackedB {
        assert!(b.len() >= n * k && bias.is_none_or(|v| v.len() >= n));
        let panel_count = n.div_ceil(NR);
        let mut panels = vec![0.0; panel_count * k * NR];
        let mut padded_bias = vec![0.0; panel_count * NR];
        for col in 0..n {
            let (panel, j) = (col / NR, col % NR);
            let dst = &mut panels[panel * k * NR..][..k * NR];
            for (kk, &v) in b[col * k..][..k].iter().enumerate() {
                dst[kk * NR + j] = v;
            }
            padded_bias[col] = bias.map_or(0.0, |v| v[col]);
        }
        PackedB {
            level,
            k,
            n,
            panels,
            bias: padded_bias,
        }
    }

    /// `c[r·n + j] = clamp(bias[j] + Σ a[r·k + i]·b[j·k + i])` for the `m` rows of `a`.
    pub fn multiply(&self, a: &[f32], m: usize, c: &mut [f32], (min, max): (f32, f32)) {
        let (k, n) = (self.k, self.n);
        assert!(a.len() >= m * k && c.len() >= m * n);
        let (a, c) = (&a[..m * k], &mut c[..m * n]);
        let threads = rayon::current_num_threads();
        if m * n * k >= PARALLEL_WORK && threads > 1 && m >= 16 {
            let rows = m.div_ceil(threads).next_multiple_of(8);
            a.par_chunks(rows * k)
                .zip(c.par_chunks_mut(rows * n))
                .for_each(|(a, c)| product(self, a, c, min, max));
        } else {
            product(self, a, c, min, max);
        }
    }
}

/// Runs the product at the selected level: tiles of `R` rows × [`NR`] columns whose accumulators
/// (`R` × `V` vectors), `V` vectors of B and one broadcast fit the level's registers (32 for
/// AVX-512 and NEON, 16 for AVX2).
fn product(b: &PackedB, a: &[f32], c: &mut [f32], min: f32, max: f32) {
    let m = a.len() / b.k.max(1);
    assert!(a.len() >= m * b.k && c.len() >= m * b.n);
    let level = b.level;
    assert!(level.is_available());
    let (a, c) = (a.as_ptr(), c.as_mut_ptr());
    // SAFETY: the processor has the level's features (checked above); `a` holds `m` rows of
    // `k`, `c` `m` rows of `n`, and the panels `k × NR` values for each NR columns of `n`.
    unsafe {
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => avx512::product::<1, 8>(b, a, m, c, min, max),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => avx2::product::<2, 6>(b, a, m, c, min, max),
            #[cfg(target_arch = "aarch64")]
            Level::Neon => neon::product::<4, 6>(b, a, m, c, min, max),
            _ => scalar::product::<2, 4>(b, a, m, c, min, max),
        }
    }
}

/// All row tiles of every panel; `V` vectors make [`NR`] columns.
#[inline(always)]
unsafe fn product_tiles<S: Simd, const V: usize, const R: usize>(
    b: &PackedB,
    a: *const f32,
    m: usize,
    c: *mut f32,
    min: f32,
    max: f32,
) {
    debug_assert_eq!(V * S::LANES, NR);
    // Row blocks outside, panels inside: a block's rows of A stay in L1 while B's panels
    // (small, the layer's weights) stream past.
    let full = m / R * R;
    for r in (0..full).step_by(R) {
        row_block::<S, V, R>(b, a, r, c, min, max);
    }
    for r in full..m {
        row_block::<S, V, 1>(b, a, r, c, min, max);
    }
}

/// Rows `r…r + R` of C, every panel. (A function, not a closure: closures do not inherit the
/// caller's target features, and the Simd operations would not inline.)
#[inline(always)]
unsafe fn row_block<S: Simd, const V: usize, const R: usize>(
    b: &PackedB,
    a: *const f32,
    r: usize,
    c: *mut f32,
    min: f32,
    max: f32,
) {
    let (k, n) = (b.k, b.n);
    for p in 0..n.div_ceil(NR) {
        let panel = b.panels.as_ptr().add(p * k * NR);
        let bias = b.bias.as_ptr().add(p * NR);
        let (col, width) = (p * NR, NR.min(n - p * NR));
        tile::<S, V, R>(
            a.add(r * k),
            k,
            panel,
            bias,
            c.add(r * n + col),
            n,
            width,
            min,
            max,
        );
    }
}

/// `R` rows of C in one panel's `width` columns: `a` at the first row's values, `c` at the first
/// row's first column.
#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn tile<S: Simd, const V: usize, const R: usize>(
    a: *const f32,
    k: usize,
    panel: *const f32,
    bias: *const f32,
    c: *mut f32,
    ldc: usize,
    width: usize,
    min: f32,
    max: f32,
) {
    let mut acc = [[S::zero(); V]; R];
    for v in 0..V {
        let b = S::load(bias.add(v * S::LANES));
        for row in acc.iter_mut() {
            row[v] = b;
        }
    }
    for kk in 0..k {
        let mut b = [S::zero(); V];
        for v in 0..V {
            b[v] = S::load(panel.add(kk * NR + v * S::LANES));
        }
        for r in 0..R {
            let x = S::splat(*a.add(r * k + kk));
            for v in 0..V {
                acc[r][v] = S::mul_add(x, b[v], acc[r][v]);
            }
        }
    }
    let (lo, hi) = (S::splat(min), S::splat(max));
    for r in 0..R {
        let out = c.add(r * ldc);
        if width == NR {
            for v in 0..V {
                S::store(out.add(v * S::LANES), S::clamp(acc[r][v], lo, hi));
            }
        } else {
            let mut row = [0.0f32; NR];
            for v in 0..V {
                S::store(
                    row.as_mut_ptr().add(v * S::LANES),
                    S::clamp(acc[r][v], lo, hi),
                );
            }
            std::ptr::copy_nonoverlapping(row.as_ptr(), out, width);
        }
    }
}

/// The product compiled for one instruction set: the generic code inlines into it, so every
/// [`Simd`] operation becomes that set's instruction.
macro_rules! instruction_set {
    ($module:ident, $simd:ty $(, $features:literal)?) => {
        mod $module {
            use super::PackedB;

            $(#[target_feature(enable = $features)])?
            pub unsafe fn product<const V: usize, const R: usize>(
                b: &PackedB,
                a: *const f32,
                m: usize,
                c: *mut f32,
                min: f32,
                max: f32,
            ) {
                super::product_tiles::<$simd, V, R>(b, a, m, c, min, max)
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
instruction_set!(avx512, crate::nn::simd::Avx512, "avx512f,avx2,fma");
#[cfg(target_arch = "x86_64")]
instruction_set!(avx2, crate::nn::simd::Avx2, "avx2,fma");
#[cfg(target_arch = "aarch64")]
instruction_set!(neon, crate::nn::simd::Neon);
instruction_set!(scalar, crate::nn::simd::Portable);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_definition_for_ragged_sizes_at_every_level() {
        for (m, n, k) in [
            (1, 1, 1),
            (5, 17, 3),
            (9, 40, 27),
            (64, 16, 8),
            (300, 33, 70),
        ] {
            let value = |i: usize| ((i * 7919) % 29) as f32 / 7.0 - 2.0;
            let a: Vec<f32> = (0..m * k).map(value).collect();
            let b: Vec<f32> = (0..n * k).map(|i| value(i + 3)).collect();
            let bias: Vec<f32> = (0..n).map(|i| value(i + 11)).collect();
            for level in Level::available() {
                let packed = PackedB::at_level(level, &b, n, k, Some(&bias));
                let mut c = vec![f32::NAN; m * n];
                packed.multiply(&a, m, &mut c, (-3.0, 4.0));
                for r in 0..m {
                    for j in 0..n {
                        let want = (0..k).fold(bias[j], |s, i| s + a[r * k + i] * b[j * k + i]);
                        let got = c[r * n + j];
                        assert!(
                            (got - want.clamp(-3.0, 4.0)).abs() < 1e-4,
                            "{level}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
