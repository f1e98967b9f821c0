//! petal's JPEG decoder against TensorFlow's: the pixels of `tf.io.decode_image` (hashed in
//! tests/golden/jpeg/tf_decode.txt by scripts/make_jpeg_golden.py) for small files of every
//! kind and for every flower photo, in RGB and in gray.

mod common;

use common::{flowers, golden_dir};
use petal::data::decode::{decode_bytes, DEFAULT_MAX_PIXELS};
use petal::data::ColorMode;
use sha2::{Digest, Sha256};
use std::path::Path;

struct Golden {
    kind: String,
    file: String,
    rgb: String,
    gray: String,
}

fn golden() -> Vec<Golden> {
    let text = std::fs::read_to_string(golden_dir().join("jpeg/tf_decode.txt")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            Golden {
                kind: f[0].into(),
                file: f[1].into(),
                rgb: f[2].into(),
                gray: f[3].into(),
            }
        })
        .collect()
}

/// What petal makes of `bytes`, in TensorFlow's golden notation.
fn petal_hash(bytes: &[u8], mode: ColorMode) -> String {
    match decode_bytes(bytes, mode, DEFAULT_MAX_PIXELS) {
        Ok(image) => {
            let digest = Sha256::digest(&image.pixels);
            digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
        }
        Err(_) => "error".into(),
    }
}

/// Files where petal deliberately differs from TensorFlow, with what it does instead.
fn deliberate_difference(file: &str, mode: ColorMode, bytes: &[u8]) -> bool {
    match (file, mode) {
        // Arithmetic coding is refused with a message naming it (README: differences).
        ("arithmetic.jpg", _) => {
            let err = decode_bytes(bytes, mode, DEFAULT_MAX_PIXELS).unwrap_err();
            assert!(err.to_string().contains("arithmetic-coded"), "{err}");
            true
        }
        // TensorFlow cannot turn CMYK into gray; petal takes the luma of its RGB.
        ("cmyk_adobe.jpg", ColorMode::Grayscale) => {
            let gray = decode_bytes(bytes, mode, DEFAULT_MAX_PIXELS).unwrap();
            let rgb = decode_bytes(bytes, ColorMode::Rgb, DEFAULT_MAX_PIXELS).unwrap();
            let luma = |p: &[u8]| {
                ((19595 * p[0] as u32 + 38470 * p[1] as u32 + 7471 * p[2] as u32 + 32768) >> 16)
                    as u8
            };
            let expected: Vec<u8> = rgb.pixels.chunks(3).map(luma).collect();
            assert_eq!(gray.pixels, expected);
            true
        }
        _ => false,
    }
}

fn mismatches(entries: &[&Golden], dir: &Path) -> Vec<String> {
    let mut wrong = Vec::new();
    for g in entries {
        let bytes = std::fs::read(dir.join(&g.file)).unwrap();
        for (mode, expected) in [(ColorMode::Rgb, &g.rgb), (ColorMode::Grayscale, &g.gray)] {
            if g.kind == "fixture" && deliberate_difference(&g.file, mode, &bytes) {
                continue;
            }
            let got = petal_hash(&bytes, mode);
            if &got != expected {
                wrong.push(format!(
                    "{} ({}): petal {got}, TensorFlow {expected}",
                    g.file,
                    mode.name()
                ));
            }
        }
    }
    wrong
}

#[test]
fn every_kind_of_jpeg_decodes_to_tensorflows_pixels() {
    let all = golden();
    let fixtures: Vec<&Golden> = all.iter().filter(|g| g.kind == "fixture").collect();
    assert!(fixtures.len() >= 20);
    let wrong = mismatches(&fixtures, &golden_dir().join("jpeg"));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_flower_photo_decodes_to_tensorflows_pixels() {
    let Some(dir) = flowers() else { return };
    let all = golden();
    let photos: Vec<&Golden> = all.iter().filter(|g| g.kind == "flower").collect();
    assert_eq!(photos.len(), 3670);
    let halves = photos.split_at(photos.len() / 2);
    let wrong: Vec<String> = std::thread::scope(|s| {
        let first = s.spawn(|| mismatches(halves.0, &dir));
        let mut wrong = mismatches(halves.1, &dir);
        wrong.extend(first.join().unwrap());
        wrong
    });
    assert!(
        wrong.is_empty(),
        "{} differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
