//! From component planes to pixels: libjpeg's "fancy" (triangle-filter) upsampling of the
//! subsampled components and its colour conversions, with TensorFlow's own CMYK-to-RGB step.
//! Every formula is libjpeg-turbo's integer arithmetic, so the pixels are TensorFlow's.

use super::markers::{Component, Frame};
use crate::nn::simd::compiled_per_level;

/// The colour space of the coded components, guessed as libjpeg guesses it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum ColorSpace {
    Gray,
    YCbCr,
    Rgb,
    Cmyk,
    Ycck,
}

impl ColorSpace {
    /// libjpeg's `default_decompress_parms`: JFIF means YCbCr; an Adobe marker's transform
    /// flag decides; otherwise component ids 'R','G','B' mean RGB and anything else YCbCr, and
    /// four components are CMYK.
    pub(super) fn guess(frame: &Frame, jfif: bool, adobe: Option<u8>) -> Self {
        match frame.components.len() {
            1 => ColorSpace::Gray,
            3 if jfif => ColorSpace::YCbCr,
            3 => match adobe {
                Some(0) => ColorSpace::Rgb,
                Some(_) => ColorSpace::YCbCr,
                None => {
                    let ids: Vec<u8> = frame.components.iter().map(|c| c.id).collect();
                    if ids == b"RGB" {
                        ColorSpace::Rgb
                    } else {
                        ColorSpace::YCbCr
                    }
                }
            },
            _ => match adobe {
                Some(0) | None => ColorSpace::Cmyk,
                Some(_) => ColorSpace::Ycck,
            },
        }
    }

    /// The components the output needs: a gray image from YCbCr needs only luma.
    pub(super) fn needed(self, channels: usize, count: usize) -> Vec<bool> {
        (0..count)
            .map(|i| i == 0 || !(channels == 1 && self == ColorSpace::YCbCr))
            .collect()
    }
}

/// One component's samples after the inverse DCT, `stride` bytes per row.
pub(super) struct Plane {
    pub samples: Vec<u8>,
    pub stride: usize,
}

/// How a component reaches full resolution (jdsample.c's choice of method).
#[derive(Clone, Copy)]
enum Upsampling {
    None,
    /// Triangle filter across: 3/4 of the nearer sample, 1/4 of the farther.
    FancyH2V1,
    /// Triangle filter down.
    FancyH1V2,
    /// Triangle filter both ways: 9/16, 3/16, 3/16, 1/16.
    FancyH2V2,
    /// Each sample repeated `h` times across and `v` times down.
    Replicate {
        h: usize,
        v: usize,
    },
}

impl Upsampling {
    fn for_component(c: &Component, frame: &Frame) -> Self {
        let (h, v) = (frame.h_max / c.h, frame.v_max / c.v);
        match (h, v) {
            (1, 1) => Upsampling::None,
            (2, 1) if c.width > 2 => Upsampling::FancyH2V1,
            (1, 2) => Upsampling::FancyH1V2,
            (2, 2) if c.width > 2 => Upsampling::FancyH2V2,
            _ => Upsampling::Replicate { h, v },
        }
    }
}

/// Writes output row `y` of component `c` at full resolution into `out` (at least the image's
/// width), reading the plane with edges repeated as libjpeg's context rows repeat them.
fn upsample_row(
    c: &Component,
    plane: &Plane,
    method: Upsampling,
    y: usize,
    out: &mut [u8],
    sums: &mut Vec<u16>,
) {
    let row = |r: usize| &plane.samples[r * plane.stride..r * plane.stride + c.width];
    let last_row = c.height - 1;
    match method {
        Upsampling::None => out[..c.width].copy_from_slice(row(y)),
        Upsampling::Replicate { h, v } => {
            for (chunk, &s) in out.chunks_mut(h).zip(row((y / v).min(last_row))) {
                chunk.fill(s);
            }
        }
        Upsampling::FancyH2V1 => fancy_h2v1(row(y.min(last_row)), out),
        Upsampling::FancyH1V2 => {
            let (near, far, bias) = vertical_pair(y, last_row);
            fancy_h1v2(row(near), row(far), bias, out);
        }
        Upsampling::FancyH2V2 => {
            let (near, far, _) = vertical_pair(y, last_row);
            sums.resize(c.width, 0);
            fancy_h2v2(row(near), row(far), sums, out);
        }
    }
}

