//! `C = clamp(bias + A·Bᵀ)` for a constant B (a layer's weights) packed once into panels of 16
//! columns: what inference convolutions and dense layers compute. Small products dominate
//! image classifiers at batch 1 (a 1×1 convolution over 48×48 pixels of 8 channels), where a
//! general GEMM spends longer arranging its operands than multiplying; here B is arranged when
//! the model is prepared and A is read in place.

use super::ThenApply;
use crate::nn::simd::{prefetch, Level, Simd};
use crate::nn::thread_pool::{self, SharedMut};
use std::ops::Range;

/// Columns of C per panel: one AVX-512 register, two AVX2 or four NEON ones.
const NR: usize = 16;
/// Multiply-adds below which one thread does the whole product: handing out tasks costs more.
const PARALLEL_WORK: usize = 1 << 16;
/// Tasks a product is split into per thread.
const TASKS_PER_THREAD: usize = 4;
/// Row tiles of A made at a time when its rows are made on the fly: enough to amortise the
/// call, few enough to stay in the level-1 cache for small `k`.
const ROW_TILES_MADE_AT_ONCE: usize = 2;

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

    /// `c[r·n + j] = clamp(bias[j] + Σ a[r·k + i]·b[j·k + i])` for the `m` rows of `a`, then
    /// `then` over each finished block.
    pub fn multiply(&self, a: &[f32], m: usize, c: &mut [f32], range: (f32, f32), then: ThenApply) {
        assert!(a.len() >= m * self.k);
        let k = self.k;
        self.in_blocks(m, c, |rows, panels, c| {
            let a = &a[rows.start * k..rows.end * k];
            // SAFETY: `in_blocks` lends each block its rows × panels of C alone.
            unsafe {
                product(self, a, rows.clone(), panels.clone(), c, range);
                self.then_apply(then, rows, panels, c);
            }
        });
    }

    /// [`PackedB::multiply`] on this thread alone (no `then`), for a caller that splits the
    /// work itself.
    pub fn multiply_here(&self, a: &[f32], m: usize, c: &mut [f32], range: (f32, f32)) {
        assert!(a.len() >= m * self.k && c.len() >= m * self.n);
        let panels = 0..self.n.div_ceil(NR);
        // SAFETY: `c` holds the `m` rows, borrowed mutably for the call.
        unsafe {
            product(
                self,
                &a[..m * self.k],
                0..m,
                panels,
                SharedMut(c.as_mut_ptr()),
                range,
            )
        }
    }

    /// The columns of B (the output channels).
    pub fn n(&self) -> usize {
        self.n
    }

    /// The rows of B (the input channels).
    pub fn k(&self) -> usize {
        self.k
    }

    /// [`PackedB::multiply`] with A's rows made as they are needed: `make_rows(rows, a)` writes
    /// rows `rows` of A into `a` (`rows.len() × k` values). For a convolution's receptive
    /// fields, this keeps the few rows being multiplied in the core's cache instead of laying
    /// out the whole im2col matrix (7 MB for a 3×3 convolution of ResNet50) in memory.
    pub fn multiply_rows_made_by(
        &self,
        make_rows: impl Fn(Range<usize>, &mut [f32]) + Sync,
        m: usize,
        c: &mut [f32],
        range: (f32, f32),
        then: ThenApply,
    ) {
        thread_local! {
            static ROWS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let (k, chunk) = (self.k, self.level_tile_rows() * ROW_TILES_MADE_AT_ONCE);
        self.in_blocks(m, c, |rows, panels, c| {
            ROWS.with_borrow_mut(|a| {
                a.resize(chunk * k, 0.0);
                for first in rows.clone().step_by(chunk) {
                    let part = first..rows.end.min(first + chunk);
                    let a = &mut a[..part.len() * k];
                    make_rows(part.clone(), a);
                    // SAFETY: `in_blocks` lends each block its rows × panels of C alone.
                    unsafe {
                        product(self, a, part.clone(), panels.clone(), c, range);
                        self.then_apply(then, part, panels.clone(), c);
                    }
                }
            })
        });
    }

    /// `then` over `rows` × `panels` of C, row by row, or at once when the panels are all of
    /// C's columns.
    ///
    /// # Safety
    /// `c` points at C, and the caller alone reads and writes that block meanwhile.
    unsafe fn then_apply(
        &self,
        then: ThenApply,
        rows: Range<usize>,
        panels: Range<usize>,
        c: SharedMut<f32>,
    ) {
        let Some(then) = then else { return };
        let n = self.n;
        let cols = panels.start * NR..n.min(panels.end * NR);
        if cols.len() == n {
            then(std::slice::from_raw_parts_mut(
                c.get().add(rows.start * n),
                rows.len() * n,
            ));
        } else {
            for r in rows {
                then(std::slice::from_raw_parts_mut(
                    c.get().add(r * n + cols.start),
                    cols.len(),
                ));
            }
        }
    }

    /// Calls `multiply(rows, panels, c)` over blocks of the `m × n` product that together cover
    /// it, spread over the threads when it is large enough to gain; `c` points at C's `m × n`
    /// values, of which each call may write only its block's.
    fn in_blocks(
        &self,
        m: usize,
        c: &mut [f32],
        multiply: impl Fn(Range<usize>, Range<usize>, SharedMut<f32>) + Sync,
    ) {
        let (k, n) = (self.k, self.n);
        assert!(c.len() >= m * n);
        let panels = n.div_ceil(NR);
        let threads = thread_pool::threads();
        let out = SharedMut(c.as_mut_ptr());
        if m * n * k < PARALLEL_WORK || threads == 1 {
            return multiply(0..m, 0..panels, out);
        }
        // Whole pairs of panels where tiles take two (`panel_steps`: AVX-512's 16-lane vectors).
        let panels_per_step = match self.level {
            Level::Avx512 => 2,
            _ => 1,
        };
        let tile_rows = self.level_tile_rows();
        let (row_tiles, steps) = (m.div_ceil(tile_rows), panels.div_ceil(panels_per_step));
        let (row_tasks, panel_tasks) = split(row_tiles, steps, threads, n > m);
        let rows_per_task = row_tiles.div_ceil(row_tasks) * tile_rows;
        let panels_per_task = steps.div_ceil(panel_tasks) * panels_per_step;
        thread_pool::for_each_task(row_tasks * panel_tasks, |t| {
            let (row_task, panel_task) = (t / panel_tasks, t % panel_tasks);
            let rows = row_task * rows_per_task..m.min((row_task + 1) * rows_per_task);
            let first_panel = panel_task * panels_per_task;
            let panels = first_panel..panels.min(first_panel + panels_per_task);
            // The tasks' blocks are disjoint, and `for_each_task` returns after the last.
            multiply(rows, panels, out);
        });
    }

    /// Rows per tile at the level (see [`product`]).
    fn level_tile_rows(&self) -> usize {
        match self.level {
            Level::Avx512 => 8,
            Level::Avx2 | Level::Neon => 6,
            Level::Scalar => 4,
        }
    }
}

