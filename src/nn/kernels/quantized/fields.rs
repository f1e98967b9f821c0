//! The rows the quantized product multiplies, made from stored values: each value less its zero
//! point, widened to 16 bits, zero where the window hangs over the image's edge (the zero
//! point's own value) and after the depth up to the row's padded length.

use super::Quantized;
use crate::nn::layers::window::Axis;
use std::ops::Range;

/// Rows `rows` of `x` (rows of `depth` values), each written as `stride` values of `fields`.
pub(crate) fn widened_rows<T: Quantized>(
    x: &[T],
    depth: usize,
    rows: Range<usize>,
    offset: i32,
    stride: usize,
    fields: &mut [i16],
) {
    for (r, out) in rows.zip(fields.chunks_exact_mut(stride)) {
        widen(&x[r * depth..][..depth], offset, &mut out[..depth]);
        out[depth..].fill(0);
    }
}

/// The receptive field of each output pixel in `pixels` (row-major indices) of one image.
#[allow(clippy::too_many_arguments)]
pub(crate) fn receptive_fields<T: Quantized>(
    image: &[T],
    rows: &Axis,
    cols: &Axis,
    channels: usize,
    pixels: Range<usize>,
    offset: i32,
    stride: usize,
    fields: &mut [i16],
) {
    let line_len = cols.input * channels;
    let depth = rows.window * cols.window * channels;
    for (out, pixel) in fields.chunks_exact_mut(stride).zip(pixels) {
        let (oy, ox) = (pixel / cols.output, pixel % cols.output);
        for ky in 0..rows.window {
            let run = &mut out[ky * cols.window * channels..][..cols.window * channels];
            let Some(iy) = rows.source(oy, ky) else {
                run.fill(0);
                continue;
            };
            let line = &image[iy * line_len..][..line_len];
            for (kx, tap) in run.chunks_exact_mut(channels).enumerate() {
                match cols.source(ox, kx) {
                    Some(ix) => widen(&line[ix * channels..][..channels], offset, tap),
                    None => tap.fill(0),
                }
            }
        }
        out[depth..].fill(0);
    }
}

#[inline(always)]
fn widen<T: Quantized>(x: &[T], offset: i32, out: &mut [i16]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = (v.get() + offset) as i16;
    }
}

/// [`widened_rows`] as unsigned bytes for the VNNI product: each stored value plus `shift`
/// (128 for int8, 0 for uint8), zeros after the depth.
pub(crate) fn byte_rows<T: Quantized>(
    x: &[T],
    depth: usize,
    rows: Range<usize>,
    shift: i32,
    stride: usize,
    fields: &mut [u8],
) {
    for (r, out) in rows.zip(fields.chunks_exact_mut(stride)) {
        to_bytes(&x[r * depth..][..depth], shift, &mut out[..depth]);
        out[depth..].fill(0);
    }
}

/// [`receptive_fields`] as unsigned bytes: each stored value plus `shift`, `pad` (the zero
/// point plus `shift`) where the window hangs over the edge, zeros after the depth.
#[allow(clippy::too_many_arguments)]
pub(crate) fn byte_fields<T: Quantized>(
    image: &[T],
    rows: &Axis,
    cols: &Axis,
    channels: usize,
    pixels: Range<usize>,
    (shift, pad): (i32, u8),
    stride: usize,
    fields: &mut [u8],
) {
    let line_len = cols.input * channels;
    let depth = rows.window * cols.window * channels;
    for (out, pixel) in fields.chunks_exact_mut(stride).zip(pixels) {
        let (oy, ox) = (pixel / cols.output, pixel % cols.output);
        for ky in 0..rows.window {
            let run = &mut out[ky * cols.window * channels..][..cols.window * channels];
            let Some(iy) = rows.source(oy, ky) else {
                run.fill(pad);
                continue;
            };
            let line = &image[iy * line_len..][..line_len];
            for (kx, tap) in run.chunks_exact_mut(channels).enumerate() {
                match cols.source(ox, kx) {
                    Some(ix) => to_bytes(&line[ix * channels..][..channels], shift, tap),
                    None => tap.fill(pad),
                }
            }
        }
        out[depth..].fill(0);
    }
}

#[inline(always)]
fn to_bytes<T: Quantized>(x: &[T], shift: i32, out: &mut [u8]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = (v.get() + shift) as u8;
    }
}
