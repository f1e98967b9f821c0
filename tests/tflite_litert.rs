//! petal's `.tflite` export run by TensorFlow's own runtime, LiteRT: the signature list, and the
//! logits of 20 flower photos against petal's native model and petal's interpreter.
//!
//! Needs a Python with `ai-edge-litert` and `numpy`, named by PETAL_LITERT_PYTHON (`.ci/run`
//! makes one); without it the test says it is skipped. PETAL_LITERT_TRAINED_MODEL may name a
//! trained tutorial model to compare instead of an untrained one.

mod common;

use petal::data::decode::{decode_file, ColorMode, DEFAULT_MAX_PIXELS};
use petal::data::resize::{resize_f32, Window};
use petal::data::Interpolation;
use petal::nn::{model_file, presets, Mode, ModelConfig, Sequential};
use petal::tflite::{Interpreter, Tensor};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

const SIZE: usize = 180;
const IMAGES_PER_CLASS: usize = 4;

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).fold(0, |best, i| if v[i] > v[best] { i } else { best })
}

fn litert_python() -> Option<OsString> {
    let python = std::env::var_os("PETAL_LITERT_PYTHON");
    if python.is_none() {
        println!("skipped: set PETAL_LITERT_PYTHON to a Python with ai-edge-litert and numpy");
    }
    python
}

/// Runs `scripts/litert_check.py` on `model` with the batch-1 images in `inputs`: its printout
/// (the signature list first) and LiteRT's outputs.
fn litert(python: &OsStr, model: &Path, inputs: &[f32]) -> (String, Vec<f32>) {
    litert_with(python, model, inputs, &[])
}

/// [`litert`] with more arguments for the script (`--reference`).
fn litert_with(
    python: &OsStr,
    model: &Path,
    inputs: &[f32],
    options: &[&str],
) -> (String, Vec<f32>) {
    let dir = tempfile::tempdir().unwrap();
    let inputs_file = dir.path().join("inputs.f32");
    let outputs_file = dir.path().join("outputs.f32");
    let bytes: Vec<u8> = inputs.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&inputs_file, bytes).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/litert_check.py");
    let run = Command::new(python)
        .arg(script)
        .args(options)
        .arg(model)
        .args([&inputs_file, &outputs_file])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let outputs = std::fs::read(&outputs_file)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (stdout, outputs)
}

#[test]
fn litert_runs_petals_export_like_petal() {
    let Some(python) = litert_python() else {
        return;
    };
    let Some(flowers) = common::flowers() else {
        return;
    };
    let mut classes: Vec<PathBuf> = std::fs::read_dir(&flowers)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    let class_names: Vec<String> = classes
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut photos = Vec::new();
    for class in &classes {
        let mut files: Vec<PathBuf> = std::fs::read_dir(class)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
            .collect();
        files.sort();
        photos.extend(files.into_iter().take(IMAGES_PER_CLASS));
    }
    assert_eq!(photos.len(), 20);

    // Untrained Glorot weights from a fixed seed: no training needed to compare two runtimes.
    // PETAL_LITERT_TRAINED_MODEL names a trained tutorial model (`petal train`) to use instead.
    let dir = tempfile::tempdir().unwrap();
    let tflite_file = dir.path().join("model.tflite");
    let (native_file, mut model) = match std::env::var_os("PETAL_LITERT_TRAINED_MODEL") {
        Some(file) => {
            let saved = model_file::load(Path::new(&file)).unwrap();
            assert_eq!(saved.class_names, class_names);
            (PathBuf::from(file), saved.model)
        }
        None => {
            let config = presets::preset("tutorial", SIZE, SIZE, class_names.len()).unwrap();
            let model = Sequential::new(&config, 123).unwrap();
            let file = dir.path().join("model.safetensors");
            model_file::save(&file, &model, &class_names).unwrap();
            (file, model)
        }
    };
    let export = Command::new(env!("CARGO_BIN_EXE_petal"))
        .args(["export", native_file.to_str().unwrap(), "--out"])
        .arg(&tflite_file)
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );

    let mut interpreter = Interpreter::from_file(&tflite_file).unwrap();
    let (mut inputs, mut native, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    for photo in &photos {
        let image = decode_file(photo, ColorMode::Rgb, DEFAULT_MAX_PIXELS).unwrap();
        let x = resize_f32(
            &image,
            Window::whole(&image),
            SIZE,
            SIZE,
            Interpolation::Bilinear,
        );
        native.extend_from_slice(model.forward(&x, 1, Mode::Infer));
        let mut runner = interpreter.signature_runner("serving_default").unwrap();
        let out = runner
            .run(&[(
                "sequential_input",
                &Tensor::f32(vec![1, SIZE, SIZE, 3], x.clone()),
            )])
            .unwrap();
        ours.extend_from_slice(out["outputs"].as_f32().unwrap());
        inputs.extend(x);
    }
    let (stdout, litert) = litert(&python, &tflite_file, &inputs);
    let signatures = stdout.lines().next().unwrap();
    assert_eq!(
        signatures,
        r#"{"serving_default": {"inputs": ["sequential_input"], "outputs": ["outputs"]}}"#
    );
    assert_eq!(litert.len(), native.len());
    let classes = class_names.len();
    for (name, logits) in [("native", &native), ("interpreter", &ours)] {
        let diff = logits
            .iter()
            .zip(&litert)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        let same_top = logits
            .chunks_exact(classes)
            .zip(litert.chunks_exact(classes))
            .filter(|(a, b)| argmax(a) == argmax(b))
            .count();
        println!(
            "petal {name} vs LiteRT on {} photos: max abs logit diff {diff:.2e}, same top class {same_top}/{}",
            photos.len(),
            photos.len()
        );
        assert!(diff <= 1e-4, "{name}: max abs diff {diff}");
        assert_eq!(same_top, photos.len(), "{name}");
    }
    println!("{}", stdout.lines().last().unwrap_or(""));
}

