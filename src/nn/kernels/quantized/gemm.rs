//! The integer product behind quantized CONV_2D and FULLY_CONNECTED: rows of inputs (receptive
//! fields or feature vectors) times rows of weights, each sum exact in 32 bits, then
//! requantized. Both sides carry their zero points already subtracted and widen to 16 bits, so
//! int8 and legacy uint8 models (whose weights have zero points too) take one path, and each
//! product is `(x − x_zero) × (w − w_zero)` as LiteRT's reference kernels form it.

use super::{Quantized, Requantize};
use crate::nn::simd::Level;
use crate::nn::thread_pool::{for_each_task, threads, SharedMut};
use std::cell::RefCell;
use std::ops::Range;

/// Filters per panel: the weights are packed so that one 512-bit load holds a pair of depth
/// values for each of 16 filters, the operand of one multiply-add of 16-bit pairs into 32-bit
/// sums (`vpmaddwd`).
const PANEL: usize = 16;
/// Rows one task makes and multiplies at a time: their fields stay in the level-1 cache while
/// each panel of weights passes over them.
const ROWS_PER_BLOCK: usize = 16;
/// Products below which one thread does the whole operator: handing out tasks costs more.
const PARALLEL_PRODUCTS: usize = 1 << 17;

pub(crate) struct QuantizedWeights {
    filters: usize,
    /// Pairs of depth values per row (the depth, rounded up to even, halved).
    pairs: usize,
    /// Per panel of [`PANEL`] filters, per pair of depth values, the pair of each filter:
    /// `[panel][pair][filter][2]`, zero past the last filter and the depth.
    panels: Vec<i16>,
    bias: Vec<i32>,
}

impl QuantizedWeights {
    /// `weights` holds `filters` rows of `depth` values; `zero_points` has one per filter (or
    /// one for all).
    pub fn new<W: Quantized>(
        weights: &[W],
        filters: usize,
        depth: usize,
        zero_points: &[i32],
        bias: Option<&[i32]>,
    ) -> Self {
        let pairs = depth.div_ceil(2);
        let mut panels = vec![0i16; filters.div_ceil(PANEL) * pairs * PANEL * 2];
        for (f, w) in weights.chunks_exact(depth).enumerate().take(filters) {
            let zero = zero_points[f % zero_points.len()];
            let (panel, lane) = (f / PANEL, f % PANEL);
            for (k, w) in w.iter().enumerate() {
                panels[((panel * pairs + k / 2) * PANEL + lane) * 2 + k % 2] =
                    (w.get() - zero) as i16;
            }
        }
        QuantizedWeights {
            filters,
            pairs,
            panels,
            bias: bias.map_or_else(|| vec![0; filters], <[i32]>::to_vec),
        }
    }

    /// The length of each row `make_rows` writes (the depth, padded with a zero to even).
    pub fn stride(&self) -> usize {
        self.pairs * 2
    }

    /// `out` (`rows × filters`) from rows that `make_rows(range, fields)` writes a block at a
    /// time, each as `stride()` values with the zero point subtracted and zeros after the depth.
    pub fn multiply<T: Quantized>(
        &self,
        make_rows: impl Fn(Range<usize>, &mut [i16]) + Sync,
        rows: usize,
        out: &mut [T],
        stage: &Requantize,
    ) {
        assert!(stage.scaling.len() >= self.filters);
        self.multiply_then(make_rows, rows, out, |_, sums, out| stage.store(sums, out));
    }

    /// As [`QuantizedWeights::multiply`], each row's sums (bias included) turned into its
    /// outputs by `finish(row, sums, outputs)`.
    pub fn multiply_then<O: Send>(
        &self,
        make_rows: impl Fn(Range<usize>, &mut [i16]) + Sync,
        rows: usize,
        out: &mut [O],
        finish: impl Fn(usize, &[i32], &mut [O]) + Sync,
    ) {
        assert!(out.len() >= rows * self.filters);
        let blocks = rows.div_ceil(ROWS_PER_BLOCK);
        let stride = self.stride();
        let tasks = match rows * self.filters * stride < PARALLEL_PRODUCTS {
            true => 1,
            false => blocks.min(threads() * 4),
        };
        let out = SharedMut(out.as_mut_ptr());
        for_each_task(tasks, |task| {
            let first = blocks * task / tasks * ROWS_PER_BLOCK;
            let last = (blocks * (task + 1) / tasks * ROWS_PER_BLOCK).min(rows);
            SCRATCH.with_borrow_mut(|(fields, sums)| {
                fields.resize(ROWS_PER_BLOCK * stride, 0);
                sums.resize(ROWS_PER_BLOCK * self.filters, 0);
                for start in (first..last).step_by(ROWS_PER_BLOCK) {
                    let range = start..(start + ROWS_PER_BLOCK).min(last);
                    let count = range.len();
                    let fields = &mut fields[..count * stride];
                    make_rows(range, fields);
                    let sums = &mut sums[..count * self.filters];
                    self.sums(fields, sums);
                    // SAFETY: rows `start..start + count` of `out`, which the assert above
                    // showed in bounds; tasks take disjoint rows.
                    let out = unsafe {
                        std::slice::from_raw_parts_mut(
                            out.get().add(start * self.filters),
                            count * self.filters,
                        )
                    };
                    for (i, (s, o)) in sums
                        .chunks_exact(self.filters)
                        .zip(out.chunks_exact_mut(self.filters))
                        .enumerate()
                    {
                        finish(start + i, s, o);
                    }
                }
            });
        });
    }
}

