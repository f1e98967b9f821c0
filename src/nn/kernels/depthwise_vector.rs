//! The depthwise convolution with one output channel per input channel (every depthwise layer of
//! the MobileNets and EfficientNets) on the SIMD layer. A tile of a few output pixels runs every
//! block of one register of channels before the next tile, so the input is read in the order it
//! lies in memory, while a block's 3×3 or 5×5 filter taps stay in registers across the tile.
//! Within a tile, four neighbouring outputs share each input load (their windows overlap); a
//! pixel on the border finds its taps inside the image once for all its channel blocks.

use super::depthwise::Depthwise;
use crate::nn::simd::{Level, Simd};
use std::ops::Range;

/// Output rows `first…` of `d` (as many as `y` holds) from `x`, the input's rows from `x_first`
/// on, when its level's vectors are no wider than the channels; `false` (nothing written)
/// otherwise, for the general kernel to do.
pub(super) fn rows(
    d: &Depthwise,
    (x, x_first): (&[f32], usize),
    filter: &[f32],
    bias: Option<&[f32]>,
    first: usize,
    y: &mut [f32],
) -> bool {
    let (c, out_w) = (d.channels, d.cols.output);
    let count = y.len() / (out_w * c).max(1);
    let read = d.input_rows(first..first + count);
    assert!(
        d.multiplier == 1
            && d.level.is_available()
            && first + count <= d.rows.output
            && x_first <= read.start
            && x.len() >= (read.end - x_first) * d.cols.input * c
            && filter.len() >= d.rows.window * d.cols.window * c
            && bias.is_none_or(|b| b.len() >= c)
    );
    let job = Job {
        x: x.as_ptr(),
        x_first,
        filter: filter.as_ptr(),
        bias: bias.map_or(std::ptr::null(), <[f32]>::as_ptr),
        first,
        count,
        y: y.as_mut_ptr(),
    };
    // SAFETY: the level runs here (asserted); the slices hold what the geometry reads and writes
    // (asserted), and every block of `LANES` channels lies inside `c` because `c ≥ LANES`.
    unsafe {
        match d.level {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 if c >= 16 => avx512::rows::<crate::nn::simd::Avx512>(d, &job),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 | Level::Avx2 if c >= 8 => avx2::rows::<crate::nn::simd::Avx2>(d, &job),
            #[cfg(target_arch = "aarch64")]
            Level::Neon if c >= 4 => neon::rows::<crate::nn::simd::Neon>(d, &job),
            Level::Scalar if c >= 8 => scalar::rows::<crate::nn::simd::Portable>(d, &job),
            _ => return false,
        }
    }
    true
}

/// Output rows `first…first + count` of one image: its input `x` from row `x_first` on, the
/// filter, the bias (null for none) and the rows' output `y`.
struct Job {
    x: *const f32,
    x_first: usize,
    filter: *const f32,
    bias: *const f32,
    first: usize,
    count: usize,
    y: *mut f32,
}

/// The rows with the filter's size known at compile time for the usual 3×3 and 5×5 (`K = 0`:
/// any size, taps loaded as they are used).
#[inline(always)]
unsafe fn rows_of_any_window<S: Simd>(d: &Depthwise, job: &Job) {
    match (d.rows.window, d.cols.window) {
        (3, 3) => rows_of::<S, 3>(d, job),
        (5, 5) => rows_of::<S, 5>(d, job),
        _ => rows_of::<S, 0>(d, job),
    }
}

