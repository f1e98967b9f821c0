//! TensorFlow 2's `tf.image.resize` (no antialiasing, half-pixel centres) for bilinear and
//! nearest-neighbour, computed with the same floating-point steps so the values agree with
//! TensorFlow's to the last bit or so, plus Keras's `crop_to_aspect_ratio` centre crop.

use super::image_u8::ImageU8;
use crate::nn::simd::compiled_per_level;
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    #[default]
    Bilinear,
    Nearest,
}

impl std::str::FromStr for Interpolation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bilinear" => Ok(Interpolation::Bilinear),
            "nearest" => Ok(Interpolation::Nearest),
            _ => Err(Error::InvalidArgument(format!(
                "interpolation {s:?} is not supported: use \"bilinear\" (Keras's default) or \"nearest\""
            ))),
        }
    }
}

/// A rectangle of the source image to resample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

impl Window {
    pub fn whole(image: &ImageU8) -> Self {
        Window {
            x: 0,
            y: 0,
            width: image.width,
            height: image.height,
        }
    }

    /// Keras's `smart_resize` crop: the largest centred window with the target's aspect ratio.
    pub fn centre_crop(width: usize, height: usize, target_h: usize, target_w: usize) -> Self {
        let crop_h = ((width * target_h) as f32 / target_w as f32) as usize;
        let crop_w = ((height * target_w) as f32 / target_h as f32) as usize;
        let crop_h = crop_h.clamp(1, height);
        let crop_w = crop_w.clamp(1, width);
        Window {
            y: ((height - crop_h) as f32 / 2.0) as usize,
            x: ((width - crop_w) as f32 / 2.0) as usize,
            width: crop_w,
            height: crop_h,
        }
    }
}

/// Where output sample `i` reads from: `lo` and `hi` blended by `lerp` (nearest uses `lo` only).
#[derive(Debug, Clone, Copy)]
struct Tap {
    lo: usize,
    hi: usize,
    lerp: f32,
}

fn taps(in_size: usize, out_size: usize, interpolation: Interpolation) -> Vec<Tap> {
    let scale = in_size as f32 / out_size as f32;
    let last = in_size as i64 - 1;
    (0..out_size)
        .map(|i| match interpolation {
            Interpolation::Bilinear => {
                let src = (i as f32 + 0.5) * scale - 0.5;
                let floor = src.floor();
                Tap {
                    lo: (floor as i64).max(0) as usize,
                    hi: (src.ceil() as i64).min(last) as usize,
                    lerp: src - floor,
                }
            }
            Interpolation::Nearest => {
                let src = (((i as f32 + 0.5) * scale).floor() as i64).clamp(0, last) as usize;
                Tap {
                    lo: src,
                    hi: src,
                    lerp: 0.0,
                }
            }
        })
        .collect()
}

/// Resamples `window` of `src` to `out_h` × `out_w`, giving TensorFlow's float values.
pub fn resize_f32(
    src: &ImageU8,
    window: Window,
    out_h: usize,
    out_w: usize,
    interpolation: Interpolation,
) -> Vec<f32> {
    let row_len = out_w * src.channels;
    let mut out = vec![0f32; out_h * row_len];
    resample(src, window, out_h, out_w, interpolation, |y, row| {
        out[y * row_len..(y + 1) * row_len].copy_from_slice(row)
    });
    out
}

/// Resamples like [`resize_f32`] and rounds to the nearest 8-bit value, the form petal caches.
pub fn resize(
    src: &ImageU8,
    window: Window,
    out_h: usize,
    out_w: usize,
    interpolation: Interpolation,
) -> ImageU8 {
    if window == Window::whole(src) && (src.height, src.width) == (out_h, out_w) {
        return src.clone();
    }
    let row_len = out_w * src.channels;
    let mut pixels = vec![0u8; out_h * row_len];
    resample(src, window, out_h, out_w, interpolation, |y, row| {
        round_to_u8(row, &mut pixels[y * row_len..(y + 1) * row_len])
    });
    ImageU8::new(out_w, out_h, src.channels, pixels)
}

