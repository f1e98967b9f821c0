//! The TensorFlow Lite exporter and interpreter through the library API: petal's exports run like
//! the native model, TensorFlow's converted fixture runs like LiteRT ran it, and malformed files
//! give errors, never panics.

mod common;

use petal::nn::{presets, Mode, ModelConfig, Sequential};
use petal::tflite::schema::{self, ReadAsRoot};
use petal::tflite::{self, Interpreter, Tensor};

fn wave(n: usize, phase: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 * 0.731 + phase).sin() * 43.758).fract().abs() * 255.0)
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("class{i}")).collect()
}

fn run(interpreter: &mut Interpreter, input: &Tensor) -> Tensor {
    let mut runner = interpreter.signature_runner("serving_default").unwrap();
    let mut outputs = runner.run(&[("sequential_input", input)]).unwrap();
    outputs.remove("outputs").unwrap()
}

#[test]
fn exports_run_like_the_native_model_at_batch_one_and_three() {
    let configs = [
        presets::preset("tutorial", 40, 36, 3).unwrap(),
        // Augmentation and Dropout are left out of the inference graph.
        presets::preset("tutorial-augmented", 40, 36, 3).unwrap(),
        ModelConfig::from_json(common::TFLITE_LAYERS_MODEL).unwrap(),
    ];
    for config in configs {
        let mut model = Sequential::new(&config, 5).unwrap();
        let bytes = tflite::export(&model, &names(3)).unwrap();
        let mut interpreter = Interpreter::from_bytes(&bytes, "export").unwrap();
        let [h, w, c] = config.input_shape;
        for batch in [1, 3] {
            let x = wave(batch * h * w * c, 0.4);
            let want = model.forward(&x, batch, Mode::Infer).to_vec();
            let got = run(&mut interpreter, &Tensor::f32(vec![batch, h, w, c], x));
            assert_eq!(got.shape, vec![batch, 3]);
            let diff = max_diff(got.as_f32().unwrap(), &want);
            assert!(diff <= 1e-5, "batch {batch}: max diff {diff}");
        }
    }
}

