//! The integer product behind quantized CONV_2D and FULLY_CONNECTED: rows of inputs (receptive
//! fields or feature vectors) times rows of weights, each sum exact in 32 bits, then
//! requantized. Both sides carry their zero points already subtracted and widen to 16 bits, so
//! int8 and legacy uint8 models (whose weights have zero points too) take one path, and each
//! product is `(x − x_zero) × (w − w_zero)` as LiteRT's reference kernels form it.

use super::{Quantized, Requantize};
use crate::nn::thread_pool::{for_each_task, threads, SharedMut};
use std::cell::RefCell;
use std::ops::Range;

/// Depth is padded to a multiple of this many values (zeros on both sides add nothing), so the
/// products run in whole vectors.
pub const DEPTH_ALIGN: usize = 32;
/// Rows one task makes and multiplies at a time: their fields stay in the level-1 cache while
/// each group of weights passes over them.
const ROWS_PER_BLOCK: usize = 16;
/// Filters whose sums one pass over a row accumulates together.
const FILTERS_AT_ONCE: usize = 4;
/// Products below which one thread does the whole operator: handing out tasks costs more.
const PARALLEL_PRODUCTS: usize = 1 << 17;

pub(crate) struct QuantizedWeights {
    filters: usize,
    /// Values per row, padded to [`DEPTH_ALIGN`].
    stride: usize,
    values: Vec<i16>,
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
        let stride = depth.div_ceil(DEPTH_ALIGN) * DEPTH_ALIGN;
        let mut values = vec![0i16; filters * stride];
        for (f, (row, w)) in values
            .chunks_exact_mut(stride)
            .zip(weights.chunks_exact(depth))
            .enumerate()
        {
            let zero = zero_points[f % zero_points.len()];
            for (v, w) in row.iter_mut().zip(w) {
                *v = (w.get() - zero) as i16;
            }
        }
        QuantizedWeights {
            filters,
            stride,
            values,
            bias: bias.map_or_else(|| vec![0; filters], <[i32]>::to_vec),
        }
    }

    /// The length of each row `make_rows` writes (the depth, padded with zeros).
    pub fn stride(&self) -> usize {
        self.stride
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
        let tasks = match rows * self.filters * self.stride < PARALLEL_PRODUCTS {
            true => 1,
            false => blocks.min(threads() * 4),
        };
        let out = SharedMut(out.as_mut_ptr());
        for_each_task(tasks, |task| {
            let first = blocks * task / tasks * ROWS_PER_BLOCK;
            let last = (blocks * (task + 1) / tasks * ROWS_PER_BLOCK).min(rows);
            SCRATCH.with_borrow_mut(|(fields, sums)| {
                fields.resize(ROWS_PER_BLOCK * self.stride, 0);
                sums.resize(ROWS_PER_BLOCK * self.filters, 0);
                for start in (first..last).step_by(ROWS_PER_BLOCK) {
                    let range = start..(start + ROWS_PER_BLOCK).min(last);
                    let count = range.len();
                    let fields = &mut fields[..count * self.stride];
                    make_rows(range, fields);
                    let sums = &mut sums[..count * self.filters];
                    row_sums(fields, &self.values, self.stride, &self.bias, sums);
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

crate::nn::simd::compiled_per_level! {
    /// `sums[r × filters + f] = bias[f] + fields row r · weights row f`.
    fn row_sums(fields: &[i16], weights: &[i16], stride: usize, bias: &[i32], sums: &mut [i32]) =
        row_sums_portable
}

#[inline(always)]
fn row_sums_portable(
    fields: &[i16],
    weights: &[i16],
    stride: usize,
    bias: &[i32],
    sums: &mut [i32],
) {
    let filters = bias.len();
    let groups = weights.chunks_exact(stride * FILTERS_AT_ONCE);
    let whole = groups.len() * FILTERS_AT_ONCE;
    for (g, group) in groups.enumerate() {
        let f = g * FILTERS_AT_ONCE;
        let [w0, w1, w2, w3] = [0, 1, 2, 3].map(|i| &group[i * stride..][..stride]);
        for (row, s) in fields
            .chunks_exact(stride)
            .zip(sums.chunks_exact_mut(filters))
        {
            let mut acc = [0i32; FILTERS_AT_ONCE];
            for (k, &x) in row.iter().enumerate() {
                let x = x as i32;
                acc[0] += x * w0[k] as i32;
                acc[1] += x * w1[k] as i32;
                acc[2] += x * w2[k] as i32;
                acc[3] += x * w3[k] as i32;
            }
            for (i, a) in acc.into_iter().enumerate() {
                s[f + i] = bias[f + i].wrapping_add(a);
            }
        }
    }
    for f in whole..filters {
        let w = &weights[f * stride..][..stride];
        for (row, s) in fields
            .chunks_exact(stride)
            .zip(sums.chunks_exact_mut(filters))
        {
            let dot: i32 = row.iter().zip(w).map(|(&x, &w)| x as i32 * w as i32).sum();
            s[f] = bias[f].wrapping_add(dot);
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
            scaling: Scaling::Fixed(
                (0..filters)
                    .map(|f| Multiplier::new(0.0007 * (f + 1) as f64).unwrap())
                    .collect(),
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