#[inline(always)]
unsafe fn rows_of<S: Simd, const K: usize>(d: &Depthwise, job: &Job) {
    let (c, out_w) = (d.channels, d.cols.output);
    let (x, filter, y) = (job.x, job.filter, job.y);
    let inside = inside_columns(d);
    let block_bias = |block: usize| match job.bias.is_null() {
        true => S::zero(),
        false => S::load(job.bias.add(block)),
    };
    // A border pixel's (input, filter) pointers of each tap inside the image.
    let mut taps = Vec::with_capacity(d.rows.window * d.cols.window);
    for r in 0..job.count {
        let (ky, iy0) = d.rows.taps(job.first + r);
        let row = Row {
            x: x.add(iy0.saturating_sub(job.x_first) * d.cols.input * c),
            ky,
            out: y.add(r * out_w * c),
        };
        let registers = K > 0 && row.ky.len() == K && d.cols.window == K;
        let (left, right) = match registers {
            true => (inside.start, inside.end),
            false => (out_w, out_w),
        };
        for ox in (0..left).chain(right..out_w) {
            clipped_pixel::<S>(d, &row, filter, job.bias, ox, &mut taps);
        }
        // A few pixels at a time, every channel block of them: the input is read pixel after
        // pixel, as it lies in memory, while each block's taps stay in registers for the few.
        for tile in (left..right).step_by(PIXELS_PER_TILE) {
            let pixels = tile..right.min(tile + PIXELS_PER_TILE);
            for block in channel_blocks::<S>(c) {
                tile_block::<S, K>(d, &row, filter, block_bias(block), pixels.clone(), block);
            }
        }
    }
}

/// Output pixels whose channel blocks run together (see [`rows_of`]).
const PIXELS_PER_TILE: usize = 8;

/// The first channel of each block of `LANES`; the last block overlaps the one before when
/// `LANES` does not divide the channels (its shared channels are computed twice, alike).
fn channel_blocks<S: Simd>(c: usize) -> impl Iterator<Item = usize> {
    (0..c)
        .step_by(S::LANES)
        .map(move |start| start.min(c - S::LANES))
}

/// One output row: `x` at its first input row inside the image, `ky` the filter rows inside.
struct Row {
    x: *const f32,
    ky: Range<usize>,
    out: *mut f32,
}

/// The output columns whose window lies wholly inside the input (a range, maybe empty).
fn inside_columns(d: &Depthwise) -> Range<usize> {
    let inside = |ox: &usize| d.cols.taps(*ox).0.len() == d.cols.window;
    let out_w = d.cols.output;
    let start = (0..out_w).find(inside).unwrap_or(out_w);
    let end = (start..out_w).rfind(inside).map_or(start, |ox| ox + 1);
    start..end
}

/// Channels `block…block + LANES` of output `pixels` of one row, whose windows lie inside the
/// input, with the `K × K` taps in registers.
#[inline(always)]
unsafe fn tile_block<S: Simd, const K: usize>(
    d: &Depthwise,
    row: &Row,
    filter: *const f32,
    bias: S::F,
    pixels: Range<usize>,
    block: usize,
) {
    let (lo, hi) = (S::splat(d.min), S::splat(d.max));
    let c = d.channels;
    let mut w = [[S::zero(); K]; K];
    for (i, taps) in w.iter_mut().enumerate() {
        for (j, tap) in taps.iter_mut().enumerate() {
            *tap = S::load(filter.add((i * K + j) * c + block));
        }
    }
    let (line, step) = (d.cols.input * c * d.rows.dilation, d.cols.dilation * c);
    let mut pixels = pixels;
    if K > 0 && d.cols.dilation == 1 && d.cols.stride <= 2 {
        while pixels.start + SLIDE <= pixels.end {
            match d.cols.stride {
                1 => slide::<S, K, 1>(d, row, &w, bias, pixels.start, block),
                _ => slide::<S, K, 2>(d, row, &w, bias, pixels.start, block),
            }
            pixels.start += SLIDE;
        }
    }
    for ox in pixels {
        let corner = row
            .x
            .add((ox * d.cols.stride - d.cols.pad_before) * c + block);
        let mut acc = bias;
        for (i, taps) in w.iter().enumerate() {
            let pixels = corner.add(i * line);
            for (j, &tap) in taps.iter().enumerate() {
                acc = S::mul_add(S::load(pixels.add(j * step)), tap, acc);
            }
        }
        S::store(row.out.add(ox * c + block), S::clamp(acc, lo, hi));
    }
}