#[test]
fn export_has_the_tutorials_signature_ops_and_aligned_weights() {
    let model = Sequential::new(&presets::preset("tutorial", 180, 180, 5).unwrap(), 1).unwrap();
    let bytes = tflite::export(&model, &names(5)).unwrap();
    let interpreter = Interpreter::from_bytes(&bytes, "export").unwrap();
    let signatures = interpreter.signature_list();
    assert_eq!(signatures.len(), 1);
    let s = &signatures[0];
    assert_eq!(s.key, "serving_default");
    assert_eq!(s.inputs[0].name, "sequential_input");
    assert_eq!(s.inputs[0].shape, [1, 180, 180, 3]);
    assert_eq!(s.inputs[0].shape_signature, [-1, 180, 180, 3]);
    assert_eq!(s.outputs[0].name, "outputs");
    assert_eq!(s.outputs[0].shape_signature, [-1, 5]);
    // The Rescaling is folded into the first kernel, as TensorFlow's converter folds it.
    assert_eq!(
        interpreter.op_names(),
        [
            "CONV_2D",
            "MAX_POOL_2D",
            "CONV_2D",
            "MAX_POOL_2D",
            "CONV_2D",
            "MAX_POOL_2D",
            "RESHAPE",
            "FULLY_CONNECTED",
            "FULLY_CONNECTED"
        ]
    );
    assert_eq!(interpreter.constant_bytes(), 4 * 3_989_285 + 8);
    let root = schema::ModelRef::read_as_root(&bytes).unwrap();
    let buffers = root.buffers().unwrap().unwrap();
    assert!(buffers.len() > 10);
    for buffer in buffers.iter().skip(1) {
        let buffer = buffer.unwrap();
        assert!(buffer.size().unwrap() > 0);
        assert_eq!(
            buffer.offset().unwrap() % 16,
            0,
            "weights must be 16-byte aligned"
        );
    }
    let names = interpreter.metadata(tflite::CLASS_NAMES_METADATA).unwrap();
    assert_eq!(names, br#"["class0","class1","class2","class3","class4"]"#);
}

/// The fixture's inputs, as `scripts/make_tflite_fixture.py` makes them.
fn fixture_input(n: usize) -> Vec<f32> {
    (0..64 * 64 * 3)
        .map(|i| ((i * 7919 + n * 104_729) % 256) as f32)
        .collect()
}

#[test]
fn tensorflow_converted_model_runs_like_litert() {
    let dir = common::golden_dir().join("tflite");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tutorial64_tf.json")).unwrap())
            .unwrap();
    let mut interpreter = Interpreter::from_file(&dir.join("tutorial64_tf.tflite")).unwrap();
    // What TensorFlow's converter makes of Flatten with a dynamic batch, at least.
    for op in [
        "SHAPE",
        "STRIDED_SLICE",
        "PACK",
        "RESHAPE",
        "CONV_2D",
        "FULLY_CONNECTED",
    ] {
        assert!(interpreter.op_names().iter().any(|o| o == op), "{op}");
    }
    let signature = interpreter.signature_list().remove(0);
    let (input, output) = (&signature.inputs[0].name, &signature.outputs[0].name);
    let outputs = expected["outputs"].as_array().unwrap();
    for (n, want) in outputs.iter().enumerate() {
        let want: Vec<f32> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let x = Tensor::f32(vec![1, 64, 64, 3], fixture_input(n));
        let mut runner = interpreter.signature_runner(&signature.key).unwrap();
        let got = runner.run(&[(input, &x)]).unwrap();
        let diff = max_diff(got[output].as_f32().unwrap(), &want);
        assert!(diff <= 1e-4, "sample {n}: max abs diff {diff} from LiteRT");
    }
    // The batch dimension is dynamic (-1) in TensorFlow's file too.
    let both: Vec<f32> = fixture_input(0)
        .into_iter()
        .chain(fixture_input(1))
        .collect();
    let mut runner = interpreter.signature_runner(&signature.key).unwrap();
    let got = runner
        .run(&[(input, &Tensor::f32(vec![2, 64, 64, 3], both))])
        .unwrap();
    assert_eq!(got[output].shape, [2, 5]);
}

/// Dynamic-range CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED, each fed by another or by the
/// input (`scripts/make_tflite_quantized_fixtures.py`): with no float op between them to move an
/// activation's range by a last bit, petal's run-time quantization matches LiteRT's reference
/// kernels.
#[test]
fn dynamic_range_ops_match_litert_reference_kernels() {
    let dir = common::golden_dir().join("tflite");
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("hybrid_chain.json")).unwrap())
            .unwrap();
    let mut interpreter = Interpreter::from_file(&dir.join("hybrid_chain.tflite")).unwrap();
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    };
    let signature = interpreter.signature_list().remove(0);
    let (input, output) = (&signature.inputs[0].name, &signature.outputs[0].name);
    for (x, want) in golden["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(golden["outputs"].as_array().unwrap())
    {
        let x = Tensor::f32(vec![1, 10, 10, 8], floats(x));
        let got = interpreter
            .signature_runner(&signature.key)
            .unwrap()
            .run(&[(input, &x)])
            .unwrap();
        let want = floats(want);
        let peak = want.iter().fold(1f32, |m, v| m.max(v.abs()));
        let error = max_diff(got[output].as_f32().unwrap(), &want) / peak;
        assert!(error <= 1e-6, "relative error {error} from LiteRT");
    }
}

