//! Quantized export through the library API: each form has the operators, versions and types
//! TensorFlow's converter writes, runs in petal's interpreter close to the float model, and
//! degenerate weights or ranges still give files that load and run.

mod common;

use petal::nn::{presets, Mode, ModelConfig, Sequential};
use petal::tflite::{
    self, describe, ActivationRanges, Calibrator, Form, Interpreter, ModelIo, Tensor,
};

fn wave(n: usize, phase: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 * 0.731 + phase).sin() * 43.758).fract().abs() * 255.0)
        .collect()
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("class{i}")).collect()
}

/// Ranges over eight wave images, two batches of four.
fn calibrated(model: &Sequential) -> ActivationRanges {
    let mut calibrator = Calibrator::new(model).unwrap();
    let per_image: usize = calibrator.image_shape().iter().product();
    for batch in 0..2 {
        calibrator
            .observe(&wave(4 * per_image, batch as f32))
            .unwrap();
    }
    let ranges = calibrator.finish().unwrap();
    assert_eq!(ranges.images(), 8);
    ranges
}

/// The model's float outputs for `x` (one image) from `bytes`, whatever its input and output
/// types: quantized in and dequantized out as `petal predict` does.
fn run(bytes: &[u8], x: &[f32], shape: [usize; 3]) -> Vec<f32> {
    let mut interpreter = Interpreter::from_bytes(bytes, "export").unwrap();
    let input = interpreter.signature_list()[0].inputs[0].clone();
    let [h, w, c] = shape;
    let tensor = Tensor::from_real(
        vec![1, h, w, c],
        x,
        input.dtype,
        input.quantization.as_ref(),
    )
    .expect("a float, int8 or uint8 input");
    let mut runner = interpreter.signature_runner("serving_default").unwrap();
    let outputs = runner.run(&[("sequential_input", &tensor)]).unwrap();
    outputs["outputs"].to_real().unwrap()
}

fn operators(bytes: &[u8]) -> Vec<String> {
    describe(bytes)
        .unwrap()
        .operators
        .iter()
        .map(|o| format!("{} v{}", o.name, o.version))
        .collect()
}

#[test]
fn each_form_has_the_converters_operators_versions_and_sizes() {
    let model = Sequential::new(&presets::preset("tutorial", 180, 180, 5).unwrap(), 1).unwrap();
    let float = tflite::export(&model, &names(5)).unwrap();
    let float16 = tflite::export_as(&model, &names(5), &Form::Float16).unwrap();
    let dynamic = tflite::export_as(&model, &names(5), &Form::DynamicRange).unwrap();
    let int8 = Form::Int8 {
        ranges: calibrated(&model),
        io: ModelIo::Float,
    };
    let int8 = tflite::export_as(&model, &names(5), &int8).unwrap();

    // As TensorFlow 2.21 writes the tutorial's model (scripts/compare_quantized_export_tf.py).
    let ops = operators(&int8);
    assert_eq!(ops.first().unwrap(), "QUANTIZE v1");
    assert_eq!(ops.last().unwrap(), "DEQUANTIZE v2");
    for (op, version) in [
        ("CONV_2D", 3),
        ("MAX_POOL_2D", 2),
        ("RESHAPE", 1),
        ("FULLY_CONNECTED", 4),
    ] {
        assert!(ops.contains(&format!("{op} v{version}")), "{ops:?}");
    }
    let ops = operators(&dynamic);
    assert!(ops.contains(&"CONV_2D v5".into()) && ops.contains(&"FULLY_CONNECTED v12".into()));
    let ops = operators(&float16);
    assert_eq!(
        ops.iter().filter(|o| *o == "DEQUANTIZE v3").count(),
        10,
        "{ops:?}"
    );

    let summary = describe(&dynamic).unwrap();
    let kernels: Vec<(String, Option<usize>)> = summary
        .tensors
        .iter()
        .filter(|t| t.name.ends_with("/kernel"))
        .map(|t| {
            (
                t.dtype.clone(),
                t.quantization.as_ref().map(|q| q.scales.len()),
            )
        })
        .collect();
    // Weights of fewer than 1,024 values stay float, as the converter leaves them.
    let float32 = ("FLOAT32".to_string(), None);
    let quantized = |channels| ("INT8".to_string(), Some(channels));
    assert_eq!(
        kernels,
        [
            float32.clone(),
            quantized(32),
            quantized(64),
            quantized(128),
            float32
        ]
    );

    let ratio = |bytes: &[u8]| bytes.len() as f64 / float.len() as f64;
    assert!(ratio(&float16) < 0.55, "{}", ratio(&float16));
    assert!(ratio(&dynamic) < 0.3 && ratio(&int8) < 0.3);
}

#[test]
fn quantized_exports_run_close_to_the_float_model() {
    let configs = [
        presets::preset("tutorial-augmented", 40, 36, 3).unwrap(),
        // Rescaling with an offset (MUL and ADD), sigmoid, same-padded pooling, softmax.
        ModelConfig::from_json(common::TFLITE_LAYERS_MODEL).unwrap(),
    ];
    for config in configs {
        let mut model = Sequential::new(&config, 5).unwrap();
        let ranges = calibrated(&model);
        let shape = config.input_shape;
        // A calibration image: int8 clamps what lies beyond the calibrated ranges.
        let x = wave(shape.iter().product(), 0.0);
        let want = model.forward(&x, 1, Mode::Infer).to_vec();
        let spread = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
        let forms = [
            (Form::Float16, 1e-2),
            (Form::DynamicRange, 5e-2),
            (
                Form::Int8 {
                    ranges: ranges.clone(),
                    io: ModelIo::Float,
                },
                0.1,
            ),
            (
                Form::Int8 {
                    ranges: ranges.clone(),
                    io: ModelIo::Int8,
                },
                0.1,
            ),
            (
                Form::Int8 {
                    ranges: ranges.clone(),
                    io: ModelIo::Uint8,
                },
                0.1,
            ),
        ];
        for (form, tolerance) in forms {
            let bytes = tflite::export_as(&model, &names(3), &form).unwrap();
            let got = run(&bytes, &x, shape);
            let worst = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (g - w).abs() / spread)
                .fold(0.0, f32::max);
            assert!(worst <= tolerance, "{form:?}: {got:?} against {want:?}");
        }
    }
}