/// How many blocks of rows and of panels to split a product of `row_tiles` × `steps` tiles
/// into, about [`TASKS_PER_THREAD`] a thread, so that a thread the system delays holds up
/// little. By rows, which each thread then reads in the part the operator before wrote, from
/// its own cache; when B is the larger operand (`b_larger`), by panels, so that each is read
/// once, and by rows as well if there are too few panels. (A 7×7 image against 160 filters
/// split by its 5 pairs of panels alone left one thread 3 of them and the other 2; splitting
/// panels where the rows were too few was slower, the threads reading each other's writes.)
fn split(row_tiles: usize, steps: usize, threads: usize, b_larger: bool) -> (usize, usize) {
    let tasks = TASKS_PER_THREAD * threads;
    let blocks = |tiles: usize, parts: usize| tiles.div_ceil(tiles.div_ceil(parts));
    if !b_larger {
        return (blocks(row_tiles, tasks), 1);
    }
    let panel_tasks = blocks(steps, tasks);
    (blocks(row_tiles, tasks.div_ceil(panel_tasks)), panel_tasks)
}

/// Runs the product of `rows` of C (`a` holds just those rows of A) and `panels` of B at the
/// selected level: tiles of `R` rows × [`NR`] columns whose accumulators (`R` × `V` vectors),
/// `V` vectors of B and one broadcast fit the level's registers (32 for AVX-512 and NEON, 16 for
/// AVX2).
///
/// # Safety
/// `c` points at C (`n` values a row) through row `rows.end`, and no one else reads or writes
/// these rows' columns in `panels` meanwhile.
unsafe fn product(
    b: &PackedB,
    a: &[f32],
    rows: Range<usize>,
    panels: Range<usize>,
    c: SharedMut<f32>,
    (min, max): (f32, f32),
) {
    assert!(a.len() >= rows.len() * b.k);
    assert!(panels.end <= b.n.div_ceil(NR));
    let level = b.level;
    assert!(level.is_available());
    let job = Job {
        b,
        a: a.as_ptr(),
        c: c.get(),
        rows,
        panels,
        min,
        max,
    };
    // SAFETY: the processor has the level's features (checked above); `a` holds the rows of
    // `k`, `c` the rows of `n` (the caller's promise), and the panels `k × NR` values for each
    // NR columns of `n`.
    unsafe {
        match level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => avx512::product::<1, 8>(&job),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => avx2::product::<2, 6>(&job),
            #[cfg(target_arch = "aarch64")]
            Level::Neon => neon::product::<4, 6>(&job),
            _ => scalar::product::<2, 4>(&job),
        }
    }
}

