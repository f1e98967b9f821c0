//! `petal tutorial --quick` on the flower photos: every step runs, `results.json` holds the
//! figures, and `report.html` renders in a real browser (headless Chromium) with its pictures.

mod common;

use common::flowers;
use std::path::Path;
use std::process::Command;

fn photo_of_sunflowers(flowers: &Path) -> std::path::PathBuf {
    let dir = flowers.join("sunflowers");
    let mut photos: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    photos.sort();
    photos.remove(0)
}

#[test]
fn quick_tutorial_runs_every_step_and_reports() {
    let Some(flowers) = flowers() else { return };
    let out = tempfile::tempdir().unwrap();
    let photo = photo_of_sunflowers(&flowers);
    let run = Command::new(env!("CARGO_BIN_EXE_petal"))
        .args(["tutorial", "--quick", "--data"])
        .arg(&flowers)
        .arg("--out")
        .arg(out.path())
        .arg("--photo")
        .arg(&photo)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for words in [
        "Found 3670 files belonging to 5 classes.",
        "Using 2936 files for training.",
        "Epoch 1/1",
        "This image most likely belongs to",
        "TensorFlow Lite: this image most likely belongs to",
        "report.html",
    ] {
        assert!(stdout.contains(words), "{words:?} missing from\n{stdout}");
    }
    for file in [
        "model_tutorial.safetensors",
        "model_tutorial_augmented.safetensors",
        "samples.png",
        "augmented.png",
        "history_tutorial.png",
        "history_tutorial_augmented.png",
    ] {
        assert!(out.path().join(file).is_file(), "{file} missing");
    }
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("results.json")).unwrap()).unwrap();
    assert_eq!(results["data"]["training"], 2936);
    assert_eq!(results["data"]["validation"], 734);
    let models = results["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    for model in models {
        assert_eq!(model["parameters"], 3_989_285);
        assert!(
            model["final_val_accuracy"].as_f64().unwrap() > 0.3,
            "{model}"
        );
    }
    let confusion = results["evaluation"]["confusion"].as_array().unwrap();
    let counted: u64 = confusion
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(counted, 734);
    assert_eq!(results["prediction"]["photo"], photo.display().to_string());
    let lite = &results["tflite"];
    assert!(
        lite["max_abs_logit_difference"].as_f64().unwrap() <= 1e-4,
        "{lite}"
    );
    assert_eq!(lite["class"], results["prediction"]["class"]);
    assert!(lite["signatures"]
        .as_str()
        .unwrap()
        .contains("'serving_default'"));
    assert!(out.path().join("model.tflite").is_file());
    let forms = results["quantization"].as_array().unwrap();
    let field = |i: usize, key: &str| forms[i][key].as_f64().unwrap();
    let names: Vec<&str> = forms.iter().map(|f| f["form"].as_str().unwrap()).collect();
    assert_eq!(names, ["float32", "float16", "dynamic", "int8"]);
    for (i, most) in [(1, 0.55), (2, 0.3), (3, 0.3)] {
        assert!(field(i, "bytes") <= most * field(0, "bytes"), "{forms:?}");
        // One epoch leaves a weak model; quantizing it must not make it weaker by much.
        let lost = field(0, "validation_accuracy") - field(i, "validation_accuracy");
        assert!(lost <= 0.03, "{forms:?}");
        assert!(field(i, "latency_ms") > 0.0);
    }
    assert!(results["total_seconds"].as_f64().unwrap() > 0.0);
    check_report(&out.path().join("report.html"));
}

/// The page embeds every picture as a PNG that decodes, asks nothing of the network, and
/// Chromium renders it to a screenshot that is not blank.
fn check_report(page: &Path) {
    let html = std::fs::read_to_string(page).unwrap();
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    let pictures: Vec<&str> = html
        .split("src=\"data:image/png;base64,")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    assert_eq!(pictures.len(), 4, "samples, two curves, augmentation");
    for data in pictures {
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        image::load_from_memory(&png).expect("an embedded picture that decodes");
    }
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
    else {
        assert!(
            std::env::var_os("PETAL_REQUIRE_BROWSER").is_none(),
            "PETAL_REQUIRE_BROWSER is set but no Chromium was found"
        );
        eprintln!("note: no Chromium here; the report was checked without rendering it");
        return;
    };
    let shot = page.with_file_name("report.png");
    let rendered = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg("--window-size=1100,4000")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        shot.is_file(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let picture = image::open(&shot).unwrap().to_rgb8();
    let colours: std::collections::HashSet<_> = picture.pixels().map(|p| p.0).collect();
    assert!(
        colours.len() > 5_000,
        "the rendered page looks blank: {} colours",
        colours.len()
    );
}

#[test]
fn a_failed_step_is_named_and_the_report_of_what_ran_is_kept() {
    let out = tempfile::tempdir().unwrap();
    let missing = out.path().join("no_photos_here");
    let run = Command::new(env!("CARGO_BIN_EXE_petal"))
        .args(["tutorial", "--quick", "--data"])
        .arg(&missing)
        .arg("--out")
        .arg(out.path().join("run"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no_photos_here") && !stderr.contains("panicked"),
        "{stderr}"
    );
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("run/results.json")).unwrap())
            .unwrap();
    assert!(results["notes"][0]
        .as_str()
        .unwrap()
        .contains("The run stopped"));
    assert!(out.path().join("run/report.html").is_file());

    let blocker = out.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_petal"))
        .args(["tutorial", "--quick", "--data"])
        .arg(&missing)
        .arg("--out")
        .arg(blocker.join("run"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("file/run"),
        "an unwritable --out is named: {stderr}"
    );
}

#[test]
fn without_a_photo_to_classify_the_tutorial_stops_before_training_and_names_photo() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::make_dataset(&data, &["daisy", "roses"], 6);
    let started = std::time::Instant::now();
    let run = Command::new(env!("CARGO_BIN_EXE_petal"))
        .env("PETAL_HOME", dir.path().join("home"))
        .env("PETAL_MIRROR", "http://127.0.0.1:9")
        .args(["tutorial", "--quick", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--photo"), "{stderr}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(!stdout.contains("Epoch 1/1"), "it trained first: {stdout}");
    assert!(started.elapsed().as_secs() < 60);
}
