//! `petal train`, `summary`, `predict` and `evaluate` end to end on a small generated data set.

mod common;

use common::{petal, s, text};

use std::path::Path;

const TINY_MODEL: &str = r#"{"input_shape": [16, 16, 3], "layers": [
    {"type": "Rescaling", "scale": 0.00392156862745098},
    {"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"type": "MaxPooling2D"},
    {"type": "Flatten"},
    {"type": "Dense", "units": 2}
]}"#;

/// Class "top" is bright above, "bottom" bright below: easy to learn.
fn make_halves(root: &Path, per_class: usize) {
    for (class, bright_top) in [("bottom", false), ("top", true)] {
        for i in 0..per_class {
            let img = image::RgbImage::from_fn(20, 20, |x, y| {
                let bright = (y < 10) == bright_top;
                let v =
                    if bright { 210 } else { 30 } + ((x * 7 + y * 3 + i as u32 * 11) % 25) as u8;
                image::Rgb([v, v, v])
            });
            let path = root.join(class).join(format!("{i:02}.png"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            img.save(path).unwrap();
        }
    }
}

#[test]
fn train_then_summary_predict_and_evaluate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_halves(&data, 20);
    let model_json = dir.path().join("tiny.json");
    std::fs::write(&model_json, TINY_MODEL).unwrap();
    let out = dir.path().join("run");
    let train = petal(&[
        "train",
        s(&data),
        "--model",
        s(&model_json),
        "--image-size",
        "16x16",
        "--epochs",
        "4",
        "--batch-size",
        "8",
        "--learning-rate",
        "0.01",
        "--out",
        s(&out),
    ]);
    let stdout = text(&train.stdout);
    assert!(train.status.success(), "{stdout}\n{}", text(&train.stderr));
    assert!(
        stdout.contains("Found 40 files belonging to 2 classes."),
        "{stdout}"
    );
    assert!(
        stdout.contains("Using 32 files for training.")
            && stdout.contains("Using 8 files for validation.")
    );
    assert!(
        stdout.contains("Epoch 4/4") && stdout.contains("val_accuracy"),
        "{stdout}"
    );
    for file in ["model.safetensors", "history.json", "history.png"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("history.json")).unwrap()).unwrap();
    let epochs = history["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 4);
    let last = &epochs[3];
    assert!(last["accuracy"].as_f64().unwrap() > 0.9, "{last}");
    assert!(last["loss"].as_f64().unwrap() < epochs[0]["loss"].as_f64().unwrap());

    let model = out.join("model.safetensors");
    let summary = petal(&["summary", s(&model)]);
    assert!(
        text(&summary.stdout).contains("conv2d (Conv2D)")
            && text(&summary.stdout).contains("Total params: 626")
    );

    let photo = data.join("top/03.png");
    let predicted = petal(&["predict", s(&model), s(&photo)]);
    let line = text(&predicted.stdout);
    assert!(
        line.contains("This image most likely belongs to top with a")
            && line.contains("percent confidence"),
        "{line}"
    );
    assert!(
        text(&predicted.stderr).contains("resized to 16×16"),
        "{}",
        text(&predicted.stderr)
    );
    let json = petal(&["predict", s(&model), s(&photo), "--json"]);
    let parsed: serde_json::Value = serde_json::from_str(text(&json.stdout).trim()).unwrap();
    assert_eq!(parsed["class"], "top");
    let total: f64 = parsed["probabilities"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-4);

    let evaluated = petal(&[
        "evaluate",
        s(&model),
        s(&data),
        "--validation-split",
        "0.2",
        "--seed",
        "123",
        "--subset",
        "validation",
    ]);
    let report = text(&evaluated.stdout);
    assert!(
        evaluated.status.success(),
        "{report}{}",
        text(&evaluated.stderr)
    );
    assert!(
        report.contains("8 images: loss") && report.contains("confusion matrix"),
        "{report}"
    );
}

#[test]
fn a_model_with_augmentation_and_dropout_trains_and_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_halves(&data, 20);
    let model_json = dir.path().join("augmented.json");
    std::fs::write(
        &model_json,
        r#"{"input_shape": [16, 16, 3], "layers": [
            {"type": "RandomFlip", "mode": "horizontal"},
            {"type": "RandomRotation", "factor": 0.02},
            {"type": "RandomZoom", "height_factor": 0.1},
            {"type": "RandomContrast", "factor": 0.2},
            {"type": "Rescaling", "scale": 0.00392156862745098},
            {"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
            {"type": "MaxPooling2D"},
            {"type": "Dropout", "rate": 0.2},
            {"type": "Flatten"},
            {"type": "Dense", "units": 2, "name": "outputs"}
        ]}"#,
    )
    .unwrap();
    let out = dir.path().join("run");
    let args = [
        "train",
        s(&data),
        "--model",
        s(&model_json),
        "--image-size",
        "16x16",
        "--epochs",
        "6",
        "--batch-size",
        "8",
        "--learning-rate",
        "0.01",
        "--out",
        s(&out),
    ];
    let train = petal(&args);
    let stdout = text(&train.stdout);
    assert!(train.status.success(), "{stdout}\n{}", text(&train.stderr));
    assert!(stdout.contains("random_zoom (RandomZoom)"), "{stdout}");
    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("history.json")).unwrap()).unwrap();
    let last = &history["epochs"].as_array().unwrap()[5];
    assert!(last["val_accuracy"].as_f64().unwrap() > 0.8, "{last}");

    let model = out.join("model.safetensors");
    let photo = data.join("top/03.png");
    let first = petal(&["predict", s(&model), s(&photo), "--json"]);
    let second = petal(&["predict", s(&model), s(&photo), "--json"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let parsed: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(parsed["class"], "top");
    assert_eq!(
        first.stdout, second.stdout,
        "augmentation is off at inference"
    );
}

#[test]
fn summary_of_the_tutorial_preset_matches_keras() {
    let out = petal(&["summary", "--preset", "tutorial"]);
    let table = text(&out.stdout);
    assert!(
        table.contains("Total params: 3,989,285 (15.22 MB)"),
        "{table}"
    );
    assert!(
        table.contains("dense (Dense)") && table.contains("3,965,056"),
        "{table}"
    );
}

#[test]
fn bad_models_and_images_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing.safetensors");
    let photo = dir.path().join("photo.png");
    common::write_image(&photo, 8, 8, 100);

    let out = petal(&["predict", s(&missing), s(&photo)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no such model file"),
        "{}",
        text(&out.stderr)
    );

    let not_a_model = dir.path().join("model.safetensors");
    std::fs::copy(&photo, &not_a_model).unwrap();
    let out = petal(&["summary", s(&not_a_model)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not a petal model file"),
        "{}",
        text(&out.stderr)
    );

    let data = dir.path().join("data");
    make_halves(&data, 4);
    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, r#"{"input_shape": [16, 16, 3], "layers": [{"type": "Conv2D", "filters": 4, "kernel": 3}]}"#).unwrap();
    let out = petal(&[
        "train",
        s(&data),
        "--model",
        s(&bad_json),
        "--image-size",
        "16x16",
        "--out",
        s(&dir.path().join("r")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("layer 1 (Conv2D)") && err.contains("kernel"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}
