//! Messages that say what is wrong and what to do, not something else.

mod common;

use common::{make_dataset, petal, s, text, trained_model, TINY_MODEL};

#[test]
fn a_grayscale_data_set_for_an_rgb_model_points_at_the_colour_mode() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(&dir.path().join("data"), &["a", "b"], 4);
    let json = dir.path().join("tiny.json");
    std::fs::write(&json, TINY_MODEL).unwrap();
    let data = dir.path().join("data");
    let out = petal(&[
        "train",
        s(&data),
        "--model",
        s(&json),
        "--image-size",
        "16x16",
        "--color-mode",
        "grayscale",
        "--out",
        s(&dir.path().join("run")),
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--color-mode rgb"), "{err}");
    assert!(!err.contains("--image-size"), "{err}");
}

#[test]
fn one_class_warns_and_a_short_grid_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_dataset(&data, &["only"], 5);
    let json = dir.path().join("tiny.json");
    std::fs::write(&json, TINY_MODEL.replace("\"units\": 2", "\"units\": 1")).unwrap();
    let args = [
        "train",
        s(&data),
        "--model",
        s(&json),
        "--image-size",
        "16x16",
    ];
    let run = dir.path().join("run");
    let out = petal(&[&args[..], &["--epochs", "1", "--out", s(&run)]].concat());
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("only one class (only)"), "{err}");

    let grid = dir.path().join("grid.png");
    let split = ["--validation-split", "0.2", "--seed", "1"];
    let grid_args = ["data", "grid", s(&data), "--out", s(&grid), "--count", "9"];
    let out = petal(&[&grid_args[..], &split].concat());
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("9 images were asked for"), "{err}");
}

#[test]
fn predict_takes_the_max_pixels_its_message_suggests() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_dataset(&data, &["a", "b"], 4);
    let model = trained_model(&data, dir.path(), &dir.path().join("run"));
    let photo = data.join("a/img00.png");
    let out = petal(&["predict", s(&model), s(&photo), "--max-pixels", "10"]);
    let err = text(&out.stderr);
    assert!(err.contains("--max-pixels"), "{err}");
    let out = petal(&["predict", s(&model), s(&photo), "--max-pixels", "1000"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
