//! The portable path: each band of output rows becomes a matrix of receptive fields (im2col)
//! that one GEMM multiplies by the kernel; col2im is its adjoint for the input gradient.

use crate::nn::layers::window::Axis;
use std::ops::Range;

crate::nn::simd::compiled_per_level! {
    /// Copies the receptive field of every output pixel in `pixels` (row-major indices) into
    /// one row of `columns` (zeros where padded). Its many short copies take half the instructions with
    /// AVX2's wider moves.
    pub(crate) fn im2col(
        image: &[f32],
        rows: &Axis,
        cols: &Axis,
        channels: usize,
        pixels: Range<usize>,
        columns: &mut [f32],
    ) = im2col_portable
}

#[inline(always)]
fn im2col_portable(
    image: &[f32],
    rows: &Axis,
    cols: &Axis,
    channels: usize,
    pixels: Range<usize>,
    columns: &mut [f32],
) {
    let run = cols.window * channels;
    let patch = rows.window * run;
    let line_len = cols.input * channels;
    for (out, pixel) in columns.chunks_exact_mut(patch).zip(pixels) {
        let (oy, ox) = (pixel / cols.output, pixel % cols.output);
        let inside = (cols.dilation == 1)
            .then(|| cols.source(ox, 0))
            .flatten()
            .filter(|_| cols.source(ox, cols.window - 1).is_some());
        for ky in 0..rows.window {
            let dst = &mut out[ky * run..][..run];
            let Some(iy) = rows.source(oy, ky) else {
                dst.fill(0.0);
                continue;
            };
            let line = &image[iy * line_len..][..line_len];
            match inside {
                Some(first) => copy_run(dst, &line[first * channels..][..run]),
                None => {
                    for kx in 0..cols.window {
                        let d = &mut dst[kx * channels..][..channels];
                        match cols.source(ox, kx) {
                            Some(ix) => d.copy_from_slice(&line[ix * channels..][..channels]),
                            None => d.fill(0.0),
                        }
                    }
                }
            }
        }
    }
}

crate::nn::simd::compiled_per_level! {
    /// The adjoint of [`im2col`]: adds each row of `columns` back onto the pixels it came from.
    pub(crate) fn col2im(
        columns: &[f32],
        rows: &Axis,
        cols: &Axis,
        channels: usize,
        band: Range<usize>,
        image: &mut [f32],
    ) = col2im_portable
}

#[inline(always)]
fn col2im_portable(
    columns: &[f32],
    rows: &Axis,
    cols: &Axis,
    channels: usize,
    band: Range<usize>,
    image: &mut [f32],
) {
    let run = cols.window * channels;
    let patch = rows.window * run;
    let line_len = cols.input * channels;
    let first_row = band.start;
    for oy in band {
        for ox in 0..cols.output {
            let src = &columns[((oy - first_row) * cols.output + ox) * patch..][..patch];
            let inside = (cols.dilation == 1)
                .then(|| cols.source(ox, 0))
                .flatten()
                .filter(|_| cols.source(ox, cols.window - 1).is_some());
            for ky in 0..rows.window {
                let Some(iy) = rows.source(oy, ky) else {
                    continue;
                };
                let line = &mut image[iy * line_len..][..line_len];
                let s = &src[ky * run..][..run];
                match inside {
                    Some(first) => add_run(&mut line[first * channels..][..run], s),
                    None => {
                        for kx in 0..cols.window {
                            if let Some(ix) = cols.source(ox, kx) {
                                add_run(
                                    &mut line[ix * channels..][..channels],
                                    &s[kx * channels..][..channels],
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Copies `src` into `dst` (same length). Short runs are the common case (a 3-wide kernel row of
/// 3, 16 or 32 channels): fixed-size copies compile to a few vector moves instead of a memcpy call.
#[inline(always)]
fn copy_run(dst: &mut [f32], src: &[f32]) {
    #[inline(always)]
    fn fixed<const N: usize>(dst: &mut [f32], src: &[f32]) {
        let d: &mut [f32; N] = dst.try_into().expect("run length");
        *d = src.try_into().expect("run length");
    }
    match dst.len() {
        9 => fixed::<9>(dst, src),
        48 => fixed::<48>(dst, src),
        96 => fixed::<96>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}

/// Adds `src` onto `dst` (same length), with the same fixed-size fast paths as [`copy_run`].
#[inline(always)]
fn add_run(dst: &mut [f32], src: &[f32]) {
    #[inline(always)]
    fn fixed<const N: usize>(dst: &mut [f32], src: &[f32]) {
        let d: &mut [f32; N] = dst.try_into().expect("run length");
        let s: &[f32; N] = src.try_into().expect("run length");
        for i in 0..N {
            d[i] += s[i];
        }
    }
    match dst.len() {
        9 => fixed::<9>(dst, src),
        48 => fixed::<48>(dst, src),
        96 => fixed::<96>(dst, src),
        _ => dst.iter_mut().zip(src).for_each(|(d, s)| *d += s),
    }
}
