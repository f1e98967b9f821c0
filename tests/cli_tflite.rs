//! `petal export`, `petal tflite info`, and `petal predict` on `.tflite` files, end to end.

mod common;

use common::{petal, s, text};

use petal::nn::{model_file, ModelConfig, Sequential};
use std::path::Path;

const TINY_MODEL: &str = r#"{"input_shape": [16, 16, 3], "layers": [
    {"type": "Rescaling", "scale": 0.00392156862745098},
    {"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"type": "MaxPooling2D"},
    {"type": "Flatten"},
    {"type": "Dropout", "rate": 0.3},
    {"type": "Dense", "units": 2}
]}"#;

#[test]
fn export_info_and_predict_like_the_native_model() {
    let dir = tempfile::tempdir().unwrap();
    let native = dir.path().join("model.safetensors");
    let tflite = dir.path().join("out/model.tflite");
    let model = Sequential::new(&ModelConfig::from_json(TINY_MODEL).unwrap(), 4).unwrap();
    let classes = vec!["bottom".to_string(), "top".to_string()];
    model_file::save(&native, &model, &classes).unwrap();

    let export = petal(&["export", s(&native), "--out", s(&tflite)]);
    assert!(export.status.success(), "{}", text(&export.stderr));
    assert!(text(&export.stdout).contains("Wrote"));

    let info = petal(&["tflite", "info", s(&tflite)]);
    assert!(info.status.success(), "{}", text(&info.stderr));
    let info = text(&info.stdout);
    assert!(
        info.contains(
            "signatures: serving_default  inputs: [sequential_input FLOAT32 [1,16,16,3]]  outputs: [outputs FLOAT32 [1,2]]"
        ),
        "{info}"
    );
    assert!(
        info.contains(
            "operators: 4 (CONV_2D v1 ×1, MAX_POOL_2D v1 ×1, RESHAPE v1 ×1, FULLY_CONNECTED v1 ×1)"
        ),
        "{info}"
    );
    assert!(info.contains("class names: bottom, top"), "{info}");
    assert!(
        info.contains("petal's interpreter runs this model"),
        "{info}"
    );

    let images: Vec<_> = (0..3)
        .map(|i| {
            let path = dir.path().join(format!("img{i}.png"));
            common::write_image(&path, 20 + i * 3, 18, 40 + 70 * i as u8);
            path
        })
        .collect();
    for json in [false, true] {
        let run = |model: &Path| {
            let mut args = vec!["predict", s(model)];
            args.extend(images.iter().map(|p| s(p)));
            if json {
                args.push("--json");
            }
            let out = petal(&args);
            assert!(out.status.success(), "{}", text(&out.stderr));
            text(&out.stdout)
        };
        let (from_native, from_tflite) = (run(&native), run(&tflite));
        assert!(from_native.contains("bottom") || from_native.contains("top"));
        if !json {
            assert_eq!(from_native, from_tflite);
            continue;
        }
        // The interpreter's GEMMs sum in another order than the training engine's kernels.
        for (a, b) in from_native.lines().zip(from_tflite.lines()) {
            let (a, b): (serde_json::Value, serde_json::Value) = (
                serde_json::from_str(a).unwrap(),
                serde_json::from_str(b).unwrap(),
            );
            assert_eq!(a["class"], b["class"]);
            for class in ["bottom", "top"] {
                let (p, q) = (&a["probabilities"][class], &b["probabilities"][class]);
                assert!(
                    (p.as_f64().unwrap() - q.as_f64().unwrap()).abs() < 1e-6,
                    "{a} {b}"
                );
            }
        }
    }

    let bench = petal(&[
        "bench",
        "infer",
        "--tflite",
        s(&tflite),
        "--runs",
        "3",
        "--layers",
    ]);
    assert!(bench.status.success(), "{}", text(&bench.stderr));
    let bench = text(&bench.stdout);
    let operators: Vec<&str> = bench
        .lines()
        .skip_while(|l| !l.starts_with("operator"))
        .skip(1)
        .take_while(|l| !l.starts_with("by kind"))
        .map(|l| l.split_whitespace().nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        operators,
        ["CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED"],
        "{bench}"
    );
    assert!(bench.contains("batch 1:"), "{bench}");
}

