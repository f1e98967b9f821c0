//! Direct convolution: forward, kernel gradient and input gradient computed straight from a
//! zero-padded copy of the image by SIMD kernels, with no im2col matrix in between. The input
//! gradient of a stride-1 convolution is itself a convolution (of the padded output gradient with
//! the kernel flipped and transposed), so it reuses the forward kernel.
//!
//! This file checks every bound the kernels rely on and picks each instruction set's tile
//! shapes; `tiles.rs` only computes.

use super::tiles;
use crate::nn::simd::Level;
use std::ops::Range;

/// The shape of one convolution over one image, in the terms the kernels use: the input is
/// already padded, so output pixel (oy, ox) reads input rows `oy·sy .. oy·sy + kh` and columns
/// `ox·sx .. ox·sx + kw`, all inside.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub kh: usize,
    pub kw: usize,
    /// Input channels.
    pub channels: usize,
    /// Output channels: the kernel's last dimension and the length of an output pixel.
    pub filters: usize,
    pub sy: usize,
    pub sx: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_h: usize,
    pub out_w: usize,
    /// The instruction set the kernels run with.
    pub level: Level,
}

impl Geometry {
    pub fn input_len(&self) -> usize {
        self.in_h * self.in_w * self.channels
    }

    fn kernel_len(&self) -> usize {
        self.kh * self.kw * self.channels * self.filters
    }

    /// Whether every window lies inside the (padded) input.
    fn windows_fit(&self) -> bool {
        let fits = |out: usize, stride: usize, k: usize, size: usize| {
            out > 0
                && (out - 1)
                    .checked_mul(stride)
                    .and_then(|start| start.checked_add(k))
                    .is_some_and(|end| end <= size)
        };
        fits(self.out_h, self.sy, self.kh, self.in_h)
            && fits(self.out_w, self.sx, self.kw, self.in_w)
    }

    /// Whether every length the kernels work with fits in `usize`: a wrapped product would pass
    /// the length checks and let them address memory outside the slices.
    fn lengths_fit(&self) -> bool {
        let product = |dims: &[usize]| dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        product(&[self.in_h, self.in_w, self.channels]).is_some()
            && product(&[self.kh, self.kw, self.channels, self.filters]).is_some()
            && product(&[self.out_h, self.out_w, self.filters]).is_some()
    }

    /// Length of one kernel row's taps, contiguous in the input: kw × channels.
    fn tap_run(&self) -> usize {
        self.kw * self.channels
    }
}

/// Whether the kernels handle this shape: output channels in whole chunks of 16 (a vector of
/// AVX-512, two of AVX2 or the portable level), and kernel rows of at least [`SMALLEST_BLOCK`]
/// taps for the weight gradient.
pub(crate) fn supports(g: &Geometry) -> bool {
    g.lengths_fit()
        && g.filters > 0
        && g.filters.is_multiple_of(16)
        && g.tap_run() >= SMALLEST_BLOCK
        && g.windows_fit()
}

const SMALLEST_BLOCK: usize = 3;

/// Writes `image` (h × w × c) into `padded` (its geometry's input) with `top` rows and `left`
/// columns of zeros before it and zeros wherever the image does not reach.
pub(crate) fn pad_image(
    image: &[f32],
    (h, w, c): (usize, usize, usize),
    (top, left): (usize, usize),
    (ph, pw): (usize, usize),
    padded: &mut [f32],
) {
    assert!(padded.len() >= ph * pw * c);
    pad_rows(
        image,
        (h, w, c),
        (top, left),
        pw,
        0,
        &mut padded[..ph * pw * c],
    );
}

/// [`pad_image`] of the padded rows from `first` on (`pw`-wide, as many as `rows` holds), for
/// callers that pad an image in parts.
pub(crate) fn pad_rows(
    image: &[f32],
    (h, w, c): (usize, usize, usize),
    (top, left): (usize, usize),
    pw: usize,
    first: usize,
    rows: &mut [f32],
) {
    let line = pw * c;
    assert!(image.len() >= h * w * c && line > 0 && rows.len().is_multiple_of(line));
    let copied = w.min(pw.saturating_sub(left));
    for (py, out) in (first..).zip(rows.chunks_exact_mut(line)) {
        let Some(y) = py.checked_sub(top).filter(|&y| y < h) else {
            out.fill(0.0);
            continue;
        };
        out[..left.min(pw) * c].fill(0.0);
        out[(left + copied).min(pw) * c..].fill(0.0);
        if copied > 0 {
            out[left * c..(left + copied) * c].copy_from_slice(&image[y * w * c..][..copied * c]);
        }
    }
}

