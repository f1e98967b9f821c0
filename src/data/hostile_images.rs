//! Broken and hostile image files against the decoders: a bad file must never change how any
//! other file decodes (on the same thread or another), and decoding it must end in pixels or an
//! error, the same ones every time. Decoders that keep state between calls (libjpeg-turbo,
//! petal's JPEG decoder before its own, did) fail these tests; memory errors abort the test
//! process.

use super::decode::{decode_bytes, ColorMode};
use super::image_u8::ImageU8;
use crate::split_mix::SplitMix64;
use crate::ImageErrorKind;
use image::{DynamicImage, ImageFormat, RgbImage};
use std::io::Cursor;

type Decoded = Result<ImageU8, ImageErrorKind>;

/// Far above the test images, far below what a header-mangling mutation could make us allocate.
const MAX_PIXELS: u64 = 1 << 20;

fn photo_like(width: u32, height: u32, seed: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        let v = (x * 7 + y * 13 + seed * 31) ^ (x * y + seed);
        image::Rgb([
            v as u8,
            (v >> 3) as u8 ^ seed as u8,
            (x * 255 / width) as u8,
        ])
    }))
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let img = match format {
        ImageFormat::Gif => DynamicImage::ImageRgba8(img.to_rgba8()),
        _ => img.clone(),
    };
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn decode(bytes: &[u8]) -> Decoded {
    decode_bytes(bytes, ColorMode::Rgb, MAX_PIXELS)
}

/// How `bytes` decode on a thread that has decoded nothing else.
fn decode_alone(bytes: &[u8]) -> Decoded {
    let bytes = bytes.to_vec();
    std::thread::spawn(move || decode(&bytes)).join().unwrap()
}

/// Position of the first marker `0xFF code` in a JPEG.
fn marker(jpeg: &[u8], code: u8) -> usize {
    jpeg.windows(2).position(|w| w == [0xFF, code]).unwrap()
}

/// Good JPEGs of different sizes, so a decoder that reuses an earlier image's size is caught.
fn good_jpegs() -> Vec<Vec<u8>> {
    [(64, 48), (33, 70), (96, 17), (8, 8), (120, 90)]
        .iter()
        .enumerate()
        .map(|(i, &(w, h))| encode(&photo_like(w, h, i as u32), ImageFormat::Jpeg))
        .collect()
}

/// The broken files users meet: cut anywhere (in the headers, before the frame header, in the
/// scan, just before the end), frame headers of 0 × N, N × 0 or a size the data does not
/// fill, and streams of tables only.
fn broken_jpegs(good: &[u8]) -> Vec<Vec<u8>> {
    let sof = marker(good, 0xC0);
    let mut broken: Vec<Vec<u8>> = [2, 3, 20, sof - 1, sof, sof + 4, sof + 9, sof + 30]
        .into_iter()
        .chain((sof + 40..good.len()).step_by(97))
        .chain([good.len() - 2, good.len() - 1])
        .map(|cut| good[..cut].to_vec())
        .collect();
    let size_at = sof + 5; // SOF: marker, length (2), precision (1), height (2), width (2)
    for (height, width) in [(0u16, 64u16), (48, 0), (0, 0), (2000, 2000), (48, 65535)] {
        let mut b = good.to_vec();
        b[size_at..size_at + 2].copy_from_slice(&height.to_be_bytes());
        b[size_at + 2..size_at + 4].copy_from_slice(&width.to_be_bytes());
        broken.push(b);
    }
    let mut tables_only = good[..sof].to_vec();
    tables_only.extend_from_slice(&[0xFF, 0xD9]);
    broken.push(tables_only);
    broken
}

/// Decodes `files` in order on one thread; each result must equal that file's decoding alone.
fn check_sequence(files: &[Vec<u8>], alone: &[Decoded]) {
    for (i, (bytes, expected)) in files.iter().zip(alone).enumerate() {
        let got = decode(bytes);
        assert!(
            &got == expected,
            "file {i} of the sequence ({} bytes) decoded differently after the files before it: {:?} instead of {:?}",
            bytes.len(),
            got.as_ref().map(|im| (im.width, im.height)),
            expected.as_ref().map(|im| (im.width, im.height)),
        );
    }
}

/// Good and broken files interleaved: every broken file is followed by a good one.
fn interleaved(good: &[Vec<u8>], broken: &[Vec<u8>]) -> Vec<Vec<u8>> {
    broken
        .iter()
        .enumerate()
        .flat_map(|(i, b)| [b.clone(), good[i % good.len()].clone()])
        .collect()
}

