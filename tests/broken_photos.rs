//! Broken flower photos among good ones, as users have them: cut downloads, mangled frame
//! headers, streams of tables only. A broken file must be refused, and must not change a single
//! pixel of any other photo, whichever thread decodes them.

mod common;

use common::{flowers, petal, s, text};
use petal::data::decode::{decode_bytes, ColorMode, DEFAULT_MAX_PIXELS};
use petal::data::ImageU8;
use petal::ImageErrorKind;
use std::path::PathBuf;

type Decoded = Result<ImageU8, ImageErrorKind>;

/// The first `per_class` photos of every class, in a fixed order; `None` without the photos.
fn photos(per_class: usize) -> Option<Vec<PathBuf>> {
    let root = flowers()?;
    let mut all = Vec::new();
    for class in ["daisy", "dandelion", "roses", "sunflowers", "tulips"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(class))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        all.extend(files.into_iter().take(per_class));
    }
    Some(all)
}

fn frame_header(jpeg: &[u8]) -> usize {
    jpeg.windows(2)
        .position(|w| w[0] == 0xFF && matches!(w[1], 0xC0..=0xC2))
        .expect("a frame header")
}

/// Broken versions of a photo: cut at 3,400 bytes and before its frame header, a 0×0 frame,
/// and its tables alone.
fn broken_versions(jpeg: &[u8]) -> Vec<Vec<u8>> {
    let sof = frame_header(jpeg);
    let mut zero_frame = jpeg.to_vec();
    zero_frame[sof + 5..sof + 9].fill(0);
    let mut tables_only = jpeg[..sof].to_vec();
    tables_only.extend_from_slice(&[0xFF, 0xD9]);
    vec![
        jpeg[..3400.min(jpeg.len() - 1)].to_vec(),
        jpeg[..sof + 2].to_vec(),
        zero_frame,
        tables_only,
    ]
}

fn decode(bytes: &[u8]) -> Decoded {
    decode_bytes(bytes, ColorMode::Rgb, DEFAULT_MAX_PIXELS)
}

fn decode_alone(bytes: &[u8]) -> Decoded {
    let bytes = bytes.to_vec();
    std::thread::spawn(move || decode(&bytes)).join().unwrap()
}

#[test]
fn photos_decode_the_same_after_broken_ones_on_any_thread() {
    let Some(photos) = photos(8) else { return };
    let good: Vec<Vec<u8>> = photos.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let mut files = Vec::new();
    for (i, photo) in good.iter().enumerate() {
        for broken in broken_versions(&good[(i + 1) % good.len()]) {
            files.push(broken);
            files.push(photo.clone());
        }
    }
    let alone: Vec<Decoded> = files.iter().map(|f| decode_alone(f)).collect();
    for (i, result) in alone.iter().enumerate() {
        assert_eq!(result.is_ok(), i % 2 == 1, "file {i}: {result:?}");
    }
    std::thread::scope(|scope| {
        for start in [0, files.len() / 2] {
            let (files, alone) = (&files, &alone);
            scope.spawn(move || {
                for i in (start..files.len()).chain(0..start) {
                    assert!(
                        decode(&files[i]) == alone[i],
                        "file {i} decoded differently after the files before it"
                    );
                }
            });
        }
    });
}

#[test]
fn inspect_and_training_refuse_broken_photos_and_keep_the_good_ones() {
    let Some(photos) = photos(12) else { return };
    let dir = tempfile::tempdir().unwrap();
    for (i, photo) in photos.iter().enumerate() {
        let class = dir.path().join(["a", "b"][i % 2]);
        std::fs::create_dir_all(&class).unwrap();
        std::fs::copy(photo, class.join(format!("{i:02}.jpg"))).unwrap();
    }
    let jpeg = std::fs::read(&photos[0]).unwrap();
    for (i, broken) in broken_versions(&jpeg).into_iter().enumerate() {
        std::fs::write(
            dir.path().join("a").join(format!("{i:02}_broken.jpg")),
            broken,
        )
        .unwrap();
    }
    let out = petal(&["data", "inspect", s(dir.path()), "--verify"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("4 of 64 files cannot be used"), "{err}");

    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("tiny.json");
    std::fs::write(
        &model,
        r#"{"input_shape": [24, 24, 3], "layers": [
            {"type": "Rescaling", "scale": 0.00392156862745098},
            {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
            {"type": "Flatten"},
            {"type": "Dense", "units": 2}]}"#,
    )
    .unwrap();
    let runs = work.path().join("run");
    let out = petal(&[
        "train",
        s(dir.path()),
        "--model",
        s(&model),
        "--image-size",
        "24x24",
        "--epochs",
        "1",
        "--no-shuffle",
        "--out",
        s(&runs),
    ]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    for i in 0..4 {
        assert!(err.contains(&format!("{i:02}_broken.jpg")), "{err}");
    }
}