compiled_per_level! {
    /// jdsample.c's h2v1 triangle filter: (3·nearer + farther + 1 or 2) / 4, ends kept.
    fn fancy_h2v1(src: &[u8], out: &mut [u8]) = fancy_h2v1_portable
}

#[inline(always)]
fn fancy_h2v1_portable(src: &[u8], out: &mut [u8]) {
    let w = src.len();
    out[0] = src[0];
    for ((pair, &left), &right) in out[1..2 * w - 1]
        .chunks_exact_mut(2)
        .zip(&src[..w - 1])
        .zip(&src[1..])
    {
        let (left, right) = (left as u16, right as u16);
        pair[0] = ((3 * left + right + 2) >> 2) as u8;
        pair[1] = ((3 * right + left + 1) >> 2) as u8;
    }
    out[2 * w - 1] = src[w - 1];
}

compiled_per_level! {
    /// jdsample.c's h1v2 triangle filter: (3·nearer row + farther row + bias) / 4.
    fn fancy_h1v2(near: &[u8], far: &[u8], bias: u16, out: &mut [u8]) = fancy_h1v2_portable
}

#[inline(always)]
fn fancy_h1v2_portable(near: &[u8], far: &[u8], bias: u16, out: &mut [u8]) {
    for ((o, &n), &f) in out.iter_mut().zip(near).zip(far) {
        *o = ((3 * n as u16 + f as u16 + bias) >> 2) as u8;
    }
}

compiled_per_level! {
    /// jdsample.c's h2v2 triangle filter: column sums 3·nearer + farther, then across
    /// (3·nearer sum + farther sum + 8 or 7) / 16, the ends from one sum.
    fn fancy_h2v2(near: &[u8], far: &[u8], sums: &mut [u16], out: &mut [u8]) = fancy_h2v2_portable
}

#[inline(always)]
fn fancy_h2v2_portable(near: &[u8], far: &[u8], sums: &mut [u16], out: &mut [u8]) {
    let w = sums.len();
    for ((s, &n), &f) in sums.iter_mut().zip(near).zip(far) {
        *s = 3 * n as u16 + f as u16;
    }
    out[0] = ((4 * sums[0] + 8) >> 4) as u8;
    for ((pair, &left), &right) in out[1..2 * w - 1]
        .chunks_exact_mut(2)
        .zip(&sums[..w - 1])
        .zip(&sums[1..])
    {
        pair[0] = ((3 * left + right + 7) >> 4) as u8;
        pair[1] = ((3 * right + left + 8) >> 4) as u8;
    }
    out[2 * w - 1] = ((4 * sums[w - 1] + 7) >> 4) as u8;
}

/// For vertical triangle filtering of output row `y` from a plane of half the rows: the
/// nearer row, the farther one (above for even rows, below for odd, clamped at the edges), and
/// the rounding bias libjpeg's h1v2 filter uses for each.
fn vertical_pair(y: usize, last_row: usize) -> (usize, usize, u16) {
    let near = (y / 2).min(last_row);
    if y.is_multiple_of(2) {
        (near, near.saturating_sub(1), 1)
    } else {
        (near, (near + 1).min(last_row), 2)
    }
}

/// jdcolor.c's fixed-point YCbCr → RGB: 16 fraction bits, each term rounded as its tables are.
#[inline(always)]
fn ycc_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let (y, cb, cr) = (y as i32, cb as i32 - 128, cr as i32 - 128);
    let r = y + ((91881 * cr + 32768) >> 16);
    let g = y + ((-22554 * cb + 32768 - 46802 * cr) >> 16);
    let b = y + ((116130 * cb + 32768) >> 16);
    [r, g, b].map(|v| v.clamp(0, 255) as u8)
}

compiled_per_level! {
    /// A row of YCbCr samples to interleaved RGB.
    fn ycc_row_to_rgb(y: &[u8], cb: &[u8], cr: &[u8], out: &mut [u8]) = ycc_row_to_rgb_portable
}

