//! An image padded and shifted to unsigned bytes once, so that the VNNI product reads each
//! output pixel's window straight from it, a contiguous run per kernel row, instead of copying
//! receptive fields: the direct convolution XNNPACK's indirection buffers also aim at.

use super::Quantized;
use crate::nn::layers::window::Axis;

/// A padded image and how output pixels' windows step through it.
pub(crate) struct PaddedImage {
    pub bytes: Vec<u8>,
    /// Bytes from one padded row to the next.
    pub row_len: usize,
    /// Bytes between the windows of neighbouring output pixels of a row.
    pub pixel_step: usize,
    /// Bytes between the windows of neighbouring output rows.
    pub line_step: usize,
    /// Rows and columns of the output.
    pub out_rows: usize,
    pub out_cols: usize,
    /// The window's rows; each is one run of `window columns × channels` bytes.
    pub kernel_rows: usize,
}

impl PaddedImage {
    /// `image` (rows × cols × `channels`) with `pad` around it and each channel padded to
    /// `channels_to` with `pad` too, every stored value plus `shift` as an unsigned byte.
    pub fn new<T: Quantized>(
        image: &[T],
        rows: &Axis,
        cols: &Axis,
        channels: usize,
        channels_to: usize,
        (shift, pad): (i32, u8),
    ) -> Self {
        let padded_cols = cols.pad_before + cols.input + trailing(cols);
        let padded_rows = rows.pad_before + rows.input + trailing(rows);
        let row_len = padded_cols * channels_to;
        let mut bytes = vec![pad; padded_rows * row_len];
        let lines = image.chunks_exact(cols.input * channels);
        for (y, line) in lines.enumerate().take(rows.input) {
            let start = (rows.pad_before + y) * row_len + cols.pad_before * channels_to;
            let out = &mut bytes[start..][..cols.input * channels_to];
            convert_line(
                line,
                channels,
                out,
                channels_to,
                |v| (v.get() + shift) as u8,
                pad,
            );
        }
        PaddedImage {
            bytes,
            row_len,
            pixel_step: cols.stride * channels_to,
            line_step: rows.stride * row_len,
            out_rows: rows.output,
            out_cols: cols.output,
            kernel_rows: rows.window,
        }
    }
}

/// One image line into padded pixels: whole lines at once where the channels stay, four-byte
/// pixels for RGB, value by value otherwise.
fn convert_line<T: Copy>(
    line: &[T],
    channels: usize,
    out: &mut [u8],
    channels_to: usize,
    byte: impl Fn(T) -> u8,
    pad: u8,
) {
    match (channels, channels_to) {
        (c, to) if c == to => {
            for (o, &v) in out.iter_mut().zip(line) {
                *o = byte(v);
            }
        }
        (3, 4) => {
            for (pixel, rgb) in out.chunks_exact_mut(4).zip(line.chunks_exact(3)) {
                pixel.copy_from_slice(&[byte(rgb[0]), byte(rgb[1]), byte(rgb[2]), pad]);
            }
        }
        _ => {
            let pixels = out
                .chunks_exact_mut(channels_to)
                .zip(line.chunks_exact(channels));
            for (pixel, values) in pixels {
                for (o, &v) in pixel.iter_mut().zip(values) {
                    *o = byte(v);
                }
            }
        }
    }
}

/// Padding after the input that the last window reaches (none when it ends inside).
fn trailing(axis: &Axis) -> usize {
    let reach = (axis.output - 1) * axis.stride + (axis.window - 1) * axis.dilation + 1;
    (reach).saturating_sub(axis.pad_before + axis.input)
}