/// A TensorFlow 1 quantization-aware graph converted to uint8 throughout (uint8 weights with zero
/// points, no signature; `scripts/make_tflite_quantized_fixtures.py`): LiteRT's reference
/// integers, value for value.
#[test]
fn legacy_uint8_model_matches_litert_reference_kernels() {
    let dir = common::golden_dir().join("tflite");
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("legacy_uint8.json")).unwrap())
            .unwrap();
    let mut interpreter = Interpreter::from_file(&dir.join("legacy_uint8.tflite")).unwrap();
    let signature = interpreter.signature_list().remove(0);
    assert_eq!(
        signature.key, "serving_default",
        "made from the graph's inputs and outputs"
    );
    let (input, output) = (&signature.inputs[0].name, &signature.outputs[0].name);
    let bytes = |v: &serde_json::Value| -> Vec<u8> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect()
    };
    for (x, want) in golden["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(golden["outputs"].as_array().unwrap())
    {
        let x = Tensor::new(vec![1, 8, 8, 3], tflite::Data::U8(bytes(x)));
        let got = interpreter
            .signature_runner(&signature.key)
            .unwrap()
            .run(&[(input, &x)])
            .unwrap();
        assert_eq!(got[output].data, tflite::Data::U8(bytes(want)));
    }
}

fn error_of(bytes: &[u8]) -> String {
    match Interpreter::from_bytes(bytes, "bad.tflite") {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// A small export whose buffers are moved inline (as TensorFlow writes them), as an owned model
/// to alter and write again.
fn small_model() -> schema::Model {
    let config = ModelConfig::from_json(
        r#"{"input_shape": [6, 6, 1], "layers": [
            {"type": "Conv2D", "filters": 2, "kernel_size": 3, "padding": "same", "activation": "relu"},
            {"type": "MaxPooling2D"},
            {"type": "Flatten"},
            {"type": "Dense", "units": 2}
        ]}"#,
    )
    .unwrap();
    let bytes = tflite::export(&Sequential::new(&config, 3).unwrap(), &names(2)).unwrap();
    let mut model =
        schema::Model::try_from(schema::ModelRef::read_as_root(&bytes).unwrap()).unwrap();
    for buffer in model.buffers.iter_mut().flatten() {
        if buffer.offset > 1 {
            let (at, len) = (buffer.offset as usize, buffer.size as usize);
            buffer.data = Some(bytes[at..at + len].to_vec());
            (buffer.offset, buffer.size) = (0, 0);
        }
    }
    model
}

fn subgraph(model: &mut schema::Model) -> &mut schema::SubGraph {
    &mut model.subgraphs.as_mut().unwrap()[0]
}

#[test]
fn malformed_files_have_clear_errors() {
    let good = schema::write_model(&small_model());
    assert!(Interpreter::from_bytes(&good, "good").is_ok());
    assert!(error_of(&[]).contains("too short"));
    assert!(error_of(&good[..good.len() / 2]).contains("corrupt flatbuffer"));
    let mut wrong_id = good.clone();
    wrong_id[4..8].copy_from_slice(b"TFL2");
    let e = error_of(&wrong_id);
    assert!(
        e.starts_with("bad.tflite: ") && e.contains("file identifier"),
        "{e}"
    );

    type Alteration = Box<dyn Fn(&mut schema::Model)>;
    let cases: Vec<(&str, Alteration)> = vec![
        (
            "(LSTM v1): not an operator petal runs yet",
            Box::new(|m| {
                m.operator_codes.as_mut().unwrap()[0].builtin_code = schema::BuiltinOperator::Lstm;
                m.operator_codes.as_mut().unwrap()[0].deprecated_builtin_code = 16;
            }),
        ),
        (
            "type STRING is not supported",
            Box::new(|m| {
                subgraph(m).tensors.as_mut().unwrap()[0].type_ = schema::TensorType::String
            }),
        ),
        (
            "the input (INT8) has no quantization",
            Box::new(|m| subgraph(m).tensors.as_mut().unwrap()[0].type_ = schema::TensorType::Int8),
        ),
        (
            "larger than petal handles",
            Box::new(|m| {
                subgraph(m).tensors.as_mut().unwrap()[0].shape = Some(vec![1, 1 << 20, 1 << 20, 1])
            }),
        ),
        (
            "past the end",
            Box::new(|m| {
                let buffer = &mut m.buffers.as_mut().unwrap()[1];
                (buffer.data, buffer.offset, buffer.size) = (None, 1 << 40, 16);
            }),
        ),
        (
            "holds 4 bytes but shape",
            Box::new(|m| m.buffers.as_mut().unwrap()[1].data = Some(vec![0; 4])),
        ),
        (
            "refers to tensor 99",
            Box::new(|m| subgraph(m).operators.as_mut().unwrap()[0].inputs = Some(vec![99, 1, 2])),
        ),
        (
            "before anything writes it",
            Box::new(|m| subgraph(m).operators.as_mut().unwrap().swap(0, 1)),
        ),
        ("schema version 2", Box::new(|m| m.version = 2)),
        (
            "does not fit the input's 2 channels",
            Box::new(|m| {
                let t = &mut subgraph(m).tensors.as_mut().unwrap()[0];
                t.shape = Some(vec![1, 6, 3, 2]);
                t.shape_signature = Some(vec![-1, 6, 3, 2]);
            }),
        ),
    ];
    for (expected, alter) in cases {
        let mut model = small_model();
        alter(&mut model);
        let e = error_of(&schema::write_model(&model));
        assert!(e.contains(expected), "expected {expected:?} in: {e}");
    }
}