/// Output rows `rows` of one image: `out` holds those rows (`rows.len() × out_w × filters`),
/// with `bias` added and ReLU applied when `relu`.
pub(crate) fn forward(
    g: &Geometry,
    x: &[f32],
    kernel: &[f32],
    bias: &[f32],
    relu: bool,
    rows: Range<usize>,
    out: &mut [f32],
) {
    let row_len = g.out_w * g.filters;
    assert!(g.level.is_available() && supports(g) && rows.end <= g.out_h);
    assert!(x.len() >= g.input_len() && kernel.len() >= g.kernel_len());
    assert!(bias.len() >= g.filters && out.len() >= rows.len() * row_len);
    for (i, oy) in rows.enumerate() {
        let out_row = out[i * row_len..][..row_len].as_mut_ptr();
        for (f0, vectors) in filter_chunks(g) {
            // SAFETY: the processor has the level's features; `supports` proves every window
            // inside `x` (of the geometry's input length), the kernel and bias hold `filters`
            // columns, and `out_row` one output row.
            unsafe {
                forward_row(
                    g,
                    x.as_ptr(),
                    kernel.as_ptr(),
                    bias.as_ptr(),
                    relu,
                    oy,
                    f0,
                    vectors,
                    out_row,
                )
            };
        }
    }
}

/// Floats per vector, and the most vectors of filters a tile holds, at `level`.
fn vector_shape(level: Level) -> (usize, usize) {
    match level {
        Level::Avx512 => (16, 4),
        Level::Neon => (4, 4),
        Level::Avx2 | Level::Scalar => (8, 2),
    }
}

/// Filter columns in chunks of at most the level's vectors per tile: (first filter, vectors).
fn filter_chunks(g: &Geometry) -> impl Iterator<Item = (usize, usize)> {
    let (lanes, most) = vector_shape(g.level);
    let filters = g.filters;
    (0..filters)
        .step_by(lanes * most)
        .map(move |f0| (f0, ((filters - f0) / lanes).min(most)))
}

/// Runs the forward kernel instantiated for this level, tile and channel count. Tiles: the
/// accumulators (`V` × `P` vectors), `V` kernel vectors and one broadcast fit the level's
/// registers (32 for AVX-512 and NEON, 16 for AVX2).
#[allow(clippy::too_many_arguments)]
unsafe fn forward_row(
    g: &Geometry,
    x: *const f32,
    w: *const f32,
    bias: *const f32,
    relu: bool,
    oy: usize,
    f0: usize,
    vectors: usize,
    out: *mut f32,
) {
    // Constant channel counts for the tutorial's layers and their input gradients, and for
    // RGB first layers at stride 2 (the MobileNets', EfficientNets' and ResNets').
    let (channels, stride) = match (g.sx, g.channels) {
        (1, c) => (c, 1),
        (2, 3) => (3, 2),
        _ => (0, 1),
    };
    macro_rules! go {
        ($set:ident, $v:literal, $p:literal, 3) => {
            match stride {
                2 => tiles::$set::forward_row::<$v, $p, 3, 2>(g, x, w, bias, relu, oy, f0, out),
                _ => tiles::$set::forward_row::<$v, $p, 3, 1>(g, x, w, bias, relu, oy, f0, out),
            }
        };
        ($set:ident, $v:literal, $p:literal, $c:literal) => {
            tiles::$set::forward_row::<$v, $p, $c, 1>(g, x, w, bias, relu, oy, f0, out)
        };
    }
    macro_rules! two_vectors {
        ($set:ident) => {{
            debug_assert_eq!(vectors, 2);
            match channels {
                3 => go!($set, 2, 6, 3),
                16 => go!($set, 2, 6, 16),
                32 => go!($set, 2, 6, 32),
                64 => go!($set, 2, 6, 64),
                _ => go!($set, 2, 6, 0),
            }
        }};
    }
    match g.level {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => match (vectors, channels) {
            (1, 3) => go!(avx512, 1, 12, 3),
            (2, 3) => go!(avx512, 2, 12, 3),
            (1, 16) => go!(avx512, 1, 12, 16),
            (1, 32) => go!(avx512, 1, 12, 32),
            (1, 64) => go!(avx512, 1, 12, 64),
            (1, _) => go!(avx512, 1, 12, 0),
            (2, 16) => go!(avx512, 2, 12, 16),
            (2, 32) => go!(avx512, 2, 12, 32),
            (2, 64) => go!(avx512, 2, 12, 64),
            (2, _) => go!(avx512, 2, 12, 0),
            (3, _) => go!(avx512, 3, 8, 0),
            (_, 3) => go!(avx512, 4, 6, 3),
            (_, 32) => go!(avx512, 4, 6, 32),
            (_, 64) => go!(avx512, 4, 6, 64),
            _ => go!(avx512, 4, 6, 0),
        },
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => two_vectors!(avx2),
        // Sixteen filters are four NEON vectors: 24 accumulators of 32 registers.
        #[cfg(target_arch = "aarch64")]
        Level::Neon => match channels {
            3 => go!(neon, 4, 6, 3),
            16 => go!(neon, 4, 6, 16),
            32 => go!(neon, 4, 6, 32),
            64 => go!(neon, 4, 6, 64),
            _ => go!(neon, 4, 6, 0),
        },
        _ => two_vectors!(scalar),
    }
}