/// One call's share of a product: rows of C, panels of B.
struct Job<'a> {
    b: &'a PackedB,
    /// Row `rows.start` of A.
    a: *const f32,
    c: *mut f32,
    rows: Range<usize>,
    panels: Range<usize>,
    min: f32,
    max: f32,
}

/// All row tiles of the job's panels; `V` vectors make [`NR`] columns. The larger operand is
/// walked outside, so it passes through the cache once: rows of A outside (its block stays in
/// L1 while the layer's small weights stream past), or, for a few rows against large weights
/// (the last layers of a MobileNet: 49 rows, 1.6 MB of weights), panels of B outside.
#[inline(always)]
unsafe fn product_tiles<S: Simd, const V: usize, const R: usize>(job: &Job) {
    debug_assert_eq!(V * S::LANES, NR);
    let tiles = row_tiles::<R>(job.rows.clone());
    let panels_outside = job.panels.len() * NR > job.rows.len();
    if panels_outside {
        for panels in panel_steps::<S>(job) {
            for (r, height) in tiles.clone() {
                panel_tile::<S, V, R>(job, r, panels.clone(), height);
            }
        }
    } else {
        for (r, height) in tiles {
            for panels in panel_steps::<S>(job) {
                panel_tile::<S, V, R>(job, r, panels, height);
            }
        }
    }
}

/// The tiles `rows` splits into, as (first row, height): of `R` rows, then what is left in
/// tiles of 4, 2 and 1. Four rows keep as many multiply-adds in flight as the processor
/// overlaps (two panels' worth each), where a leftover row alone ran at a quarter of that.
/// The quantized products split their short tiles the same way.
pub(crate) fn row_tiles<const R: usize>(
    rows: Range<usize>,
) -> impl Iterator<Item = (usize, usize)> + Clone {
    let full = rows.start + rows.len() / R * R;
    let whole = (rows.start..full).step_by(R).map(|r| (r, R));
    let left = [4, 2, 1]
        .into_iter()
        .filter(move |&h| h < R)
        .scan(full, move |next, h| {
            let tile = (*next + h <= rows.end).then_some((*next, h));
            *next += tile.map_or(0, |(_, h)| h);
            Some(tile)
        });
    whole.chain(left.flatten())
}

/// The job's panels in the groups one tile covers: two whole panels at a time where the
/// registers hold both (AVX-512), so each broadcast of A feeds twice the multiply-adds.
#[inline(always)]
fn panel_steps<S: Simd>(job: &Job) -> impl Iterator<Item = Range<usize>> + Clone {
    let whole = job.b.n / NR;
    let panels = job.panels.clone();
    let pairs = match S::LANES == NR {
        true => (whole.min(panels.end).saturating_sub(panels.start)) / 2,
        false => 0,
    };
    let singles = panels.start + 2 * pairs..panels.end;
    (0..pairs)
        .map(move |i| panels.start + 2 * i..panels.start + 2 * i + 2)
        .chain(singles.map(|p| p..p + 1))
}

/// Rows `r…` of C (`height` of them: `R`, 4, 2 or 1) in `panels` (two whole ones, or one).
/// (A function, not a closure: closures do not inherit the caller's target features, and the
/// Simd operations would not inline.)
#[inline(always)]
unsafe fn panel_tile<S: Simd, const V: usize, const R: usize>(
    job: &Job,
    r: usize,
    panels: Range<usize>,
    height: usize,
) {
    match height {
        h if h == R => panel_rows::<S, V, R>(job, r, panels),
        4 => panel_rows::<S, V, 4>(job, r, panels),
        2 => panel_rows::<S, V, 2>(job, r, panels),
        _ => panel_rows::<S, V, 1>(job, r, panels),
    }
}

#[inline(always)]
unsafe fn panel_rows<S: Simd, const V: usize, const R: usize>(
    job: &Job,
    r: usize,
    panels: Range<usize>,
) {
    let (k, n, p) = (job.b.k, job.b.n, panels.start);
    let panel = job.b.panels.as_ptr().add(p * k * NR);
    let bias = job.b.bias.as_ptr().add(p * NR);
    let (col, width) = (p * NR, NR.min(n - p * NR));
    let (a, c, min, max) = (
        job.a.add((r - job.rows.start) * k),
        job.c.add(r * n + col),
        job.min,
        job.max,
    );
    if panels.len() == 2 {
        tile::<S, V, R, 2>(a, k, panel, bias, c, n, NR, min, max);
    } else if width <= NR / 2 {
        narrow_tile::<S::Narrow, R>(a, k, panel, bias, c, n, width, min, max);
    } else {
        tile::<S, V, R, 1>(a, k, panel, bias, c, n, width, min, max);
    }
}