/// Hostile quantization parameters in a full-integer model are refused when it loads, with the
/// tensor and what is wrong: never a panic, an overflow or a model that runs on nonsense.
#[test]
fn hostile_quantization_is_refused_at_load() {
    let bytes = std::fs::read(common::golden_dir().join("tflite/tiny_int8.tflite")).unwrap();
    let original =
        schema::Model::try_from(schema::ModelRef::read_as_root(&bytes).unwrap()).unwrap();
    assert!(Interpreter::from_bytes(&bytes, "good").is_ok());
    // Tensor 9 is the first convolution's int8 output, 7 its per-channel filter (8 scales).
    type Alter = Box<dyn Fn(&mut schema::QuantizationParameters)>;
    let cases: Vec<(usize, &str, Alter)> = vec![
        (
            9,
            "scale 0 is not a positive number",
            Box::new(|q| q.scale = Some(vec![0.0])),
        ),
        (
            9,
            "not a finite, non-negative number",
            Box::new(|q| q.scale = Some(vec![-0.5])),
        ),
        (
            9,
            "not a finite, non-negative number",
            Box::new(|q| q.scale = Some(vec![f32::NAN])),
        ),
        (
            9,
            "not a finite, non-negative number",
            Box::new(|q| q.scale = Some(vec![f32::INFINITY])),
        ),
        (
            9,
            "zero point 300 is outside INT8's range",
            Box::new(|q| q.zero_point = Some(vec![300])),
        ),
        (
            9,
            "1 scales but 2 zero points",
            Box::new(|q| q.zero_point = Some(vec![0, 0])),
        ),
        (
            9,
            "not a finite number",
            Box::new(|q| q.scale = Some(vec![1e-45])),
        ),
        (
            7,
            "3 per-channel scales do not match dimension 0",
            Box::new(|q| {
                q.scale = Some(vec![0.1; 3]);
                q.zero_point = Some(vec![0; 3]);
            }),
        ),
        (
            7,
            "do not match dimension 7",
            Box::new(|q| q.quantized_dimension = 7),
        ),
        (
            7,
            "quantized_dimension -1 is negative",
            Box::new(|q| q.quantized_dimension = -1),
        ),
    ];
    for (tensor, expected, alter) in cases {
        let mut model = original.clone();
        let t = &mut subgraph(&mut model).tensors.as_mut().unwrap()[tensor];
        alter(t.quantization.as_mut().unwrap());
        let e = error_of(&schema::write_model(&model));
        assert!(e.contains(expected), "expected {expected:?} in: {e}");
    }
}