/// Hands `emit` each output row's resampled values (`out_w × channels` floats). Rows are
/// blended first (contiguous, so the compiler vectorises it), then columns; TensorFlow blends
/// columns first, which differs only in float rounding (≤ 1e-4 here).
fn resample(
    src: &ImageU8,
    window: Window,
    out_h: usize,
    out_w: usize,
    interpolation: Interpolation,
    mut emit: impl FnMut(usize, &[f32]),
) {
    let c = src.channels;
    let ys = taps(window.height, out_h, interpolation);
    // Per output value (pixel × channel): the two blended-row values it mixes, and the weight.
    let xs = taps(window.width, out_w, interpolation);
    let left: Vec<u32> = xs
        .iter()
        .flat_map(|t| (0..c).map(move |ch| (t.lo * c + ch) as u32))
        .collect();
    let right: Vec<u32> = xs
        .iter()
        .flat_map(|t| (0..c).map(move |ch| (t.hi * c + ch) as u32))
        .collect();
    let weight: Vec<f32> = xs
        .iter()
        .flat_map(|t| std::iter::repeat_n(t.lerp, c))
        .collect();
    let row = |y: usize| {
        let start = ((window.y + y) * src.width + window.x) * c;
        &src.pixels[start..start + window.width * c]
    };
    let mut blended = vec![0f32; window.width * c];
    let mut out_row = vec![0f32; out_w * c];
    for (y, tap) in ys.iter().enumerate() {
        blend_rows(row(tap.lo), row(tap.hi), tap.lerp, &mut blended);
        blend_columns(&blended, &left, &right, &weight, &mut out_row);
        emit(y, &out_row);
    }
}

compiled_per_level! {
    /// Rounds half up: blends of 8-bit values stay within 0..=255, so the cast only rounds.
    fn round_to_u8(values: &[f32], out: &mut [u8]) = round_to_u8_portable
}

#[inline(always)]
fn round_to_u8_portable(values: &[f32], out: &mut [u8]) {
    // (v + 0.5) as u8, without the float-to-integer cast the compiler will not vectorise:
    // adding 2^23 to a whole number below 256 leaves it in the low bits of the float.
    for (p, &v) in out.iter_mut().zip(values) {
        *p = ((v + 0.5).floor() + 8_388_608.0).to_bits() as u8;
    }
}

compiled_per_level! {
    /// `top + (bottom − top) × lerp`, value by value.
    fn blend_rows(top: &[u8], bottom: &[u8], lerp: f32, blended: &mut [f32]) = blend_rows_portable
}

#[inline(always)]
fn blend_rows_portable(top: &[u8], bottom: &[u8], lerp: f32, blended: &mut [f32]) {
    for ((v, &t), &b) in blended.iter_mut().zip(top).zip(bottom) {
        let t = t as f32;
        *v = t + (b as f32 - t) * lerp;
    }
}

compiled_per_level! {
    /// Each output value from its two blended-row values and weight (gathers, which AVX2 and
    /// AVX-512 do in one instruction).
    fn blend_columns(blended: &[f32], left: &[u32], right: &[u32], weight: &[f32], out: &mut [f32]) = blend_columns_portable
}