#[inline(always)]
fn ycc_row_to_rgb_portable(y: &[u8], cb: &[u8], cr: &[u8], out: &mut [u8]) {
    // Sixteen pixels at a time packed as R | G << 8 | B << 16, which vectorises, then stored
    // four bytes per pixel, each store's fourth byte overwritten by the next pixel: per-pixel
    // 3-byte stores stay scalar and slow. The last pixels, whose fourth byte would fall past
    // the row, go one by one.
    const CHUNK: usize = 16;
    let width = y.len();
    let chunks = if width == 0 { 0 } else { (width - 1) / CHUNK };
    for c in 0..chunks {
        let at = c * CHUNK;
        let (y, cb, cr): (&[u8; CHUNK], &[u8; CHUNK], &[u8; CHUNK]) = (
            y[at..at + CHUNK].try_into().expect("a chunk"),
            cb[at..at + CHUNK].try_into().expect("a chunk"),
            cr[at..at + CHUNK].try_into().expect("a chunk"),
        );
        let mut packed = [0u32; CHUNK];
        for i in 0..CHUNK {
            let [r, g, b] = ycc_to_rgb(y[i], cb[i], cr[i]);
            packed[i] = r as u32 | (g as u32) << 8 | (b as u32) << 16;
        }
        let dst: &mut [u8; 3 * CHUNK + 1] = (&mut out[3 * at..3 * at + 3 * CHUNK + 1])
            .try_into()
            .expect("a chunk and one byte");
        for (i, p) in packed.iter().enumerate() {
            dst[3 * i..3 * i + 4].copy_from_slice(&p.to_le_bytes());
        }
    }
    let done = chunks * CHUNK;
    for (((o, &y), &cb), &cr) in out[3 * done..]
        .chunks_exact_mut(3)
        .zip(&y[done..])
        .zip(&cb[done..])
        .zip(&cr[done..])
    {
        o.copy_from_slice(&ycc_to_rgb(y, cb, cr));
    }
}

/// jdcolor.c's RGB → gray: 0.299 R + 0.587 G + 0.114 B in 16-bit fixed point.
#[inline(always)]
fn rgb_to_gray([r, g, b]: [u8; 3]) -> u8 {
    ((19595 * r as u32 + 38470 * g as u32 + 7471 * b as u32 + 32768) >> 16) as u8
}

/// TensorFlow's CMYK → RGB (jpeg_mem.cc): Adobe files store inverted CMYK, others plain.
#[inline(always)]
fn cmyk_to_rgb([c, m, y, k]: [u8; 4], adobe: bool) -> [u8; 3] {
    let k = k as u32;
    [c, m, y].map(|v| {
        let v = v as u32;
        (if adobe {
            k * v / 255
        } else {
            (255 - k) * (255 - v) / 255
        }) as u8
    })
}

/// Everything the conversion needs besides the planes.
pub(super) struct Conversion {
    pub space: ColorSpace,
    pub channels: usize,
    pub adobe: bool,
}

/// The image's pixels in `conv.channels` channels from its component planes.
pub(super) fn to_pixels(frame: &Frame, planes: &[Plane], conv: &Conversion) -> Vec<u8> {
    let (width, channels) = (frame.width, conv.channels);
    let needed = conv.space.needed(channels, frame.components.len());
    let methods: Vec<Upsampling> = frame
        .components
        .iter()
        .map(|c| Upsampling::for_component(c, frame))
        .collect();
    let padded = frame.mcus_wide * frame.h_max * 8;
    let mut rows: Vec<Vec<u8>> = vec![vec![0u8; padded]; frame.components.len()];
    let mut sums = Vec::new();
    let mut pixels = vec![0u8; width * frame.height * channels];
    for (y, out) in pixels.chunks_exact_mut(width * channels).enumerate() {
        for (i, c) in frame.components.iter().enumerate() {
            if needed[i] {
                upsample_row(c, &planes[i], methods[i], y, &mut rows[i], &mut sums);
            }
        }
        convert_row(&rows, width, conv, out);
    }
    pixels
}