#[test]
fn wrong_inputs_have_clear_errors() {
    let bytes = schema::write_model(&small_model());
    let mut interpreter = Interpreter::from_bytes(&bytes, "small.tflite").unwrap();
    assert!(interpreter
        .signature_runner("serving")
        .err()
        .unwrap()
        .to_string()
        .contains("no signature \"serving\""));
    let mut runner = interpreter.signature_runner("serving_default").unwrap();
    let image = Tensor::f32(vec![1, 6, 6, 1], vec![0.5; 36]);
    let error = |inputs: &[(&str, &Tensor)], runner: &mut tflite::SignatureRunner| {
        runner.run(inputs).unwrap_err().to_string()
    };
    let e = error(&[("image", &image)], &mut runner);
    assert!(
        e.contains("no input \"image\"") && e.contains("sequential_input"),
        "{e}"
    );
    assert!(error(&[], &mut runner).contains("is missing"));
    let e = error(
        &[(
            "sequential_input",
            &Tensor::f32(vec![1, 6, 5, 1], vec![0.5; 30]),
        )],
        &mut runner,
    );
    assert!(e.contains("must be FLOAT32 of shape [1,6,6,1]"), "{e}");
    let e = error(
        &[(
            "sequential_input",
            &Tensor::i32(vec![1, 6, 6, 1], vec![1; 36]),
        )],
        &mut runner,
    );
    assert!(e.contains("got INT32"), "{e}");
    let e = error(
        &[(
            "sequential_input",
            &Tensor::f32(vec![1, 6, 6, 1], vec![0.5; 35]),
        )],
        &mut runner,
    );
    assert!(e.contains("35 values"), "{e}");
    assert!(runner.run(&[("sequential_input", &image)]).is_ok());
}

/// Describes `bytes` (as `tflite info` does), parses them and, when that succeeds, runs every
/// signature on zeros: any outcome but a panic is fine. `Err` on a panic, else whether the file
/// was accepted.
fn survives(bytes: &[u8]) -> Result<bool, ()> {
    std::panic::catch_unwind(|| {
        let _ = tflite::describe(bytes);
        let Ok(mut interpreter) = Interpreter::from_bytes(bytes, "mutant") else {
            return false;
        };
        for signature in interpreter.signature_list() {
            let inputs: Vec<(String, Tensor)> = signature
                .inputs
                .iter()
                .filter(|t| t.shape.iter().product::<usize>() <= 1 << 20)
                .map(|t| {
                    let n = t.shape.iter().product();
                    let tensor = Tensor::new(t.shape.clone(), t.dtype.zeros(n));
                    (t.name.clone(), tensor)
                })
                .collect();
            let refs: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
            if let Ok(mut runner) = interpreter.signature_runner(&signature.key) {
                let _ = runner.run(&refs);
            }
        }
        true
    })
    .map_err(|_| ())
}

/// Which mutants of `file` to try: truncations every `truncation_step` bytes, and `flips`
/// XORed into each byte that `chosen` picks.
struct Mutations<'a> {
    name: &'a str,
    file: &'a [u8],
    truncation_step: usize,
    flips: &'a [u8],
    chosen: Box<dyn Fn(usize) -> bool + 'a>,
}