#[test]
fn a_broken_jpeg_never_changes_how_the_next_one_decodes() {
    let good = good_jpegs();
    let broken: Vec<Vec<u8>> = good.iter().flat_map(|g| broken_jpegs(g)).collect();
    let files = interleaved(&good, &broken);
    let alone: Vec<Decoded> = files.iter().map(|f| decode_alone(f)).collect();
    for (g, result) in good.iter().zip(alone.iter().skip(1).step_by(2)) {
        assert!(result.is_ok(), "a good JPEG of {} bytes failed", g.len());
    }
    for (b, result) in broken.iter().zip(alone.iter().step_by(2)) {
        let cut = good.iter().any(|g| g.starts_with(b) && b.len() < g.len());
        assert!(
            !cut || result.is_err(),
            "a JPEG cut at {} bytes was accepted",
            b.len()
        );
    }
    check_sequence(&files, &alone);
    std::thread::scope(|s| {
        for t in 0..3 {
            let (files, alone) = (&files, &alone);
            s.spawn(move || {
                // Each thread its own rotation, so threads are at different files at once.
                let at = (t * files.len() / 3) & !1;
                let order: Vec<usize> = (at..files.len()).chain(0..at).collect();
                let files: Vec<Vec<u8>> = order.iter().map(|&i| files[i].clone()).collect();
                let alone: Vec<Decoded> = order.iter().map(|&i| alone[i].clone()).collect();
                check_sequence(&files, &alone);
            });
        }
    });
}

/// A fixed stream of mutations for a seed.
struct Mutator(SplitMix64);

impl Mutator {
    fn next(&mut self) -> u64 {
        self.0.next()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// One to four edits of the kinds fuzzers find bugs with: bit flips, special bytes
    /// (0x00, 0xFF, markers' neighbours), cuts, inserted and duplicated or deleted runs.
    fn mutate(&mut self, original: &[u8]) -> Vec<u8> {
        let mut b = original.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(b.len());
            match self.below(6) {
                0 => b[at] ^= 1 << self.below(8),
                1 => b[at] = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE][self.below(6)],
                2 => b.truncate(at.max(1)),
                3 => {
                    let run = 1 + self.below(16);
                    let bytes: Vec<u8> = (0..run).map(|_| self.next() as u8).collect();
                    b.splice(at..at, bytes);
                }
                4 => {
                    let end = (at + 1 + self.below(64)).min(b.len());
                    let copy = b[at..end].to_vec();
                    let to = self.below(b.len());
                    b.splice(to..to, copy);
                }
                _ => {
                    let end = (at + 1 + self.below(32)).min(b.len());
                    b.drain(at..end);
                }
            }
            if b.is_empty() {
                b.push(original[0]);
            }
        }
        b
    }
}

/// JPEGs of the kinds with their own decoding paths: progressive scans, restart markers,
/// unusual sampling, CMYK, one component per scan.
const JPEG_KINDS: [&[u8]; 7] = [
    include_bytes!("../../tests/golden/jpeg/progressive_420.jpg"),
    include_bytes!("../../tests/golden/jpeg/progressive_restarts.jpg"),
    include_bytes!("../../tests/golden/jpeg/restart_every_3_mcus.jpg"),
    include_bytes!("../../tests/golden/jpeg/baseline_411.jpg"),
    include_bytes!("../../tests/golden/jpeg/baseline_440.jpg"),
    include_bytes!("../../tests/golden/jpeg/cmyk_adobe.jpg"),
    include_bytes!("../../tests/golden/jpeg/one_component_per_scan.jpg"),
];

/// `count` mutants of a small image in each format, each decoded between two good files on one
/// thread and compared with its decoding alone; the good files must come out unchanged.
fn mutation_sweep(count: usize, seed: u64) {
    let picture = photo_like(37, 29, 5);
    let formats = [
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::Gif,
        ImageFormat::Bmp,
    ];
    let reference = encode(&photo_like(53, 41, 9), ImageFormat::Jpeg);
    let reference_pixels = decode(&reference).unwrap();
    let mut mutator = Mutator(SplitMix64(seed));
    for format in formats {
        let mut originals = vec![encode(&picture, format)];
        if format == ImageFormat::Jpeg {
            originals.extend(JPEG_KINDS.iter().map(|k| k.to_vec()));
        }
        for n in 0..count {
            let original = &originals[n % originals.len()];
            let mutant = mutator.mutate(original);
            let alone = decode_alone(&mutant);
            let here = decode(&mutant);
            assert!(
                here == alone,
                "{format:?} mutant {n} (seed {seed}) decodes differently after other files"
            );
            assert!(
                decode(&reference).as_ref() == Ok(&reference_pixels),
                "a good JPEG decoded differently after {format:?} mutant {n} (seed {seed})"
            );
        }
    }
}

#[test]
fn mutated_jpeg_png_gif_and_bmp_files_decode_or_fail_cleanly() {
    mutation_sweep(2_000, 1);
}

/// The long sweep (`cargo test --release --lib long_mutation_sweep -- --ignored`): 25,000
/// mutants per format, `PETAL_MUTATION_SEED` to vary them.
#[test]
#[ignore]
fn long_mutation_sweep() {
    let seed = std::env::var("PETAL_MUTATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    mutation_sweep(25_000, seed);
}