/// Output pixels that [`slide`] sums together (their sums and a 3×3 filter fill AVX2's 16
/// registers).
const SLIDE: usize = 4;

/// Channels `block…` of `SLIDE` neighbouring output pixels of a row with stride `STRIDE` (1 or
/// 2): each input pixel is loaded once per filter row and multiplied into every output whose
/// window holds it.
#[inline(always)]
unsafe fn slide<S: Simd, const K: usize, const STRIDE: usize>(
    d: &Depthwise,
    row: &Row,
    w: &[[S::F; K]; K],
    bias: S::F,
    first: usize,
    block: usize,
) {
    let (lo, hi) = (S::splat(d.min), S::splat(d.max));
    let c = d.channels;
    let line = d.cols.input * c * d.rows.dilation;
    let corner = row.x.add((first * STRIDE - d.cols.pad_before) * c + block);
    let mut acc = [bias; SLIDE];
    for (i, taps) in w.iter().enumerate() {
        let line = corner.add(i * line);
        for q in 0..STRIDE * (SLIDE - 1) + K {
            let v = S::load(line.add(q * c));
            for (p, acc) in acc.iter_mut().enumerate() {
                if q >= STRIDE * p && q - STRIDE * p < K {
                    *acc = S::mul_add(v, taps[q - STRIDE * p], *acc);
                }
            }
        }
    }
    for (p, acc) in acc.into_iter().enumerate() {
        S::store(row.out.add((first + p) * c + block), S::clamp(acc, lo, hi));
    }
}

/// Every channel of one output pixel whose window crosses the image's border (or whose filter
/// size has no registers kept, `K = 0`): the taps inside the image found once, in `taps`, then
/// each channel block summed over them.
#[inline(always)]
unsafe fn clipped_pixel<S: Simd>(
    d: &Depthwise,
    row: &Row,
    filter: *const f32,
    bias: *const f32,
    ox: usize,
    taps: &mut Vec<(*const f32, *const f32)>,
) {
    let c = d.channels;
    let (kx, ix0) = d.cols.taps(ox);
    taps.clear();
    for (i, ky) in row.ky.clone().enumerate() {
        let line = row.x.add(i * d.rows.dilation * d.cols.input * c);
        for (j, kx) in kx.clone().enumerate() {
            let pixel = line.add((ix0 + j * d.cols.dilation) * c);
            taps.push((pixel, filter.add((ky * d.cols.window + kx) * c)));
        }
    }
    let (lo, hi) = (S::splat(d.min), S::splat(d.max));
    for block in channel_blocks::<S>(c) {
        let mut acc = match bias.is_null() {
            true => S::zero(),
            false => S::load(bias.add(block)),
        };
        for &(pixel, tap) in taps.iter() {
            acc = S::mul_add(S::load(pixel.add(block)), S::load(tap.add(block)), acc);
        }
        S::store(row.out.add(ox * c + block), S::clamp(acc, lo, hi));
    }
}

/// The kernel compiled for one instruction set, so every [`Simd`] operation inlines to its
/// instructions.
macro_rules! instruction_set {
    ($module:ident $(, $features:literal)?) => {
        mod $module {
            use super::{Depthwise, Job};
            use crate::nn::simd::Simd;

            $(#[target_feature(enable = $features)])?
            pub unsafe fn rows<S: Simd>(d: &Depthwise, job: &Job) {
                super::rows_of_any_window::<S>(d, job)
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
instruction_set!(avx512, "avx512f,avx2,fma");
#[cfg(target_arch = "x86_64")]
instruction_set!(avx2, "avx2,fma");
#[cfg(target_arch = "aarch64")]
instruction_set!(neon);
instruction_set!(scalar);
