//! Turning image files into pixels the way TensorFlow's `decode_image` does: JPEGs through
//! petal's own decoder, which gives TensorFlow's exact pixels (see `jpeg`), the rest through
//! `image`. The format comes from the bytes, not the extension; GIFs give their first frame;
//! EXIF orientation is ignored; 16-bit PNGs keep their high byte; colour modes convert like
//! TensorFlow (gray ← RGB by BT.601 luma, RGB ← RGBA by dropping alpha).

use super::image_u8::ImageU8;
use crate::{Error, ImageError, ImageErrorKind, Result};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use std::io::Cursor;
use std::path::Path;

/// Channels of the decoded images, as Keras's `color_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorMode {
    Grayscale,
    #[default]
    Rgb,
    Rgba,
}

impl ColorMode {
    pub fn channels(self) -> usize {
        match self {
            ColorMode::Grayscale => 1,
            ColorMode::Rgb => 3,
            ColorMode::Rgba => 4,
        }
    }

    /// The mode that yields `channels` (1 grayscale, 4 RGBA, anything else RGB).
    pub fn from_channels(channels: usize) -> Self {
        match channels {
            1 => ColorMode::Grayscale,
            4 => ColorMode::Rgba,
            _ => ColorMode::Rgb,
        }
    }

    /// Keras's name, as `--color-mode` takes it.
    pub fn name(self) -> &'static str {
        match self {
            ColorMode::Grayscale => "grayscale",
            ColorMode::Rgb => "rgb",
            ColorMode::Rgba => "rgba",
        }
    }
}

impl std::str::FromStr for ColorMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "grayscale" => Ok(ColorMode::Grayscale),
            "rgb" => Ok(ColorMode::Rgb),
            "rgba" => Ok(ColorMode::Rgba),
            _ => Err(Error::InvalidArgument(format!(
                "color_mode must be \"grayscale\", \"rgb\" or \"rgba\", not {s:?}"
            ))),
        }
    }
}

/// Largest image petal decodes by default: 64 megapixels (a 8000 × 8000 photo). Bigger files are
/// refused before any pixel memory is allocated.
pub const DEFAULT_MAX_PIXELS: u64 = 64 * 1024 * 1024;

/// What a file's header says, read without decoding the pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
}

pub fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Png => "PNG",
        ImageFormat::Gif => "GIF",
        ImageFormat::Bmp => "BMP",
        _ => "other",
    }
}

fn bad(path: &Path, kind: ImageErrorKind) -> ImageError {
    ImageError {
        path: path.to_path_buf(),
        kind,
    }
}

fn reader_for(bytes: &[u8]) -> std::result::Result<ImageReader<Cursor<&[u8]>>, ImageErrorKind> {
    if bytes.is_empty() {
        return Err(ImageErrorKind::Empty);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageErrorKind::Unreadable(e.to_string()))?;
    match reader.format() {
        Some(ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::Gif | ImageFormat::Bmp) => {
            Ok(reader)
        }
        _ => Err(ImageErrorKind::NotAnImage),
    }
}

fn decode_error_kind(e: image::ImageError) -> ImageErrorKind {
    match e {
        image::ImageError::Unsupported(_) => ImageErrorKind::NotAnImage,
        image::ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            ImageErrorKind::Corrupt("the file ends too early".into())
        }
        other => ImageErrorKind::Corrupt(other.to_string()),
    }
}

pub(crate) fn check_size(
    width: u32,
    height: u32,
    max_pixels: u64,
) -> std::result::Result<(), ImageErrorKind> {
    let pixels = width as u64 * height as u64;
    if pixels > max_pixels {
        return Err(ImageErrorKind::TooLarge {
            width,
            height,
            pixels,
            limit: max_pixels,
        });
    }
    if pixels == 0 {
        return Err(ImageErrorKind::Corrupt(format!(
            "image is {width}×{height}"
        )));
    }
    Ok(())
}

/// Largest image file petal reads: far above any photo (a 64-megapixel JPEG takes about
/// 30 MB), and it keeps a link to `/dev/zero` or a runaway file from filling memory.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Opens an image file after checking, without opening it, that it is a regular file (opening a
/// FIFO named like an image would wait forever) of at most [`MAX_FILE_BYTES`].
fn open_image(path: &Path) -> Result<std::fs::File, ImageError> {
    let unreadable = |why: String| bad(path, ImageErrorKind::Unreadable(why));
    let meta = std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?;
    if !meta.is_file() {
        return Err(unreadable(
            "not a regular file (a pipe, device or folder named like an image); petal reads only files".into(),
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(unreadable(format!(
            "the file is {} MB, over petal's limit of {} MB for one image",
            meta.len() >> 20,
            MAX_FILE_BYTES >> 20
        )));
    }
    std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))
}

