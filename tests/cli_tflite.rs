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
            "operators: 5 (MUL v1 ×1, CONV_2D v1 ×1, MAX_POOL_2D v1 ×1, RESHAPE v1 ×1, FULLY_CONNECTED v1 ×1)"
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
}

/// Quantized files petal cannot run yet are described all the same, with what stops the
/// interpreter.
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
        "petal's interpreter cannot run this model yet: operator 0 (QUANTIZE v1): not an operator petal runs yet",
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
