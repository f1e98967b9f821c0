//! The rows the quantized product multiplies, made from stored values: 16-bit values less the
//! zero point for the 16-bit product, or unsigned bytes (the value plus 128 for int8) for the
//! VNNI one. Where the window hangs over the image's edge a row holds the zero point's own
//! value, and after the depth up to the row's padded length zeros.

use super::Quantized;
use crate::nn::layers::window::Axis;
use std::ops::Range;

/// Rows `rows` of `x` (rows of `depth` values), each written as `stride` values of `fields`:
/// each stored value less its zero point (plus `offset`), widened to 16 bits.
pub(crate) fn widened_rows<T: Quantized>(
    x: &[T],
    depth: usize,
    rows: Range<usize>,
    offset: i32,
    stride: usize,
    fields: &mut [i16],
) {
    rows_of(x, depth, rows, stride, fields, |v| {
        (v.get() + offset) as i16
    })
}

/// [`widened_rows`] as unsigned bytes: each stored value plus `shift` (128 for int8, 0 for
/// uint8).
pub(crate) fn byte_rows<T: Quantized>(
    x: &[T],
    depth: usize,
    rows: Range<usize>,
    shift: i32,
    stride: usize,
    fields: &mut [u8],
) {
    rows_of(x, depth, rows, stride, fields, |v| (v.get() + shift) as u8)
}

/// The receptive field of each output pixel in `pixels` (row-major indices) of one image, as
/// [`widened_rows`] makes rows: 0 (the zero point less itself) outside the image.
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
    let window = Window {
        rows,
        cols,
        channels,
    };
    window.fields(image, pixels, 0, stride, fields, |v| {
        (v.get() + offset) as i16
    })
}

/// [`receptive_fields`] as [`byte_rows`] makes rows: `pad` (the zero point plus `shift`)
/// outside the image.
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
    let window = Window {
        rows,
        cols,
        channels,
    };
    window.fields(image, pixels, pad, stride, fields, |v| {
        (v.get() + shift) as u8
    })
}

fn rows_of<T: Copy, R: Copy + Default>(
    x: &[T],
    depth: usize,
    rows: Range<usize>,
    stride: usize,
    fields: &mut [R],
    convert: impl Fn(T) -> R,
) {
    if stride == depth {
        // Unpadded rows are one run in both: one long loop, not one per short row.
        let values = &x[rows.start * depth..rows.end * depth];
        for (o, &v) in fields.iter_mut().zip(values) {
            *o = convert(v);
        }
        return;
    }
    for (r, out) in rows.zip(fields.chunks_exact_mut(stride)) {
        for (o, &v) in out.iter_mut().zip(&x[r * depth..][..depth]) {
            *o = convert(v);
        }
        out[depth..].fill(R::default());
    }
}

struct Window<'a> {
    rows: &'a Axis,
    cols: &'a Axis,
    channels: usize,
}

impl Window<'_> {
    /// Each row of `fields` (`stride` values) is one pixel's receptive field, taps in
    /// (row, column, channel) order, written strictly in order: a conversion may run past its
    /// run into values written after it.
    fn fields<T: Copy, R: Copy + Default>(
        &self,
        image: &[T],
        pixels: Range<usize>,
        pad: R,
        stride: usize,
        fields: &mut [R],
        convert: impl Fn(T) -> R,
    ) {
        let (rows, cols, channels) = (self.rows, self.cols, self.channels);
        let line_len = cols.input * channels;
        let run_len = cols.window * channels;
        let depth = rows.window * run_len;
        let count = pixels.len().min(fields.len() / stride.max(1));
        for (r, pixel) in pixels.take(count).enumerate() {
            let base = r * stride;
            let (oy, ox) = (pixel / cols.output, pixel % cols.output);
            // With undilated taps all inside the line, each row of taps is one contiguous
            // run of the line, converted in whole chunks rather than tap by tap.
            let inside = match (cols.dilation, cols.source(ox, 0)) {
                (1, Some(first)) => cols.source(ox, cols.window - 1).map(|_| first),
                _ => None,
            };
            for ky in 0..rows.window {
                let at = base + ky * run_len;
                let Some(iy) = rows.source(oy, ky) else {
                    fields[at..][..run_len].fill(pad);
                    continue;
                };
                let line = &image[iy * line_len..];
                if let Some(first) = inside {
                    convert_run(
                        &line[first * channels..],
                        &mut fields[at..],
                        run_len,
                        &convert,
                    );
                    continue;
                }
                let run = &mut fields[at..][..run_len];
                for (kx, tap) in run.chunks_exact_mut(channels).enumerate() {
                    match cols.source(ox, kx) {
                        Some(ix) => {
                            let values = &line[ix * channels..][..channels];
                            for (o, &v) in tap.iter_mut().zip(values) {
                                *o = convert(v);
                            }
                        }
                        None => tap.fill(pad),
                    }
                }
            }
            fields[base + depth..base + stride].fill(R::default());
        }
    }
}

/// Values converted at once: one vector's worth of bytes.
const CHUNK: usize = 16;

/// The first `len` values of `src` converted into `dst` in whole chunks (the last one
/// overlapping the one before). A run shorter than a chunk is converted as a whole chunk when
/// both sides hold one, writing past `len` into values the caller writes later.
#[inline(always)]
fn convert_run<T: Copy, R: Copy>(src: &[T], dst: &mut [R], len: usize, convert: &impl Fn(T) -> R) {
    if len >= CHUNK {
        let mut at = 0;
        while at + CHUNK < len {
            convert_chunk(&src[at..], &mut dst[at..], convert);
            at += CHUNK;
        }
        convert_chunk(&src[len - CHUNK..], &mut dst[len - CHUNK..], convert);
    } else if src.len() >= CHUNK && dst.len() >= CHUNK {
        convert_chunk(src, dst, convert);
    } else {
        for (o, &v) in dst[..len].iter_mut().zip(&src[..len]) {
            *o = convert(v);
        }
    }
}

#[inline(always)]
fn convert_chunk<T: Copy, R: Copy>(src: &[T], dst: &mut [R], convert: &impl Fn(T) -> R) {
    let src: &[T; CHUNK] = src[..CHUNK].try_into().expect("a whole chunk");
    let dst: &mut [R; CHUNK] = (&mut dst[..CHUNK]).try_into().expect("a whole chunk");
    for (o, &v) in dst.iter_mut().zip(src) {
        *o = convert(v);
    }
}
