//! Any bytes through petal's image decoders (the format comes from the bytes, as for a
//! file in a data set), in every colour mode. After each input a good JPEG must decode to the
//! same pixels as at start-up: a decoder that keeps state from a bad file fails here, and
//! memory errors are caught by the sanitizer cargo-fuzz builds with.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petal::data::decode::{decode_bytes, ColorMode};
use petal::data::ImageU8;
use std::sync::OnceLock;

/// Small enough that hostile headers cannot make the fuzzer allocate gigabytes.
const MAX_PIXELS: u64 = 1 << 22;

fn reference() -> &'static (Vec<u8>, ImageU8) {
    static REFERENCE: OnceLock<(Vec<u8>, ImageU8)> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let picture = image::RgbImage::from_fn(45, 31, |x, y| {
            image::Rgb([(x * 5) as u8, (y * 8) as u8, ((x * y) % 251) as u8])
        });
        let mut jpeg = std::io::Cursor::new(Vec::new());
        picture.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
        let jpeg = jpeg.into_inner();
        let pixels = decode_bytes(&jpeg, ColorMode::Rgb, MAX_PIXELS).unwrap();
        (jpeg, pixels)
    })
}

fuzz_target!(|data: &[u8]| {
    let (jpeg, pixels) = reference();
    for mode in [ColorMode::Rgb, ColorMode::Grayscale, ColorMode::Rgba] {
        if let Ok(image) = decode_bytes(data, mode, MAX_PIXELS) {
            assert_eq!(image.pixels.len(), image.width * image.height * mode.channels());
        }
        assert!(decode_bytes(jpeg, ColorMode::Rgb, MAX_PIXELS).as_ref() == Ok(pixels));
    }
});