/// [`tile`] over the first 8 columns of a panel with the level's narrow vectors: the last panel
/// of 24 output channels (MobileNetV2) or 40 (V3) would otherwise spend a third or more of its
/// multiply-adds on padding.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn narrow_tile<N: Simd, const R: usize>(
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
    match NR / 2 / N::LANES {
        1 => tile::<N, 1, R, 1>(a, k, panel, bias, c, ldc, width, min, max),
        2 => tile::<N, 2, R, 1>(a, k, panel, bias, c, ldc, width, min, max),
        _ => unreachable!("every level's narrow vectors have 4 or 8 lanes"),
    }
}

/// `R` rows of C in `P` consecutive panels' columns, the last `width` wide (all of a panel's
/// when `P > 1`): `a` at the first row's values, `c` at the first row's first column.
#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn tile<S: Simd, const V: usize, const R: usize, const P: usize>(
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
    let mut acc = [[[S::zero(); V]; P]; R];
    for q in 0..P {
        for v in 0..V {
            let b = S::load(bias.add(q * NR + v * S::LANES));
            for row in acc.iter_mut() {
                row[q][v] = b;
            }
        }
    }
    for kk in 0..k {
        // B's panels run past the level-1 cache with A's rows beside them; fetched 16 steps
        // ahead, a 1×1 convolution over 384 channels ran 6% faster.
        for q in 0..P {
            prefetch(panel.wrapping_add(q * k * NR + (kk + 16) * NR));
        }
        let mut b = [[S::zero(); V]; P];
        for q in 0..P {
            for v in 0..V {
                b[q][v] = S::load(panel.add(q * k * NR + kk * NR + v * S::LANES));
            }
        }
        for r in 0..R {
            let x = S::splat(*a.add(r * k + kk));
            for q in 0..P {
                for v in 0..V {
                    acc[r][q][v] = S::mul_add(x, b[q][v], acc[r][q][v]);
                }
            }
        }
    }
    let (lo, hi) = (S::splat(min), S::splat(max));
    for r in 0..R {
        let out = c.add(r * ldc);
        if P > 1 || width == V * S::LANES {
            for q in 0..P {
                for v in 0..V {
                    let at = out.add(q * NR + v * S::LANES);
                    S::store(at, S::clamp(acc[r][q][v], lo, hi));
                }
            }
        } else {
            let mut row = [0.0f32; NR];
            for v in 0..V {
                S::store(
                    row.as_mut_ptr().add(v * S::LANES),
                    S::clamp(acc[r][0][v], lo, hi),
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
            $(#[target_feature(enable = $features)])?
            pub unsafe fn product<const V: usize, const R: usize>(job: &super::Job) {
                super::product_tiles::<$simd, V, R>(job)
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
            (20, 80, 9),
            (49, 96, 64),
        ] {
            let value = |i: usize| ((i * 7919) % 29) as f32 / 7.0 - 2.0;
            let a: Vec<f32> = (0..m * k).map(value).collect();
            let b: Vec<f32> = (0..n * k).map(|i| value(i + 3)).collect();
            let bias: Vec<f32> = (0..n).map(|i| value(i + 11)).collect();
            for level in Level::available() {
                let packed = PackedB::at_level(level, &b, n, k, Some(&bias));
                let mut c = vec![f32::NAN; m * n];
                packed.multiply(&a, m, &mut c, (-3.0, 4.0), None);
                let mut made = vec![f32::NAN; m * n];
                let copy_rows = |rows: Range<usize>, to: &mut [f32]| {
                    to.copy_from_slice(&a[rows.start * k..rows.end * k])
                };
                packed.multiply_rows_made_by(copy_rows, m, &mut made, (-3.0, 4.0), None);
                assert_eq!(made, c, "{level}: rows made on the fly");
                let square = |y: &mut [f32]| y.iter_mut().for_each(|v| *v *= *v);
                let mut squared = vec![f32::NAN; m * n];
                packed.multiply(&a, m, &mut squared, (-3.0, 4.0), Some(&square));
                let mut made_squared = vec![f32::NAN; m * n];
                packed.multiply_rows_made_by(
                    copy_rows,
                    m,
                    &mut made_squared,
                    (-3.0, 4.0),
                    Some(&square),
                );
                let want: Vec<f32> = c.iter().map(|v| v * v).collect();
                assert_eq!(squared, want, "{level}: then applied to every value once");
                assert_eq!(made_squared, want, "{level}: then, rows made on the fly");
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
