//! `petal data …` and `petal bench data` end to end, as a user runs them.

mod common;

use common::{flowers, golden_split, make_dataset, petal};
use std::path::Path;
use std::process::Output;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn inspect_flowers_prints_the_tutorial_figures() {
    let Some(dir) = flowers() else { return };
    let out = petal(&[
        "data",
        "inspect",
        path_str(&dir),
        "--validation-split",
        "0.2",
        "--seed",
        "123",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Found 3670 files belonging to 5 classes.\n\
         \x20 daisy 633 · dandelion 898 · roses 641 · sunflowers 699 · tulips 799\n\
         \x20 sizes: 143–1024 × 159–442 px, all JPEG\n\
         Using 2936 files for training.\n\
         Using 734 files for validation.\n"
    );
}

#[test]
fn split_lists_exactly_the_keras_files() {
    let Some(dir) = flowers() else { return };
    let (training, validation) = golden_split(123, "0.2");
    for (subset, expected) in [("validation", validation), ("training", training)] {
        let out = petal(&[
            "data",
            "split",
            path_str(&dir),
            "--validation-split",
            "0.2",
            "--seed",
            "123",
            "--subset",
            subset,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let listed: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
        assert_eq!(listed, expected, "{subset}");
    }
}

#[test]
fn grid_writes_the_three_by_three_picture() {
    let Some(flowers) = flowers() else { return };
    let out_dir = tempfile::tempdir().unwrap();
    let png = out_dir.path().join("samples.png");
    let out = petal(&[
        "data",
        "grid",
        path_str(&flowers),
        "--seed",
        "123",
        "--out",
        path_str(&png),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let picture = image::open(&png).unwrap().to_rgb8();
    assert_eq!(picture.dimensions(), (3 * 236 + 16, 3 * 266 + 16));
    // Photos, not a blank page: plenty of distinct colours.
    let colours: std::collections::HashSet<_> = picture.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 10_000, "{}", colours.len());
}

#[test]
fn augment_writes_nine_augmentations_of_one_training_image() {
    let Some(flowers) = flowers() else { return };
    let out_dir = tempfile::tempdir().unwrap();
    let png = out_dir.path().join("augmented.png");
    let args = |png: &Path, preset: &'static str| {
        let mut a = vec!["data".to_string(), "augment".into()];
        a.push(path_str(&flowers).into());
        a.extend(["--seed", "123", "--preset", preset, "--out"].map(String::from));
        a.push(path_str(png).into());
        a
    };
    let run = |a: Vec<String>| petal(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let out = run(args(&png, "tutorial-augmented"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("9 augmentations of"),
        "{}",
        stdout(&out)
    );
    let first = std::fs::read(&png).unwrap();
    let picture = image::load_from_memory(&first).unwrap().to_rgb8();
    assert_eq!(picture.dimensions(), (3 * 236 + 16, 3 * 266 + 16));
    let again = out_dir.path().join("again.png");
    assert!(run(args(&again, "tutorial-augmented")).status.success());
    assert_eq!(
        std::fs::read(&again).unwrap(),
        first,
        "same seed, same picture"
    );
    let out = run(args(&png, "tutorial"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no augmentation layers"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_folders_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no_such_folder");
    let out = petal(&["data", "inspect", path_str(&missing)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no_such_folder") && stderr(&out).contains("not found"),
        "{}",
        stderr(&out)
    );

    let out = petal(&["data", "inspect", path_str(dir.path())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no class folders"),
        "{}",
        stderr(&out)
    );

    make_dataset(dir.path(), &["full"], 2);
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let out = petal(&["data", "inspect", path_str(dir.path())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("empty") && stderr(&out).contains("has no images"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("panicked"));
}

#[test]
fn corrupt_images_are_listed_and_strict_refuses_them() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(dir.path(), &["a", "b"], 3);
    let good = std::fs::read(dir.path().join("a/img00.png")).unwrap();
    std::fs::write(dir.path().join("a/cut.png"), &good[..good.len() / 2]).unwrap();
    std::fs::write(dir.path().join("b/notes.jpg"), b"shopping list").unwrap();
    let root = path_str(dir.path());

    let out = petal(&["data", "inspect", root, "--verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("2 of 8 files cannot be used"), "{err}");
    assert!(
        err.contains("cut.png") && err.contains("notes.jpg"),
        "{err}"
    );

    let out = petal(&["data", "inspect", root, "--strict"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("2 of 8 images cannot be used"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn split_needs_a_seed_and_a_sane_fraction() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(dir.path(), &["a", "b"], 3);
    let root = path_str(dir.path());
    let out = petal(&[
        "data",
        "split",
        root,
        "--validation-split",
        "0.5",
        "--subset",
        "training",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("seed"), "{}", stderr(&out));
    let out = petal(&[
        "data",
        "split",
        root,
        "--validation-split",
        "0.01",
        "--seed",
        "1",
        "--subset",
        "training",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("validation set"), "{}", stderr(&out));
    let out = petal(&[
        "data",
        "split",
        root,
        "--validation-split",
        "0.5",
        "--seed",
        "1",
        "--subset",
        "testing",
    ]);
    assert_eq!(out.status.code(), Some(2), "clap rejects an unknown subset");
}

#[test]
fn bench_data_reports_images_per_second() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(dir.path(), &["a", "b"], 4);
    let out = petal(&[
        "bench",
        "data",
        path_str(dir.path()),
        "--image-size",
        "16x16",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("8 images") && text.contains("images/s"),
        "{text}"
    );
}