/// Quantized and float16 files are described with their types, quantization and operators.
#[test]
fn info_describes_quantized_and_float16_files() {
    let golden = common::golden_dir().join("tflite");
    let info = |name: &str| {
        let out = petal(&["tflite", "info", s(&golden.join(name))]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let int8 = info("tiny_int8.tflite");
    for expected in [
        "inputs: [keras_tensor UINT8 [1,8,8,3] (scale 0.0039",
        "QUANTIZE v1 ×2, CONV_2D v3 ×1, DEPTHWISE_CONV_2D v3 ×1",
        "INT8 [8,3,3,3] (8 per-channel scales along axis 0) constant",
        "petal's interpreter runs this model",
    ] {
        assert!(int8.contains(expected), "{expected:?} in\n{int8}");
    }
    let float16 = info("tiny_float16.tflite");
    assert!(float16.contains("DEQUANTIZE v3 ×5"), "{float16}");
    assert!(
        float16.contains("petal's interpreter runs this model"),
        "{float16}"
    );
    assert!(float16.contains("FLOAT16 ×5"), "{float16}");
    let dynamic = info("tiny_dynamic_range.tflite");
    assert!(dynamic.contains("FULLY_CONNECTED v12 ×2"), "{dynamic}");
    assert!(
        dynamic.contains("INT8 [128,8] (128 per-channel scales along axis 0)"),
        "{dynamic}"
    );
    assert!(
        dynamic.contains("petal's interpreter runs this model"),
        "{dynamic}"
    );
}

#[test]
fn predict_runs_tensorflows_converted_file() {
    let Some(flowers) = common::flowers() else {
        return;
    };
    let fixture = common::golden_dir().join("tflite/tutorial64_tf.tflite");
    let photo = std::fs::read_dir(flowers.join("daisy"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jpg"))
        .unwrap();
    let out = petal(&["predict", s(&fixture), s(&photo)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("This image most likely belongs to class_")
            && stdout.contains("percent confidence"),
        "{stdout}"
    );
}

#[test]
fn bad_files_are_named_in_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("picture.png");
    common::write_image(&png, 8, 8, 10);
    let out = petal(&["tflite", "info", s(&png)]);
    assert!(!out.status.success());
    let e = text(&out.stderr);
    assert!(
        e.contains("picture.png") && e.contains("not a TensorFlow Lite model"),
        "{e}"
    );

    let fake = dir.path().join("fake.tflite");
    std::fs::write(&fake, b"\x10\0\0\0TFL3 and then nothing useful").unwrap();
    for args in [
        vec!["tflite", "info", s(&fake)],
        vec!["predict", s(&fake), s(&png)],
    ] {
        let out = petal(&args);
        assert!(!out.status.success());
        let e = text(&out.stderr);
        assert!(
            e.contains("fake.tflite") && e.contains("corrupt flatbuffer"),
            "{e}"
        );
        assert!(!e.contains("panicked"), "{e}");
    }

    let out = petal(&[
        "export",
        s(&dir.path().join("none.safetensors")),
        "--out",
        s(&fake),
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("none.safetensors"));
}

/// `petal tflite run` on a converted MobileNetV2: a photo in as .npy, the class scores out as
/// .npy, equal to LiteRT's reference kernels' (tests/golden/tflite/families).
#[test]
fn tflite_run_takes_and_gives_npy_files() {
    use petal::tflite::{npy, Data, Tensor};
    let families = common::golden_dir().join("tflite/families");
    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(families.join("families.json")).unwrap()).unwrap();
    let expect = &golden["mobilenet_v2_float32.tflite"];
    let photos = npy::from_bytes(&std::fs::read(families.join("photos_96.npy")).unwrap()).unwrap();
    let Data::U8(pixels) = &photos.data else {
        panic!("photos are uint8")
    };
    let (scale, offset) = (
        expect["input_scale"].as_f64().unwrap() as f32,
        expect["input_offset"].as_f64().unwrap() as f32,
    );
    let x: Vec<f32> = pixels[..96 * 96 * 3]
        .iter()
        .map(|&p| p as f32 * scale + offset)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("x.npy");
    std::fs::write(&input, npy::to_bytes(&Tensor::f32(vec![1, 96, 96, 3], x))).unwrap();
    let model = families.join("mobilenet_v2_float32.tflite");
    let out_dir = dir.path().join("out");
    let interpreter = petal::tflite::Interpreter::from_file(&model).unwrap();
    let name = interpreter.signature_list()[0].inputs[0].name.clone();
    for given in [s(&input).to_string(), format!("{name}={}", s(&input))] {
        let out = petal(&[
            "tflite",
            "run",
            s(&model),
            "--input",
            &given,
            "--out",
            s(&out_dir),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let printed = text(&out.stdout);
        assert!(printed.contains("FLOAT32 [1,5]"), "{printed}");
        let written: Vec<_> = std::fs::read_dir(&out_dir).unwrap().collect();
        assert_eq!(written.len(), 1);
        let y =
            npy::from_bytes(&std::fs::read(written[0].as_ref().unwrap().path()).unwrap()).unwrap();
        assert_eq!(y.shape, [1, 5]);
        let want = expect["outputs"][0].as_array().unwrap();
        for (a, b) in y.as_f32().unwrap().iter().zip(want) {
            assert!((a - b.as_f64().unwrap() as f32).abs() < 1e-4);
        }
    }
    let ints = dir.path().join("ints.npy");
    std::fs::write(
        &ints,
        npy::to_bytes(&Tensor::i32(vec![1, 96, 96, 3], vec![0; 27648])),
    )
    .unwrap();
    let out = petal(&[
        "tflite",
        "run",
        s(&model),
        "--input",
        s(&ints),
        "--out",
        s(&out_dir),
    ]);
    let e = text(&out.stderr);
    assert!(
        !out.status.success() && e.contains("must be FLOAT32") && e.contains("got INT32"),
        "{e}"
    );
    let out = petal(&[
        "tflite",
        "run",
        s(&model),
        "--input",
        "nope=x.npy",
        "--out",
        s(&out_dir),
    ]);
    assert!(text(&out.stderr).contains("x.npy"), "{}", text(&out.stderr));
}

#[test]
fn tflite_ops_lists_what_the_interpreter_runs() {
    let out = petal(&["tflite", "ops"]);
    assert!(out.status.success());
    let ops = text(&out.stdout);
    for op in [
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "HARD_SWISH",
        "MEAN",
        "DEQUANTIZE",
    ] {
        assert!(ops.lines().any(|l| l == op), "{op} in {ops}");
    }
}

/// A Keras MobileNetV2 takes pixels in −1‥1 and carries no class names: `--input-range` and
/// `--labels` supply both.
#[test]
fn predict_scales_input_and_names_classes_as_told() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("photo.png");
    common::write_image(&image, 120, 90, 150);
    let labels = dir.path().join("labels.txt");
    std::fs::write(&labels, "daisy\ndandelion\nroses\nsunflowers\ntulips\n").unwrap();
    let model = common::golden_dir().join("tflite/families/mobilenet_v2_float32.tflite");
    let run = |extra: &[&str]| {
        let mut args = vec!["predict", s(&model), s(&image), "--json"];
        args.extend_from_slice(extra);
        petal(&args)
    };
    let raw = run(&[]);
    assert!(raw.status.success(), "{}", text(&raw.stderr));
    assert!(text(&raw.stdout).contains("class_0") && text(&raw.stderr).contains("--labels"));
    let named = run(&["--input-range", "-1,1", "--labels", s(&labels)]);
    assert!(named.status.success(), "{}", text(&named.stderr));
    let (raw, named) = (text(&raw.stdout), text(&named.stdout));
    assert!(named.contains("\"tulips\":"), "{named}");
    let confidence = |line: &str| -> f64 {
        serde_json::from_str::<serde_json::Value>(line).unwrap()["confidence"]
            .as_f64()
            .unwrap()
    };
    assert_ne!(
        confidence(&raw),
        confidence(&named),
        "the range changes the input"
    );
    std::fs::write(&labels, "daisy\nroses\n").unwrap();
    let e = text(&run(&["--labels", s(&labels)]).stderr);
    assert!(
        e.contains("has 2 labels, but the model has 5 classes"),
        "{e}"
    );
}

/// A model with TensorFlow Lite metadata (NormalizationOptions mean 127.5, std 127.5, and a
/// packed labels file; `scripts/add_tflite_metadata.py`) is scaled and named as it says.
#[test]
fn predict_follows_the_models_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("photo.png");
    common::write_image(&image, 60, 70, 90);
    let labels = dir.path().join("labels.txt");
    std::fs::write(&labels, "daisy\ndandelion\nroses\nsunflowers\ntulips\n").unwrap();
    let families = common::golden_dir().join("tflite/families");
    let with_metadata = families.join("resnet_mini_float32_metadata.tflite");
    let plain = families.join("resnet_mini_float32.tflite");
    let from_metadata = petal(&["predict", s(&with_metadata), s(&image), "--json"]);
    assert!(
        from_metadata.status.success(),
        "{}",
        text(&from_metadata.stderr)
    );
    let told = petal(&[
        "predict",
        s(&plain),
        s(&image),
        "--json",
        "--input-range",
        "-1,1",
        "--labels",
        s(&labels),
    ]);
    assert!(told.status.success(), "{}", text(&told.stderr));
    assert_eq!(text(&from_metadata.stdout), text(&told.stdout));
    assert!(text(&told.stdout).contains("\"daisy\""));
}

/// `N images…: loss L, accuracy A` from `petal evaluate`'s first line.
fn evaluated(model: &Path, data: &Path) -> (usize, f64) {
    let out = petal(&["evaluate", s(model), s(data)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let line = stdout.lines().next().unwrap();
    let images = line.split(' ').next().unwrap().parse().unwrap();
    let accuracy = line.rsplit(' ').next().unwrap().parse().unwrap();
    (images, accuracy)
}

#[test]
fn quantized_exports_predict_and_evaluate_like_the_float_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::make_dataset(&data, &["dark", "light"], 12);
    let native = common::trained_model(&data, dir.path(), &dir.path().join("run"));
    let export = |name: &str, extra: &[&str]| {
        let file = dir.path().join(name);
        let out = petal(&[&["export", s(&native), "--out", s(&file)][..], extra].concat());
        assert!(out.status.success(), "{}", text(&out.stderr));
        (file, text(&out.stdout))
    };
    let (float, _) = export("float.tflite", &[]);
    let (images, float_accuracy) = evaluated(&float, &data);
    assert_eq!(images, 24);
    let calibrate = ["--calibration", s(&data), "--validation-split", "0.25"];
    let forms: [(&str, Vec<&str>); 5] = [
        ("float16.tflite", vec!["--quantize", "float16"]),
        ("dynamic.tflite", vec!["--quantize", "dynamic"]),
        (
            "int8.tflite",
            [&["--quantize", "int8"][..], &calibrate].concat(),
        ),
        (
            "int8io.tflite",
            [&["--quantize", "int8", "--io", "int8"][..], &calibrate].concat(),
        ),
        (
            "uint8io.tflite",
            [&["--quantize", "int8", "--io", "uint8"][..], &calibrate].concat(),
        ),
    ];
    for (name, args) in forms {
        let (file, printed) = export(name, &args);
        if name.starts_with("int8") || name.starts_with("uint8") {
            // 18 training images of the 24, all of them: fewer than the 200 asked.
            assert!(
                printed.contains("Calibrating on 18 images of the training split"),
                "{printed}"
            );
            assert!(printed.contains("fewer than the 200 asked"), "{printed}");
        }
        let size = |f: &Path| std::fs::metadata(f).unwrap().len() as f64;
        assert!(size(&file) < size(&float), "{name}");
        let (n, accuracy) = evaluated(&file, &data);
        assert_eq!(n, 24, "{name}");
        assert!(
            (accuracy - float_accuracy).abs() <= 0.1,
            "{name}: {accuracy} against {float_accuracy}"
        );
        let image = data.join("light/img03.png");
        let out = petal(&["predict", s(&file), s(&image)]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("This image most likely belongs to"));
    }
}

#[test]
fn quantized_export_explains_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let model = Sequential::new(&ModelConfig::from_json(TINY_MODEL).unwrap(), 4).unwrap();
    let native = dir.path().join("model.safetensors");
    model_file::save(&native, &model, &["a".to_string(), "b".to_string()]).unwrap();
    let out = dir.path().join("m.tflite");
    let fails = |extra: &[&str], expected: &str| {
        let run = petal(&[&["export", s(&native), "--out", s(&out)][..], extra].concat());
        assert!(!run.status.success());
        let stderr = text(&run.stderr);
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!out.exists(), "no file is left behind");
    };
    fails(&["--quantize", "int8"], "needs --calibration DIR");
    fails(&["--quantize", "int4"], "give float16, dynamic or int8");
    fails(
        &["--quantize", "dynamic", "--io", "uint8"],
        "--io int8|uint8 is for --quantize int8",
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(empty.join("a")).unwrap();
    std::fs::create_dir_all(empty.join("b")).unwrap();
    fails(&["--quantize", "int8", "--calibration", s(&empty)], "empty");
    let broken = dir.path().join("broken");
    for class in ["a", "b"] {
        for i in 0..3 {
            let file = broken.join(class).join(format!("{i}.jpg"));
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, b"\xff\xd8 not a jpeg").unwrap();
        }
    }
    fails(
        &[
            "--quantize",
            "int8",
            "--calibration",
            s(&broken),
            "--validation-split",
            "0",
        ],
        "no usable calibration image",
    );
}

/// A reader that stops early (`petal tflite info F | head`) ends petal quietly, as it ends any
/// Unix tool, instead of making it panic on the closed pipe.
#[cfg(unix)]
#[test]
fn a_closed_output_pipe_ends_petal_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    let model = common::golden_dir().join("tflite").join("tiny_int8.tflite");
    let mut child = Command::new(env!("CARGO_BIN_EXE_petal"))
        .args(["tflite", "info", s(&model)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Closed before petal has printed anything: its first line meets a pipe with no reader.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.success() || out.status.signal() == Some(13),
        "{:?}: {stderr}",
        out.status
    );
}
