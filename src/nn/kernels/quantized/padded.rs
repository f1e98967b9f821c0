//! An image padded and shifted to unsigned bytes once, so that the VNNI product reads each
//! output pixel's window straight from it, a contiguous run per kernel row, instead of copying
//! receptive fields: the direct convolution XNNPACK's indirection buffers also aim at.

use super::Quantized;
use crate::nn::layers::window::Axis;
use crate::nn::thread_pool::for_each_chunk;
use std::cell::RefCell;

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

thread_local! {
    /// The last image's bytes, kept for the next: a fresh allocation of this size is zeroed
    /// page by page on every run.
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Padded images below this many bytes are made by one thread.
const PARALLEL_BYTES: usize = 1 << 15;

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
        let mut bytes = BUFFER.with_borrow_mut(std::mem::take);
        // Every byte is written below: the fill only touches a longer buffer's new end.
        bytes.resize(padded_rows * row_len, pad);
        let inside = rows.pad_before..rows.pad_before + rows.input;
        let (before, line_len) = (cols.pad_before * channels_to, cols.input * channels_to);
        let chunk = match bytes.len() < PARALLEL_BYTES {
            true => bytes.len(),
            false => row_len,
        };
        for_each_chunk(&mut bytes, chunk.max(1), |i, padded| {
            for (r, padded) in padded.chunks_exact_mut(row_len).enumerate() {
                let y = i * chunk / row_len + r;
                if !inside.contains(&y) {
                    padded.fill(pad);
                    continue;
                }
                let line = &image[(y - rows.pad_before) * cols.input * channels..];
                let (left, rest) = padded.split_at_mut(before);
                let (out, right) = rest.split_at_mut(line_len);
                left.fill(pad);
                right.fill(pad);
                let line = &line[..cols.input * channels];
                convert_line(
                    line,
                    channels,
                    out,
                    channels_to,
                    |v| (v.get() + shift) as u8,
                    pad,
                );
            }
        });
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

    /// Where each kernel row starts, relative to a window's first byte.
    pub fn kernel_row_starts(&self) -> Vec<usize> {
        (0..self.kernel_rows).map(|ky| ky * self.row_len).collect()
    }
}

impl Drop for PaddedImage {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.bytes);
        BUFFER.with_borrow_mut(|kept| {
            if bytes.capacity() > kept.capacity() {
                *kept = bytes;
            }
        });
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
                let (stored, extra) = pixel.split_at_mut(channels);
                for (o, &v) in stored.iter_mut().zip(values) {
                    *o = byte(v);
                }
                extra.fill(pad);
            }
        }
    }
}

/// Padding after the input that the last window reaches (none when it ends inside).
fn trailing(axis: &Axis) -> usize {
    let reach = (axis.output - 1) * axis.stride + (axis.window - 1) * axis.dilation + 1;
    (reach).saturating_sub(axis.pad_before + axis.input)
}
