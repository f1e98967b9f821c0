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

#[test]
fn thread_counts_are_bounded_and_model_versions_print_plainly() {
    let out = petal(&["--threads", "100000", "summary", "--preset", "tutorial"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("give 1 to 1024"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_dataset(&data, &["a", "b"], 4);
    let model = trained_model(&data, dir.path(), &dir.path().join("run"));
    let bytes = std::fs::read(&model).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + header_len].to_vec()).unwrap();
    let old = header.replacen("\"version\":\"1\"", "\"version\":\"2\"", 1);
    assert_ne!(old, header, "the test expects version 1 in {header}");
    let mut changed = bytes[..8].to_vec();
    changed.extend_from_slice(old.as_bytes());
    changed.extend_from_slice(&bytes[8 + header_len..]);
    std::fs::write(&model, changed).unwrap();
    let out = petal(&["summary", s(&model)]);
    let err = text(&out.stderr);
    assert!(
        err.contains("model file version 2 is not supported"),
        "{err}"
    );
}