fn convert_row(rows: &[Vec<u8>], width: usize, conv: &Conversion, out: &mut [u8]) {
    let channels = conv.channels;
    let pixel = |x: usize| -> [u8; 3] {
        match conv.space {
            ColorSpace::Gray => [rows[0][x]; 3],
            ColorSpace::YCbCr => ycc_to_rgb(rows[0][x], rows[1][x], rows[2][x]),
            ColorSpace::Rgb => [rows[0][x], rows[1][x], rows[2][x]],
            ColorSpace::Cmyk => {
                cmyk_to_rgb([rows[0][x], rows[1][x], rows[2][x], rows[3][x]], conv.adobe)
            }
            ColorSpace::Ycck => {
                let [c, m, y] = ycc_to_rgb(rows[0][x], rows[1][x], rows[2][x]).map(|v| 255 - v);
                cmyk_to_rgb([c, m, y, rows[3][x]], conv.adobe)
            }
        }
    };
    match (channels, conv.space) {
        (1, ColorSpace::Gray | ColorSpace::YCbCr) => out.copy_from_slice(&rows[0][..width]),
        (1, _) => {
            for (x, o) in out.iter_mut().enumerate() {
                *o = rgb_to_gray(pixel(x));
            }
        }
        (3, ColorSpace::YCbCr) => {
            ycc_row_to_rgb(&rows[0][..width], &rows[1][..width], &rows[2][..width], out)
        }
        _ => {
            for (x, o) in out.chunks_exact_mut(channels).enumerate() {
                o[..3].copy_from_slice(&pixel(x));
                if channels == 4 {
                    o[3] = 255;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// jdcolor.c's tables, built as libjpeg builds them, against the inline arithmetic.
    #[test]
    fn colour_conversion_matches_libjpeg_tables() {
        let fix = |x: f64| (x * 65536.0 + 0.5) as i64;
        for cb in 0..=255u8 {
            for cr in (0..=255u8).step_by(3) {
                for y in (0..=255u8).step_by(17) {
                    let (xb, xr) = (cb as i64 - 128, cr as i64 - 128);
                    let r = y as i64 + ((fix(1.402) * xr + 32768) >> 16);
                    let b = y as i64 + ((fix(1.772) * xb + 32768) >> 16);
                    let g = y as i64 + ((-fix(0.34414) * xb + 32768 - fix(0.71414) * xr) >> 16);
                    let expected = [r, g, b].map(|v| v.clamp(0, 255) as u8);
                    assert_eq!(ycc_to_rgb(y, cb, cr), expected);
                }
            }
        }
        assert_eq!(fix(0.299) + fix(0.587) + fix(0.114), 65536);
        assert_eq!(rgb_to_gray([255, 255, 255]), 255);
    }

    #[test]
    fn tensorflow_cmyk_formulas() {
        assert_eq!(cmyk_to_rgb([255, 0, 128, 255], true), [255, 0, 128]);
        assert_eq!(cmyk_to_rgb([0, 255, 127, 0], false), [255, 0, 128]);
    }

    fn component(width: usize, height: usize, h: usize, v: usize) -> Component {
        Component {
            id: 1,
            h,
            v,
            quant_slot: 0,
            width,
            height,
            blocks_wide: width.div_ceil(8),
            blocks_high: height.div_ceil(8),
            stride_blocks: width.div_ceil(8),
            rows_blocks: height.div_ceil(8),
        }
    }

    #[test]
    fn h2v1_triangle_filter_keeps_the_edges() {
        let c = component(4, 1, 1, 1);
        let plane = Plane {
            samples: vec![0, 100, 200, 40],
            stride: 4,
        };
        let mut out = [0u8; 8];
        upsample_row(
            &c,
            &plane,
            Upsampling::FancyH2V1,
            0,
            &mut out,
            &mut Vec::new(),
        );
        // (3·in + neighbour + 1 or 2) / 4, first and last samples unchanged.
        assert_eq!(out, [0, 25, 75, 125, 175, 160, 80, 40]);
    }

    #[test]
    fn h2v2_triangle_filter_weights_9_3_3_1() {
        let c = component(3, 2, 1, 1);
        let plane = Plane {
            samples: vec![0, 160, 0, 160, 0, 160],
            stride: 3,
        };
        let mut out = [0u8; 6];
        // Output row 1: nearer row 0, farther row 1.
        upsample_row(
            &c,
            &plane,
            Upsampling::FancyH2V2,
            1,
            &mut out,
            &mut Vec::new(),
        );
        let sums = [160i32, 480, 160]; // 3·row0 + row1
        let expected = [
            (4 * sums[0] + 8) >> 4,
            (3 * sums[0] + sums[1] + 7) >> 4,
            (3 * sums[1] + sums[0] + 8) >> 4,
            (3 * sums[1] + sums[2] + 7) >> 4,
            (3 * sums[2] + sums[1] + 8) >> 4,
            (4 * sums[2] + 7) >> 4,
        ];
        assert_eq!(out.map(|v| v as i32), expected);
    }
}