/// Reads only the header of `path`.
pub fn probe_file(path: &Path) -> Result<ImageHeader, ImageError> {
    use std::io::Read;
    // Headers of all four formats fit in the first 64 KiB except JPEGs with large EXIF blocks;
    // those fall back to the whole file.
    let mut head = Vec::with_capacity(64 * 1024);
    let file = open_image(path)?;
    file.take(64 * 1024)
        .read_to_end(&mut head)
        .map_err(|e| bad(path, ImageErrorKind::Unreadable(e.to_string())))?;
    match probe_bytes(&head) {
        Err(ImageErrorKind::Corrupt(_)) if head.len() == 64 * 1024 => {
            let all = read_file(path)?;
            probe_bytes(&all).map_err(|k| bad(path, k))
        }
        other => other.map_err(|k| bad(path, k)),
    }
}

fn probe_bytes(bytes: &[u8]) -> std::result::Result<ImageHeader, ImageErrorKind> {
    let reader = reader_for(bytes)?;
    let format = reader.format().unwrap_or(ImageFormat::Jpeg);
    let (width, height) = if format == ImageFormat::Jpeg {
        super::jpeg::dimensions(bytes)?
    } else {
        reader.into_dimensions().map_err(decode_error_kind)?
    };
    Ok(ImageHeader {
        format,
        width,
        height,
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>, ImageError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    // Bounded even if the file grows between the check and the read.
    open_image(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(path, ImageErrorKind::Unreadable(e.to_string())))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(bad(
            path,
            ImageErrorKind::Unreadable("the file grew past petal's size limit while read".into()),
        ));
    }
    Ok(bytes)
}

/// Decodes the image file at `path` into `mode`'s channels.
pub fn decode_file(path: &Path, mode: ColorMode, max_pixels: u64) -> Result<ImageU8, ImageError> {
    let bytes = read_file(path)?;
    decode_bytes(&bytes, mode, max_pixels).map_err(|k| bad(path, k))
}

/// Decodes an in-memory image file into `mode`'s channels.
pub fn decode_bytes(
    bytes: &[u8],
    mode: ColorMode,
    max_pixels: u64,
) -> std::result::Result<ImageU8, ImageErrorKind> {
    let reader = reader_for(bytes)?;
    if reader.format() == Some(ImageFormat::Jpeg) {
        return super::jpeg::decode(bytes, mode.channels(), max_pixels);
    }
    let decoder = reader.into_decoder().map_err(decode_error_kind)?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, max_pixels)?;
    let image = DynamicImage::from_decoder(decoder).map_err(decode_error_kind)?;
    Ok(convert_channels(to_8bit(image), mode.channels()))
}

/// The image at 8 bits per channel with its own channel count (1, 2, 3 or 4).
fn to_8bit(image: DynamicImage) -> ImageU8 {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let high_bytes = |v: Vec<u16>| v.into_iter().map(|x| (x >> 8) as u8).collect::<Vec<u8>>();
    match image {
        DynamicImage::ImageLuma8(b) => ImageU8::new(w, h, 1, b.into_raw()),
        DynamicImage::ImageLumaA8(b) => ImageU8::new(w, h, 2, b.into_raw()),
        DynamicImage::ImageRgb8(b) => ImageU8::new(w, h, 3, b.into_raw()),
        DynamicImage::ImageRgba8(b) => ImageU8::new(w, h, 4, b.into_raw()),
        DynamicImage::ImageLuma16(b) => ImageU8::new(w, h, 1, high_bytes(b.into_raw())),
        DynamicImage::ImageLumaA16(b) => ImageU8::new(w, h, 2, high_bytes(b.into_raw())),
        DynamicImage::ImageRgb16(b) => ImageU8::new(w, h, 3, high_bytes(b.into_raw())),
        DynamicImage::ImageRgba16(b) => ImageU8::new(w, h, 4, high_bytes(b.into_raw())),
        other => ImageU8::new(w, h, 4, other.to_rgba8().into_raw()),
    }
}

fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((299 * r as u32 + 587 * g as u32 + 114 * b as u32 + 500) / 1000) as u8
}