/// Adds to `dw` (the kernel's shape) the kernel gradient of output rows `oys`: `dy` holds the
/// output gradient with `dy_row` floats from one output row to the next (its padding, if any,
/// is skipped by the caller's slicing).
pub(crate) fn weight_grad(
    g: &Geometry,
    x: &[f32],
    dy: &[f32],
    dy_row: usize,
    oys: Range<usize>,
    dw: &mut [f32],
) {
    assert!(g.level.is_available() && supports(g));
    assert!(oys.end <= g.out_h && dy_row >= g.out_w * g.filters);
    assert!(x.len() >= g.input_len() && dw.len() >= g.kernel_len());
    if oys.is_empty() {
        return;
    }
    let dy_needed = (oys.end - 1)
        .checked_mul(dy_row)
        .and_then(|start| start.checked_add(g.out_w * g.filters));
    assert!(dy_needed.is_some_and(|needed| dy.len() >= needed));
    let run = g.tap_run();
    for ky in 0..g.kh {
        for (f0, vectors) in filter_chunks(g) {
            let mut done = 0;
            while done < run {
                // The largest block that fits what is left; only a remainder under the smallest
                // block moves its block back over taps already done (and skips adding them).
                let rows = block_rows(g.level, vectors, run - done);
                let r0 = done.min(run - rows);
                // SAFETY: the processor has the level's features; `supports` proves every tap of
                // every window inside `x` and `run ≥ SMALLEST_BLOCK`; the block's taps
                // r0 .. r0 + rows lie within the kernel row's `run`; `dy` holds rows `oys`
                // of `out_w × filters` values `dy_row` apart, and `dw` the whole kernel.
                unsafe {
                    weight_grad_block(
                        g,
                        x.as_ptr(),
                        dy.as_ptr(),
                        dy_row,
                        oys.clone(),
                        ky,
                        r0,
                        done - r0,
                        f0,
                        vectors,
                        rows,
                        dw.as_mut_ptr(),
                    )
                };
                done = r0 + rows;
            }
        }
    }
}

/// Taps per weight-gradient block: the most whose accumulators fit the registers beside `V`
/// gradient vectors and one broadcast, or a smaller instantiated size when fewer taps are left.
fn block_rows(level: Level, vectors: usize, left: usize) -> usize {
    let most = match (level, vectors) {
        (Level::Avx512, 1) => 24,
        (Level::Avx512, 2) => 12,
        (Level::Avx512, 3) => 8,
        _ => 6,
    };
    [most, 9, 6, SMALLEST_BLOCK]
        .into_iter()
        .find(|&r| r <= left && r <= most)
        .unwrap_or(SMALLEST_BLOCK)
}

#[allow(clippy::too_many_arguments)]
unsafe fn weight_grad_block(
    g: &Geometry,
    x: *const f32,
    dy: *const f32,
    dy_row: usize,
    oys: Range<usize>,
    ky: usize,
    r0: usize,
    keep_from: usize,
    f0: usize,
    vectors: usize,
    rows: usize,
    dw: *mut f32,
) {
    macro_rules! go {
        ($set:ident, $v:literal, $r:literal) => {
            tiles::$set::weight_grad_block::<$v, $r>(
                g, x, dy, dy_row, oys, ky, r0, keep_from, f0, dw,
            )
        };
    }
    match g.level {
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => match (vectors, rows) {
            (1, 24) => go!(avx512, 1, 24),
            (1, 9) => go!(avx512, 1, 9),
            (1, 6) => go!(avx512, 1, 6),
            (1, _) => go!(avx512, 1, 3),
            (2, 12) => go!(avx512, 2, 12),
            (2, 9) => go!(avx512, 2, 9),
            (2, 6) => go!(avx512, 2, 6),
            (2, _) => go!(avx512, 2, 3),
            (3, 8) => go!(avx512, 3, 8),
            (3, 6) => go!(avx512, 3, 6),
            (3, _) => go!(avx512, 3, 3),
            (_, 6) => go!(avx512, 4, 6),
            _ => go!(avx512, 4, 3),
        },
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => match (vectors, rows) {
            (2, 6) => go!(avx2, 2, 6),
            _ => go!(avx2, 2, 3),
        },
        #[cfg(target_arch = "aarch64")]
        Level::Neon => match (vectors, rows) {
            (4, 6) => go!(neon, 4, 6),
            _ => go!(neon, 4, 3),
        },
        _ => match (vectors, rows) {
            (2, 6) => go!(scalar, 2, 6),
            _ => go!(scalar, 2, 3),
        },
    }
}

/// The kernel of the input gradient: `flipped[ky][kx][f][c] = kernel[kh-1-ky][kw-1-kx][c][f]`.
pub(crate) fn flip_kernel(
    kernel: &[f32],
    (kh, kw, c, f): (usize, usize, usize, usize),
    flipped: &mut Vec<f32>,
) {
    flipped.resize(kh * kw * c * f, 0.0);
    for ky in 0..kh {
        for kx in 0..kw {
            let from = &kernel[((kh - 1 - ky) * kw + (kw - 1 - kx)) * c * f..][..c * f];
            let to = &mut flipped[(ky * kw + kx) * c * f..][..c * f];
            for ci in 0..c {
                for fi in 0..f {
                    to[fi * c + ci] = from[ci * f + fi];
                }
            }
        }
    }
}