#[test]
fn int8_input_and_output_types_follow_io() {
    let model = Sequential::new(&presets::preset("tutorial", 20, 20, 2).unwrap(), 3).unwrap();
    let ranges = calibrated(&model);
    for (io, want) in [
        (ModelIo::Float, "FLOAT32"),
        (ModelIo::Int8, "INT8"),
        (ModelIo::Uint8, "UINT8"),
    ] {
        let bytes = tflite::export_as(
            &model,
            &names(2),
            &Form::Int8 {
                ranges: ranges.clone(),
                io,
            },
        )
        .unwrap();
        let summary = describe(&bytes).unwrap();
        for t in [summary.inputs[0], summary.outputs[0]] {
            let tensor = &summary.tensors[t];
            assert_eq!(tensor.dtype, want, "{io:?}");
            assert_eq!(tensor.quantization.is_some(), io != ModelIo::Float);
        }
        if io == ModelIo::Uint8 {
            // The uint8 side is the int8 one moved up by 128.
            let zero_point = |t: usize| {
                summary.tensors[t]
                    .quantization
                    .as_ref()
                    .unwrap()
                    .zero_points[0]
            };
            let inner = summary
                .tensors
                .iter()
                .position(|t| t.name.ends_with("/quantize"))
                .unwrap();
            assert_eq!(zero_point(summary.inputs[0]), zero_point(inner) + 128);
        }
    }
}

#[test]
fn zero_weights_and_constant_activations_still_give_files_that_run() {
    let config = ModelConfig::from_json(common::TINY_MODEL).unwrap();
    let mut model = Sequential::new(&config, 7).unwrap();
    // The convolution's first filter all zero (scale 0 if taken naively), and the dense layer
    // and its bias all zero: its output is 0 whatever the image, a range of a single value.
    let mut params = model.params_mut();
    let filters = 4;
    for (i, w) in params[0].value.iter_mut().enumerate() {
        if i % filters == 0 {
            *w = 0.0;
        }
    }
    params[2].value.fill(0.0);
    params[3].value.fill(0.0);
    drop(params);
    let ranges = calibrated(&model);
    let bytes = tflite::export_as(
        &model,
        &names(2),
        &Form::Int8 {
            ranges,
            io: ModelIo::Float,
        },
    )
    .unwrap();
    let got = run(&bytes, &wave(16 * 16 * 3, 2.0), [16, 16, 3]);
    assert!(got.iter().all(|v| v.abs() < 1e-5), "{got:?}");
    let summary = describe(&bytes).unwrap();
    for t in &summary.tensors {
        for &scale in t.quantization.iter().flat_map(|q| &q.scales) {
            assert!(
                scale > 0.0 && scale.is_finite(),
                "{}: scale {scale}",
                t.name
            );
        }
    }
}

#[test]
fn calibration_refuses_nothing_and_wrong_sizes() {
    let model = Sequential::new(&presets::preset("tutorial", 20, 20, 2).unwrap(), 3).unwrap();
    let err = Calibrator::new(&model)
        .unwrap()
        .finish()
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least one image"), "{err}");
    let mut calibrator = Calibrator::new(&model).unwrap();
    let err = calibrator.observe(&[1.0; 7]).unwrap_err().to_string();
    assert!(err.contains("[20, 20, 3]"), "{err}");
    let other = Sequential::new(&presets::preset("tutorial", 24, 24, 2).unwrap(), 3).unwrap();
    let form = Form::Int8 {
        ranges: calibrated(&other),
        io: ModelIo::Float,
    };
    let err = tflite::export_as(&model, &names(2), &form)
        .unwrap_err()
        .to_string();
    assert!(err.contains("another model"), "{err}");
}

/// Where the interpreter lets a convolution write its output max-pooled (float convolutions
/// by the direct kernels, int8 ones on AVX-512 VNNI), the values equal those of the ops run
/// one by one, as when every tensor is kept.
#[test]
fn fused_convolution_and_pool_give_the_values_of_the_ops_one_by_one() {
    let model = Sequential::new(&presets::preset("tutorial", 20, 20, 2).unwrap(), 3).unwrap();
    let ranges = calibrated(&model);
    let int8 = Form::Int8 {
        ranges,
        io: ModelIo::Int8,
    };
    for form in [Form::Float32, int8] {
        let bytes = tflite::export_as(&model, &names(2), &form).unwrap();
        let outputs = |preserve: bool| {
            let mut interpreter = Interpreter::from_bytes(&bytes, "export").unwrap();
            interpreter.preserve_all_tensors(preserve);
            let input = interpreter.signature_list()[0].inputs[0].clone();
            let x = wave(20 * 20 * 3, 0.5);
            let shape = vec![1, 20, 20, 3];
            let quantization = input.quantization.as_ref();
            let tensor = Tensor::from_real(shape, &x, input.dtype, quantization).unwrap();
            let mut runner = interpreter.signature_runner("serving_default").unwrap();
            (0..2)
                .map(|_| runner.run(&[("sequential_input", &tensor)]).unwrap())
                .collect::<Vec<_>>()
        };
        let (fused, one_by_one) = (outputs(false), outputs(true));
        assert_eq!(fused, one_by_one, "{form:?}");
    }
}