#[test]
fn litert_runs_every_exported_layer_kind_like_petal() {
    let Some(python) = litert_python() else {
        return;
    };
    let config = ModelConfig::from_json(common::TFLITE_LAYERS_MODEL).unwrap();
    let mut model = Sequential::new(&config, 21).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("varied.tflite");
    let classes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    petal::tflite::export_file(&model, &classes, &file).unwrap();
    let samples = 6;
    let inputs: Vec<f32> = (0..samples * 9 * 11 * 2)
        .map(|i| ((i as u64 * 2_654_435_761) % 256) as f32)
        .collect();
    let native = model.forward(&inputs, samples, Mode::Infer).to_vec();
    let (_, litert) = litert(&python, &file, &inputs);
    let diff = native
        .iter()
        .zip(&litert)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    println!("petal native vs LiteRT, varied layers: max abs diff {diff:.2e}");
    assert_eq!(litert.len(), native.len());
    assert!(diff <= 1e-4, "max abs diff {diff}");
}

/// The float outputs of petal's interpreter for batch-1 `inputs`, quantized in and dequantized
/// out as the script does.
fn petal_outputs(file: &Path, inputs: &[f32], shape: [usize; 3]) -> Vec<f32> {
    let mut interpreter = Interpreter::from_file(file).unwrap();
    let input = interpreter.signature_list()[0].inputs[0].clone();
    let [h, w, c] = shape;
    let mut outputs = Vec::new();
    for x in inputs.chunks_exact(h * w * c) {
        let tensor = Tensor::from_real(
            vec![1, h, w, c],
            x,
            input.dtype,
            input.quantization.as_ref(),
        )
        .unwrap();
        let mut runner = interpreter.signature_runner("serving_default").unwrap();
        let out = runner.run(&[("sequential_input", &tensor)]).unwrap();
        outputs.extend(out["outputs"].to_real().unwrap());
    }
    outputs
}

#[test]
fn litert_runs_petals_quantized_exports_like_petal() {
    use petal::tflite::{export_file_as, Calibrator, Form, ModelIo};
    let Some(python) = litert_python() else {
        return;
    };
    let configs = [
        ModelConfig::from_json(common::TFLITE_LAYERS_MODEL).unwrap(),
        presets::preset("tutorial-augmented", 48, 40, 5).unwrap(),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (m, config) in configs.iter().enumerate() {
        let model = Sequential::new(config, 21).unwrap();
        let shape = config.input_shape;
        let samples = 6;
        // Whole pixel values from 0 to 255: the calibrated input scale is exactly 1, so an int8
        // or uint8 input holds them exactly however either side rounds.
        let inputs: Vec<f32> = (0..samples * shape.iter().product::<usize>())
            .map(|i| ((i as u64 * 2_654_435_761) % 256) as f32)
            .collect();
        let mut calibrator = Calibrator::new(&model).unwrap();
        calibrator.observe(&inputs).unwrap();
        let ranges = calibrator.finish().unwrap();
        let classes: Vec<String> = (0..model.output_shape().size())
            .map(|i| format!("c{i}"))
            .collect();
        let forms = [
            ("float16", Form::Float16, 1e-4),
            ("dynamic", Form::DynamicRange, 1e-5),
            (
                "int8",
                Form::Int8 {
                    ranges: ranges.clone(),
                    io: ModelIo::Float,
                },
                0.0,
            ),
            (
                "int8-io",
                Form::Int8 {
                    ranges: ranges.clone(),
                    io: ModelIo::Int8,
                },
                0.0,
            ),
            (
                "uint8-io",
                Form::Int8 {
                    ranges,
                    io: ModelIo::Uint8,
                },
                0.0,
            ),
        ];
        for (name, form, tolerance) in forms {
            let file = dir.path().join(format!("model{m}_{name}.tflite"));
            export_file_as(&model, &classes, &form, &file).unwrap();
            let ours = petal_outputs(&file, &inputs, shape);
            // The reference kernels: XNNPACK rounds integer arithmetic its own way.
            let (_, theirs) = litert_with(&python, &file, &inputs, &["--reference"]);
            assert_eq!(ours.len(), theirs.len(), "{name}");
            let diff = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                .fold(0.0, f32::max);
            println!("model {m} {name}: petal vs LiteRT (reference kernels) max relative diff {diff:.2e}");
            assert!(
                diff <= tolerance,
                "model {m} {name}: {ours:?} against {theirs:?}"
            );
        }
    }
}
