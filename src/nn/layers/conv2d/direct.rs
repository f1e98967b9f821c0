//! Direct convolution: forward, kernel gradient and input gradient computed straight from a
//! zero-padded copy of the image by AVX-512 kernels, with no im2col matrix in between. The input
//! gradient of a stride-1 convolution is itself a convolution (of the padded output gradient with
//! the kernel flipped and transposed), so it reuses the forward kernel.
//!
//! This file checks every bound the kernels rely on; `avx512.rs` only computes.

use std::ops::Range;

/// The shape of one convolution over one image, in the terms the kernels use: the input is
/// already padded, so output pixel (oy, ox) reads input rows `oy·sy .. oy·sy + kh` and columns
/// `ox·sx .. ox·sx + kw`, all inside.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geometry {
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

/// Whether this processor runs the direct kernels.
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the kernels handle this shape: whole vectors of 16 output channels, and kernel rows
/// of at least [`SMALLEST_BLOCK`] taps for the weight gradient.
pub(super) fn supports(g: &Geometry) -> bool {
    g.lengths_fit()
        && g.filters > 0
        && g.filters.is_multiple_of(16)
        && g.tap_run() >= SMALLEST_BLOCK
        && g.windows_fit()
}

const SMALLEST_BLOCK: usize = 3;

/// Writes `image` (h × w × c) into `padded` (its geometry's input) with `top` rows and `left`
/// columns of zeros before it and zeros wherever the image does not reach.
pub(super) fn pad_image(
    image: &[f32],
    (h, w, c): (usize, usize, usize),
    (top, left): (usize, usize),
    (ph, pw): (usize, usize),
    padded: &mut [f32],
) {
    let line = pw * c;
    assert!(image.len() >= h * w * c && padded.len() >= ph * line);
    let copied = w.min(pw.saturating_sub(left));
    for (py, out) in padded[..ph * line].chunks_exact_mut(line).enumerate() {
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
pub(super) fn forward(
    g: &Geometry,
    x: &[f32],
    kernel: &[f32],
    bias: &[f32],
    relu: bool,
    rows: Range<usize>,
    out: &mut [f32],
) {
    let row_len = g.out_w * g.filters;
    assert!(available() && supports(g) && rows.end <= g.out_h);
    assert!(x.len() >= g.input_len() && kernel.len() >= g.kernel_len());
    assert!(bias.len() >= g.filters && out.len() >= rows.len() * row_len);
    for (i, oy) in rows.enumerate() {
        let out_row = out[i * row_len..][..row_len].as_mut_ptr();
        for (f0, vectors) in filter_chunks(g.filters) {
            // SAFETY: the processor has AVX-512; `supports` proves every window inside `x` (of
            // the geometry's input length), the kernel and bias hold `filters` columns, and
            // `out_row` one output row.
            #[cfg(target_arch = "x86_64")]
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

/// Filter columns in chunks of at most four vectors of 16: (first filter, vectors).
fn filter_chunks(filters: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..filters)
        .step_by(64)
        .map(move |f0| (f0, ((filters - f0) / 16).min(4)))
}

#[cfg(target_arch = "x86_64")]
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
    use super::avx512::{forward_row as row, tile_pixels as p};
    // Constant channel counts for the tutorial's layers and their input gradients.
    let channels = if g.sx == 1 { g.channels } else { 0 };
    macro_rules! go {
        ($v:literal, $c:literal) => {
            row::<$v, { p($v) }, $c>(g, x, w, bias, relu, oy, f0, out)
        };
    }
    match (vectors, channels) {
        (1, 3) => go!(1, 3),
        (1, 16) => go!(1, 16),
        (1, 32) => go!(1, 32),
        (1, 64) => go!(1, 64),
        (1, _) => go!(1, 0),
        (2, 16) => go!(2, 16),
        (2, 32) => go!(2, 32),
        (2, 64) => go!(2, 64),
        (2, _) => go!(2, 0),
        (3, _) => go!(3, 0),
        (_, 32) => go!(4, 32),
        (_, 64) => go!(4, 64),
        _ => go!(4, 0),
    }
}

/// Adds to `dw` (the kernel's shape) the kernel gradient of output rows `oys`: `dy` holds the
/// output gradient with `dy_row` floats from one output row to the next (its padding, if any,
/// is skipped by the caller's slicing).
pub(super) fn weight_grad(
    g: &Geometry,
    x: &[f32],
    dy: &[f32],
    dy_row: usize,
    oys: Range<usize>,
    dw: &mut [f32],
) {
    assert!(available() && supports(g) && oys.end <= g.out_h && dy_row >= g.out_w * g.filters);
    assert!(x.len() >= g.input_len() && dw.len() >= g.kernel_len());
    if oys.is_empty() {
        return;
    }
    let dy_needed = (oys.end - 1)
        .checked_mul(dy_row)
        .and_then(|start| start.checked_add(g.out_w * g.filters));
    assert!(dy_needed.is_some_and(|needed| dy.len() >= needed));
    let run = g.tap_run();
    #[cfg(target_arch = "x86_64")]
    for ky in 0..g.kh {
        for (f0, vectors) in filter_chunks(g.filters) {
            let rows = block_rows(vectors, run);
            let mut done = 0;
            while done < run {
                let r0 = done.min(run - rows);
                // SAFETY: the processor has AVX-512; `supports` proves every tap of every window
                // inside `x`; the block's
                // taps r0 .. r0 + rows lie within the kernel row's `run`; `dy` holds rows `oys`
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

/// Taps per weight-gradient block: the most that fit the registers, or a smaller instantiated
/// size when a kernel row has fewer taps.
#[cfg(target_arch = "x86_64")]
fn block_rows(vectors: usize, run: usize) -> usize {
    let most = super::avx512::block_rows(vectors);
    [most, 9, 6, SMALLEST_BLOCK]
        .into_iter()
        .find(|&r| r <= run && r <= most)
        .unwrap_or(SMALLEST_BLOCK)
}

#[cfg(target_arch = "x86_64")]
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
    use super::avx512::weight_grad_block as block;
    macro_rules! go {
        ($v:literal, $r:literal) => {
            block::<$v, $r>(g, x, dy, dy_row, oys, ky, r0, keep_from, f0, dw)
        };
    }
    match (vectors, rows) {
        (1, 24) => go!(1, 24),
        (1, 9) => go!(1, 9),
        (1, 6) => go!(1, 6),
        (1, _) => go!(1, 3),
        (2, 12) => go!(2, 12),
        (2, 9) => go!(2, 9),
        (2, 6) => go!(2, 6),
        (2, _) => go!(2, 3),
        (3, 8) => go!(3, 8),
        (3, 6) => go!(3, 6),
        (3, _) => go!(3, 3),
        (_, 6) => go!(4, 6),
        _ => go!(4, 3),
    }
}

/// The kernel of the input gradient: `flipped[ky][kx][f][c] = kernel[kh-1-ky][kw-1-kx][c][f]`.
pub(super) fn flip_kernel(
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