/// Converts between 1 (gray), 2 (gray + alpha), 3 (RGB) and 4 (RGBA) channels.
fn convert_channels(src: ImageU8, out: usize) -> ImageU8 {
    if src.channels == out {
        return src;
    }
    let n = src.width * src.height;
    let mut pixels = Vec::with_capacity(n * out);
    for px in src.pixels.chunks_exact(src.channels) {
        let (r, g, b, a) = match *px {
            [v] => (v, v, v, 255),
            [v, a] => (v, v, v, a),
            [r, g, b] => (r, g, b, 255),
            [r, g, b, a] => (r, g, b, a),
            _ => unreachable!("images have 1 to 4 channels"),
        };
        match out {
            1 => pixels.push(if src.channels <= 2 { r } else { luma(r, g, b) }),
            3 => pixels.extend_from_slice(&[r, g, b]),
            _ => pixels.extend_from_slice(&[r, g, b, a]),
        }
    }
    ImageU8::new(src.width, src.height, out, pixels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Luma, Rgb, Rgba};

    fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn gradient_rgb(w: u32, h: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(ImageBuffer::from_fn(w, h, |x, y| {
            Rgb([(x * 20) as u8, (y * 30) as u8, 100])
        }))
    }

    #[test]
    fn png_round_trips_exactly_in_every_colour_mode() {
        let bytes = encode(gradient_rgb(5, 4), ImageFormat::Png);
        let rgb = decode_bytes(&bytes, ColorMode::Rgb, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!((rgb.width, rgb.height, rgb.channels), (5, 4, 3));
        assert_eq!(&rgb.pixels[..6], &[0, 0, 100, 20, 0, 100]);
        let rgba = decode_bytes(&bytes, ColorMode::Rgba, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(&rgba.pixels[4..8], &[20, 0, 100, 255]);
        let gray = decode_bytes(&bytes, ColorMode::Grayscale, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(gray.pixels[1], luma(20, 0, 100));
    }

    #[test]
    fn sixteen_bit_png_keeps_the_high_byte_and_alpha_is_dropped_for_rgb() {
        let img = DynamicImage::ImageRgba16(ImageBuffer::from_fn(2, 1, |x, _| {
            Rgba([0x1234 + x as u16, 0xff00, 0x00ff, 0x8000])
        }));
        let bytes = encode(img, ImageFormat::Png);
        let rgb = decode_bytes(&bytes, ColorMode::Rgb, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(rgb.pixels, [0x12, 0xff, 0x00, 0x12, 0xff, 0x00]);
    }

    #[test]
    fn gray_bmp_gif_and_jpeg_decode_to_rgb() {
        let gray =
            DynamicImage::ImageLuma8(ImageBuffer::from_fn(8, 8, |x, _| Luma([x as u8 * 30])));
        for format in [
            ImageFormat::Bmp,
            ImageFormat::Gif,
            ImageFormat::Jpeg,
            ImageFormat::Png,
        ] {
            let src = if format == ImageFormat::Gif {
                DynamicImage::ImageRgba8(gray.to_rgba8())
            } else {
                gray.clone()
            };
            let bytes = encode(src, format);
            let img = decode_bytes(&bytes, ColorMode::Rgb, DEFAULT_MAX_PIXELS).unwrap();
            assert_eq!(
                (img.width, img.height, img.channels),
                (8, 8, 3),
                "{format:?}"
            );
            let px = &img.pixels[3 * 3..3 * 4];
            assert!(
                px.iter().all(|&v| (v as i32 - 90).abs() <= 8),
                "{format:?}: {px:?}"
            );
        }
    }

    #[test]
    fn format_comes_from_the_bytes() {
        let png = encode(gradient_rgb(3, 3), ImageFormat::Png);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("really_a_png.jpg");
        std::fs::write(&path, &png).unwrap();
        assert_eq!(probe_file(&path).unwrap().format, ImageFormat::Png);
        assert!(decode_file(&path, ColorMode::Rgb, DEFAULT_MAX_PIXELS).is_ok());
    }

    #[test]
    fn bad_files_give_clear_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let jpeg = encode(gradient_rgb(64, 64), ImageFormat::Jpeg);
        type Expect = fn(&ImageErrorKind) -> bool;
        let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
            ("empty.jpg", vec![], |k| *k == ImageErrorKind::Empty),
            ("text.png", b"hello, I am not a picture".to_vec(), |k| {
                *k == ImageErrorKind::NotAnImage
            }),
            ("cut.jpg", jpeg[..jpeg.len() / 3].to_vec(), |k| {
                matches!(k, ImageErrorKind::Corrupt(_))
            }),
            ("header.jpg", jpeg[..40].to_vec(), |k| {
                matches!(k, ImageErrorKind::Corrupt(_))
            }),
        ];
        for (name, bytes, expected) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let err = decode_file(&path, ColorMode::Rgb, DEFAULT_MAX_PIXELS).unwrap_err();
            assert!(expected(&err.kind), "{name}: {err}");
            assert!(err.to_string().contains(name), "{err}");
        }
        let missing = decode_file(&dir.path().join("gone.png"), ColorMode::Rgb, 100).unwrap_err();
        assert!(matches!(missing.kind, ImageErrorKind::Unreadable(_)));
    }

    #[cfg(unix)]
    #[test]
    fn pipes_and_devices_named_like_images_are_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("x.jpg");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        let zero = dir.path().join("zero.png");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let mut files = vec![zero];
        if made.is_ok_and(|s| s.success()) {
            files.push(fifo);
        }
        for path in files {
            for err in [
                decode_file(&path, ColorMode::Rgb, DEFAULT_MAX_PIXELS).unwrap_err(),
                probe_file(&path).unwrap_err(),
            ] {
                assert!(err.to_string().contains("not a regular file"), "{err}");
            }
        }
    }

    #[test]
    fn pixel_limit_refuses_before_decoding() {
        let bytes = encode(gradient_rgb(100, 50), ImageFormat::Png);
        let err = decode_bytes(&bytes, ColorMode::Rgb, 4999).unwrap_err();
        assert_eq!(
            err,
            ImageErrorKind::TooLarge {
                width: 100,
                height: 50,
                pixels: 5000,
                limit: 4999
            }
        );
        assert!(decode_bytes(&bytes, ColorMode::Rgb, 5000).is_ok());
    }
}
