//! Outputs that must never destroy anything: a model exported over itself, a device replaced by
//! a file, a trained model replaced by one that learned nothing (Ctrl-C in the first epoch, a
//! learning rate that overflows), an output folder found unusable only after training.

mod common;

use common::{make_dataset, petal, s, text, trained_model};
use std::process::{Command, Stdio};

#[test]
fn export_refuses_to_overwrite_its_input_and_writes_devices_in_place() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(&dir.path().join("data"), &["a", "b"], 4);
    let model = trained_model(
        &dir.path().join("data"),
        dir.path(),
        &dir.path().join("run"),
    );
    let before = std::fs::read(&model).unwrap();

    let out = petal(&["export", s(&model), "--out", s(&model)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("destroy the input"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read(&model).unwrap(),
        before,
        "the model was overwritten"
    );

    let out = petal(&["export", s(&model), "--out", "/dev/null"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let null = std::fs::metadata("/dev/null").unwrap();
    assert!(!null.is_file(), "/dev/null was replaced by a regular file");

    let link = dir.path().join("latest.tflite");
    let target = dir.path().join("exports/v1.tflite");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::write(&target, b"old").unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = petal(&["export", s(&model), "--out", s(&link)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(
        std::fs::read(&target).unwrap().len() > 1000,
        "the link's target was not written"
    );
}

#[test]
fn training_checks_its_output_folder_and_learning_rate_before_the_first_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_dataset(&data, &["a", "b"], 4);
    let in_the_way = dir.path().join("a-file");
    std::fs::write(&in_the_way, b"x").unwrap();
    let out = petal(&[
        "train",
        s(&data),
        "--image-size",
        "16x16",
        "--out",
        s(&in_the_way),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("not a folder"), "{err}");
    assert!(
        !text(&out.stdout).contains("Epoch"),
        "trained before failing"
    );

    for lr in ["nan", "inf", "1e30", "0", "-1"] {
        // Written with a space, as users do: "-1" is a value, not an option.
        let out = petal(&[
            "train",
            s(&data),
            "--image-size",
            "16x16",
            "--learning-rate",
            lr,
            "--out",
            s(&dir.path().join("run")),
        ]);
        assert_eq!(out.status.code(), Some(1), "--learning-rate {lr}");
        assert!(
            text(&out.stderr).contains("learning rate"),
            "{}",
            text(&out.stderr)
        );
        assert!(!dir.path().join("run/model.safetensors").exists());
    }
}

#[test]
fn ctrl_c_exits_130_and_never_replaces_a_model_with_one_that_learned_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_dataset(&data, &["a", "b"], 40);
    let run = dir.path().join("run");
    let model = trained_model(&data, dir.path(), &run);
    let before = std::fs::read(&model).unwrap();

    // Batches of one: the first epoch has 64 steps, far more than the run gets before the
    // signal lands.
    let mut child = Command::new(env!("CARGO_BIN_EXE_petal"))
        .args([
            "train",
            s(&data),
            "--preset",
            "tutorial",
            "--image-size",
            "64x64",
        ])
        .args(["--batch-size", "1", "--epochs", "3", "--out", s(&run)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    while !printed.contains("Non-trainable params") {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() == 0 {
            break;
        }
        printed += &line;
    }
    let sent = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{printed}\n{err}");
    if err.contains("no epoch finished") {
        assert_eq!(
            std::fs::read(&model).unwrap(),
            before,
            "the model was replaced"
        );
    } else {
        assert!(err.contains("finished epochs"), "{err}");
    }
}

#[test]
fn no_usable_image_is_an_error_not_a_model_trained_on_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_dataset(&data, &["a", "b"], 4);
    let run = dir.path().join("run");
    let args = [
        "train",
        s(&data),
        "--image-size",
        "16x16",
        "--max-pixels",
        "1",
    ];
    let out = petal(&[&args[..], &["--out", s(&run)]].concat());
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("none of the 7 training images could be used"),
        "{err}"
    );
    assert!(!run.join("model.safetensors").exists());

    let model = trained_model(&data, dir.path(), &run);
    let out = petal(&[
        "evaluate",
        s(&model),
        s(&data),
        "--image-size",
        "16x16",
        "--max-pixels",
        "1",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("none of the 8 evaluated images"), "{err}");
}