#[test]
fn truncated_and_flipped_files_never_panic() {
    let small = schema::write_model(&small_model());
    let exported = tflite::export(
        &Sequential::new(&presets::preset("tutorial", 24, 24, 2).unwrap(), 9).unwrap(),
        &names(2),
    )
    .unwrap();
    let tf = std::fs::read(common::golden_dir().join("tflite/tutorial64_tf.tflite")).unwrap();
    let int8 = std::fs::read(common::golden_dir().join("tflite/tiny_int8.tflite")).unwrap();
    let v3 =
        std::fs::read(common::golden_dir().join("tflite/families/mobilenet_v3s_float16.tflite"))
            .unwrap();
    let v3_len = v3.len();
    let (mut failures, mut accepted) = (Vec::new(), 0);
    // Every byte of the small file; the flatbuffer part of the export (its weights follow it);
    // for TensorFlow's file, whose converter puts the tables and small buffers at both ends
    // around the large weights, a sample of those ends.
    let tf_len = tf.len();
    let cases = [
        Mutations {
            name: "small",
            file: &small,
            truncation_step: 1,
            flips: &[0xff, 0x01, 0x80],
            chosen: Box::new(|_| true),
        },
        Mutations {
            name: "exported",
            file: &exported,
            truncation_step: 101,
            flips: &[0xff, 0x80],
            chosen: Box::new(|i| i < 3000),
        },
        Mutations {
            name: "int8",
            file: &int8,
            truncation_step: 13,
            flips: &[0xff, 0x80],
            chosen: Box::new(|i| i % 3 == 0),
        },
        Mutations {
            name: "mobilenet_v3s_float16",
            file: &v3,
            truncation_step: 30_011,
            flips: &[0xff, 0x80],
            chosen: Box::new(move |i| (i < 4096 || i + 4096 > v3_len) && i % 5 == 0),
        },
        Mutations {
            name: "tf",
            file: &tf,
            truncation_step: 24_001,
            flips: &[0xff],
            chosen: Box::new(move |i| (i < 2048 || i + 2048 > tf_len) && i % 7 == 0),
        },
    ];
    for Mutations {
        name,
        file,
        truncation_step: step,
        flips,
        chosen,
    } in cases
    {
        let mut check = |what: String, bytes: &[u8]| match survives(bytes) {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(()) => failures.push(format!("{name}: {what}")),
        };
        for len in (0..file.len()).step_by(step) {
            check(format!("truncated to {len}"), &file[..len]);
        }
        for at in (0..file.len()).filter(|&i| chosen(i)) {
            for &flip in flips {
                let mut bytes = file.to_vec();
                bytes[at] ^= flip;
                check(format!("byte {at} ^ {flip:#x}"), &bytes);
            }
        }
    }
    assert!(failures.is_empty(), "panics: {failures:?}");
    // Many flips land in weights or names and leave a valid model, which then runs.
    assert!(
        accepted > 500,
        "only {accepted} mutants were accepted and run"
    );
}

/// A declared input shape that is a placeholder (1×1 where the signature says any size) loads,
/// and the size given at the first run is prepared; where only the batch may vary, a shape that
/// does not work out is refused at load.
#[test]
fn placeholder_input_shapes_are_prepared_at_the_first_run() {
    let with_signature = |signature: Vec<i32>| {
        let mut model = small_model();
        let t = &mut subgraph(&mut model).tensors.as_mut().unwrap()[0];
        t.shape = Some(vec![1, 1, 1, 1]);
        t.shape_signature = Some(signature);
        schema::write_model(&model)
    };
    let e = error_of(&with_signature(vec![-1, 1, 1, 1]));
    assert!(e.contains("MAX_POOL_2D"), "{e}");
    let mut interpreter =
        Interpreter::from_bytes(&with_signature(vec![-1, -1, -1, 1]), "any size").unwrap();
    let signature = interpreter.signature_list().remove(0);
    let input = signature.inputs[0].name.clone();
    let mut runner = interpreter.signature_runner(&signature.key).unwrap();
    let out = runner
        .run(&[(&input, &Tensor::f32(vec![1, 6, 6, 1], vec![0.5; 36]))])
        .unwrap();
    assert_eq!(out.values().next().unwrap().shape, [1, 2]);
    let e = runner
        .run(&[(&input, &Tensor::f32(vec![1, 1, 1, 1], vec![0.5]))])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("MAX_POOL_2D") && e.contains("does not fit"),
        "{e}"
    );
}