thread_local! {
    static SCRATCH: RefCell<(Vec<i16>, Vec<i32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

impl QuantizedWeights {
    /// `sums[r × filters + f] = bias[f] + fields row r · weights row f`, a panel at a time over
    /// tiles of rows, at the selected instruction set.
    fn sums(&self, fields: &[i16], sums: &mut [i32]) {
        let (stride, filters) = (self.stride(), self.filters);
        let rows = fields.len() / stride;
        let level = Level::selected();
        let mut tile = [[0i32; PANEL]; TILE_ROWS];
        for (p, panel) in self.panels.chunks_exact(self.pairs * PANEL * 2).enumerate() {
            let first = p * PANEL;
            let width = PANEL.min(filters - first);
            for start in (0..rows).step_by(TILE_ROWS) {
                let count = TILE_ROWS.min(rows - start);
                let fields = &fields[start * stride..][..count * stride];
                tile_sums(level, fields, stride, panel, self.pairs, &mut tile[..count]);
                for (r, t) in tile[..count].iter().enumerate() {
                    let out = &mut sums[(start + r) * filters + first..][..width];
                    for ((o, &t), &b) in out.iter_mut().zip(t).zip(&self.bias[first..]) {
                        *o = b.wrapping_add(t);
                    }
                }
            }
        }
    }
}

/// Rows per tile: each keeps [`PANEL`] sums in registers (one AVX-512 vector, two AVX2 ones).
const TILE_ROWS: usize = 8;

/// The sums of `tile.len()` rows of `fields` (at most [`TILE_ROWS`]) with one panel.
fn tile_sums(
    level: Level,
    fields: &[i16],
    stride: usize,
    panel: &[i16],
    pairs: usize,
    tile: &mut [[i32; PANEL]],
) {
    assert!(
        fields.len() >= tile.len() * stride
            && stride >= pairs * 2
            && panel.len() >= pairs * PANEL * 2
    );
    match level {
        // SAFETY: the processor has the level's features (checked), and the assert above bounds
        // every read.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 if level.is_available() && std::is_x86_feature_detected!("avx512bw") => unsafe {
            x86::tile_avx512(fields, stride, panel, pairs, tile)
        },
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 | Level::Avx2 if Level::Avx2.is_available() => unsafe {
            x86::tile_avx2(fields, stride, panel, pairs, tile)
        },
        _ => tile_portable(fields, stride, panel, pairs, tile),
    }
}

fn tile_portable(
    fields: &[i16],
    stride: usize,
    panel: &[i16],
    pairs: usize,
    tile: &mut [[i32; PANEL]],
) {
    for (row, sums) in fields.chunks_exact(stride).zip(tile.iter_mut()) {
        *sums = [0; PANEL];
        for (p, weights) in panel.chunks_exact(PANEL * 2).take(pairs).enumerate() {
            let (a, b) = (row[2 * p] as i32, row[2 * p + 1] as i32);
            for (s, w) in sums.iter_mut().zip(weights.chunks_exact(2)) {
                *s = s.wrapping_add(a * w[0] as i32 + b * w[1] as i32);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::PANEL;
    use std::arch::x86_64::*;

    /// Up to 8 rows, one 16-lane vector of sums each: per pair of depth values, the pair
    /// broadcast from each row times the panel's pairs.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn tile_avx512(
        fields: &[i16],
        stride: usize,
        panel: &[i16],
        pairs: usize,
        tile: &mut [[i32; PANEL]],
    ) {
        match tile.len() {
            8 => rows_avx512::<8>(fields, stride, panel, pairs, tile),
            n => {
                for r in 0..n {
                    rows_avx512::<1>(
                        &fields[r * stride..],
                        stride,
                        panel,
                        pairs,
                        &mut tile[r..r + 1],
                    );
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn rows_avx512<const R: usize>(
        fields: &[i16],
        stride: usize,
        panel: &[i16],
        pairs: usize,
        tile: &mut [[i32; PANEL]],
    ) {
        let (a, w) = (fields.as_ptr(), panel.as_ptr());
        let mut acc = [_mm512_setzero_si512(); R];
        for p in 0..pairs {
            let weights = _mm512_loadu_si512(w.add(p * PANEL * 2) as *const _);
            for (r, acc) in acc.iter_mut().enumerate() {
                let pair = (a.add(r * stride + 2 * p) as *const i32).read_unaligned();
                *acc = _mm512_add_epi32(*acc, _mm512_madd_epi16(_mm512_set1_epi32(pair), weights));
            }
        }
        for (sums, acc) in tile.iter_mut().zip(acc) {
            _mm512_storeu_si512(sums.as_mut_ptr() as *mut _, acc);
        }
    }

    /// As [`tile_avx512`] with two 8-lane vectors per row, four rows at a time (16 registers).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_avx2(
        fields: &[i16],
        stride: usize,
        panel: &[i16],
        pairs: usize,
        tile: &mut [[i32; PANEL]],
    ) {
        let mut r = 0;
        while r + 4 <= tile.len() {
            rows_avx2::<4>(
                &fields[r * stride..],
                stride,
                panel,
                pairs,
                &mut tile[r..r + 4],
            );
            r += 4;
        }
        while r < tile.len() {
            rows_avx2::<1>(
                &fields[r * stride..],
                stride,
                panel,
                pairs,
                &mut tile[r..r + 1],
            );
            r += 1;
        }
    }

    #[inline(always)]
    unsafe fn rows_avx2<const R: usize>(
        fields: &[i16],
        stride: usize,
        panel: &[i16],
        pairs: usize,
        tile: &mut [[i32; PANEL]],
    ) {
        let (a, w) = (fields.as_ptr(), panel.as_ptr());
        let mut acc = [[_mm256_setzero_si256(); 2]; R];
        for p in 0..pairs {
            let w0 = _mm256_loadu_si256(w.add(p * PANEL * 2) as *const _);
            let w1 = _mm256_loadu_si256(w.add(p * PANEL * 2 + PANEL) as *const _);
            for (r, acc) in acc.iter_mut().enumerate() {
                let pair =
                    _mm256_set1_epi32((a.add(r * stride + 2 * p) as *const i32).read_unaligned());
                acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(pair, w0));
                acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(pair, w1));
            }
        }
        for (sums, acc) in tile.iter_mut().zip(acc) {
            _mm256_storeu_si256(sums.as_mut_ptr() as *mut _, acc[0]);
            _mm256_storeu_si256(sums.as_mut_ptr().add(8) as *mut _, acc[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::kernels::quantized::{Multiplier, Scaling};

    #[test]
    /// At the level `PETAL_SIMD` selects (the suite runs at each).
    fn products_equal_the_definition() {
        let (rows, filters, depth) = (37, 11, 45);
        let x: Vec<u8> = (0..rows * depth).map(|i| (i * 37 % 256) as u8).collect();
        let w: Vec<i8> = (0..filters * depth)
            .map(|i| (i * 91 % 256) as u8 as i8)
            .collect();
        let bias: Vec<i32> = (0..filters as i32).map(|f| f * 1000 - 3000).collect();
        let (x_zero, w_zero) = (128, 3);
        let stage = Requantize {
            scaling: Scaling::fixed(
                &(0..filters)
                    .map(|f| Multiplier::new(0.0007 * (f + 1) as f64).unwrap())
                    .collect::<Vec<_>>(),
            ),
            zero_point: -5,
            min: -128,
            max: 127,
        };
        let mut expected = vec![0i8; rows * filters];
        for r in 0..rows {
            for f in 0..filters {
                let sum: i32 = (0..depth)
                    .map(|k| {
                        (x[r * depth + k] as i32 - x_zero) * (w[f * depth + k] as i32 - w_zero)
                    })
                    .sum();
                expected[r * filters + f] = stage.apply(sum + bias[f], f) as i8;
            }
        }
        let weights = QuantizedWeights::new(&w, filters, depth, &[w_zero], Some(&bias));
        let stride = weights.stride();
        let make_rows = |range: Range<usize>, fields: &mut [i16]| {
            for (r, row) in range.zip(fields.chunks_exact_mut(stride)) {
                row.fill(0);
                for (v, &x) in row.iter_mut().zip(&x[r * depth..][..depth]) {
                    *v = (x as i32 - x_zero) as i16;
                }
            }
        };
        let mut out = vec![0i8; rows * filters];
        weights.multiply(make_rows, rows, &mut out, &stage);
        assert_eq!(out, expected);
    }
}