#[inline(always)]
fn blend_columns_portable(
    blended: &[f32],
    left: &[u32],
    right: &[u32],
    weight: &[f32],
    out: &mut [f32],
) {
    for (((o, &l), &r), &w) in out.iter_mut().zip(left).zip(right).zip(weight) {
        let (l, r) = (blended[l as usize], blended[r as usize]);
        *o = l + (r - l) * w;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(width: usize, height: usize, pixels: Vec<u8>) -> ImageU8 {
        ImageU8::new(width, height, 1, pixels)
    }

    #[test]
    fn halving_averages_pixel_pairs() {
        // Output pixel 0 sits at source 0.5: the mean of pixels 0 and 1.
        let src = gray(4, 1, vec![0, 10, 20, 30]);
        let out = resize_f32(&src, Window::whole(&src), 1, 2, Interpolation::Bilinear);
        assert_eq!(out, [5.0, 25.0]);
    }

    #[test]
    fn doubling_uses_quarter_offsets_and_clamps_at_the_edges() {
        // Output centres map to -0.25, 0.25, 0.75, 1.25 in the source.
        let src = gray(2, 1, vec![0, 100]);
        let out = resize_f32(&src, Window::whole(&src), 1, 4, Interpolation::Bilinear);
        assert_eq!(out, [0.0, 25.0, 75.0, 100.0]);
    }

    #[test]
    fn bilinear_blends_rows_and_columns() {
        let src = gray(2, 2, vec![0, 100, 100, 200]);
        let out = resize_f32(&src, Window::whole(&src), 1, 1, Interpolation::Bilinear);
        assert_eq!(out, [100.0]);
    }

    #[test]
    fn nearest_picks_half_pixel_centres() {
        let src = gray(5, 1, vec![0, 1, 2, 3, 4]);
        let out = resize(&src, Window::whole(&src), 1, 2, Interpolation::Nearest);
        // Centres 0.5 × 2.5 = 1.25 and 1.5 × 2.5 = 3.75.
        assert_eq!(out.pixels, [1, 3]);
    }

    #[test]
    fn channels_stay_apart_and_same_size_is_identity() {
        let src = ImageU8::new(2, 1, 3, vec![10, 20, 30, 50, 60, 70]);
        let out = resize_f32(&src, Window::whole(&src), 1, 1, Interpolation::Bilinear);
        assert_eq!(out, [30.0, 40.0, 50.0]);
        assert_eq!(
            resize(&src, Window::whole(&src), 1, 2, Interpolation::Bilinear),
            src
        );
    }

    #[test]
    fn centre_crop_keeps_the_target_aspect() {
        assert_eq!(
            Window::centre_crop(400, 200, 100, 100),
            Window {
                x: 100,
                y: 0,
                width: 200,
                height: 200
            }
        );
        assert_eq!(
            Window::centre_crop(300, 301, 180, 180),
            Window {
                x: 0,
                y: 0,
                width: 300,
                height: 300
            }
        );
        let src = gray(4, 2, vec![0, 1, 2, 3, 4, 5, 6, 7]);
        let out = resize(
            &src,
            Window::centre_crop(4, 2, 2, 2),
            2,
            2,
            Interpolation::Bilinear,
        );
        assert_eq!(out.pixels, [1, 2, 5, 6]);
    }

    #[test]
    fn unknown_interpolation_is_named() {
        let err = "bicubic".parse::<Interpolation>().unwrap_err().to_string();
        assert!(err.contains("bicubic") && err.contains("bilinear"), "{err}");
    }
}

#[cfg(test)]
mod tensorflow_golden {
    use super::*;

    /// `tf.image.resize` outputs recorded by scripts/make_pixel_golden.py.
    const GOLDEN: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/resize_tf.txt"
    ));

    fn numbers<T: std::str::FromStr>(fields: &[&str]) -> Vec<T> {
        fields
            .iter()
            .map(|f| f.parse().ok().expect("golden file holds numbers"))
            .collect()
    }

    #[test]
    fn matches_tensorflow_resize() {
        let mut lines = GOLDEN.lines().filter(|l| !l.starts_with('#'));
        let input: Vec<&str> = lines.next().unwrap().split(' ').collect();
        assert_eq!(input[..3], ["input", "7", "11"]);
        let src = ImageU8::new(11, 7, 3, numbers(&input[3..]));
        let mut cases = 0;
        for line in lines {
            let fields: Vec<&str> = line.split(' ').collect();
            let interpolation: Interpolation = fields[0].parse().unwrap();
            let (h, w): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
            let expected: Vec<f32> = numbers(&fields[3..]);
            let got = resize_f32(&src, Window::whole(&src), h, w, interpolation);
            assert_eq!(got.len(), expected.len());
            let worst = got
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst <= 1e-3, "{line:.30}: max difference {worst}");
            cases += 1;
        }
        assert_eq!(cases, 10);
    }
}
