#![allow(dead_code)] // each test binary uses its own share of these helpers

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `petal` binary with `args`.
pub fn petal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_petal"))
        .args(args)
        .output()
        .unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The tutorial's data set, beside the repository as CI lays it out (override with PETAL_FLOWERS),
/// or `None` — and a note that the calling test is skipped — where it is absent. With
/// PETAL_REQUIRE_FLOWERS=1 (as CI sets) its absence fails the test instead.
pub fn flowers() -> Option<PathBuf> {
    let dir = std::env::var_os("PETAL_FLOWERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/flower_photos")
        });
    if dir.is_dir() {
        return Some(dir);
    }
    let message = format!(
        "flower_photos not found at {}: set PETAL_FLOWERS",
        dir.display()
    );
    assert!(
        std::env::var_os("PETAL_REQUIRE_FLOWERS").is_none(),
        "{message}"
    );
    eprintln!("skipped: {message}");
    None
}

pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Training and validation file lists that Keras produced for `seed` and `split`.
pub fn golden_split(seed: u32, split: &str) -> (Vec<String>, Vec<String>) {
    let path = golden_dir().join(format!("split_seed{seed}_{split}.txt"));
    let text = std::fs::read_to_string(&path).unwrap();
    let (mut training, mut validation) = (Vec::new(), Vec::new());
    let mut current: Option<&mut Vec<String>> = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if line.starts_with("[training]") {
            current = Some(&mut training);
        } else if line.starts_with("[validation]") {
            current = Some(&mut validation);
        } else if let Some(list) = current.as_mut() {
            list.push(line.to_string());
        }
    }
    (training, validation)
}

/// Writes a small picture whose pixels depend on `shade`, in the format of the extension.
pub fn write_image(path: &Path, width: u32, height: u32, shade: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([shade, (x * 255 / width) as u8, (y * 255 / height) as u8])
    });
    img.save(path).unwrap();
}

/// A class-per-folder data set: `per_class` PNGs in each of `classes`.
pub fn make_dataset(root: &Path, classes: &[&str], per_class: usize) {
    for (c, class) in classes.iter().enumerate() {
        for i in 0..per_class {
            let shade = (c * 60 + i * 7) as u8;
            write_image(
                &root.join(class).join(format!("img{i:02}.png")),
                12 + i as u32,
                10,
                shade,
            );
        }
    }
}

/// A model with every layer kind and argument the TFLite exporter handles: a rescaling offset,
/// strides, VALID and SAME, overlapping pools, no bias, sigmoid and softmax, and a Dropout that
/// the export leaves out.
pub const TFLITE_LAYERS_MODEL: &str = r#"{"input_shape": [9, 11, 2], "layers": [
    {"type": "Rescaling", "scale": 0.00784313725490196, "offset": -1},
    {"type": "Conv2D", "filters": 4, "kernel_size": [2, 3], "strides": 2, "activation": "sigmoid", "use_bias": false},
    {"type": "MaxPooling2D", "pool_size": 3, "strides": 1, "padding": "same"},
    {"type": "Conv2D", "filters": 3, "kernel_size": 1, "padding": "same", "activation": "relu"},
    {"type": "MaxPooling2D", "pool_size": 2, "strides": [1, 2]},
    {"type": "Flatten"},
    {"type": "Dropout", "rate": 0.5},
    {"type": "Dense", "units": 6, "activation": "relu"},
    {"type": "Dense", "units": 3, "activation": "softmax"}
]}"#;

/// A model small enough to train in a test: 16×16 RGB in, two classes out.
pub const TINY_MODEL: &str = r#"{"input_shape": [16, 16, 3], "layers": [
    {"type": "Rescaling", "scale": 0.00392156862745098},
    {"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"type": "Flatten"},
    {"type": "Dense", "units": 2}
]}"#;

/// Trains the tiny model for one epoch into `out`; returns the model file.
pub fn trained_model(data: &Path, work: &Path, out: &Path) -> std::path::PathBuf {
    let json = work.join("tiny.json");
    std::fs::write(&json, TINY_MODEL).unwrap();
    let args = [
        "train",
        s(data),
        "--model",
        s(&json),
        "--image-size",
        "16x16",
    ];
    let run = petal(&[&args[..], &["--epochs", "1", "--out", s(out)]].concat());
    assert!(run.status.success(), "{}", text(&run.stderr));
    out.join("model.safetensors")
}
