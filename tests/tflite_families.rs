//! The image-classifier families TensorFlow's converter makes (MobileNet V1, V2, V3 Small and
//! Large, and stand-ins with EfficientNet's and ResNet's layer kinds), in float32 and float16,
//! against LiteRT's reference kernels on three flower photos (`scripts/make_tflite_family_fixtures.py`).

use petal::tflite::{npy, Interpreter, Tensor};
use std::path::Path;

const DIR: &str = "tests/golden/tflite/families";
/// max |petal − LiteRT| / max(1, max |LiteRT|) over the output, as the issue measures it.
const TOLERANCE: f32 = 1e-4;
/// The same measure for dynamic-range files (see
/// [`every_quantized_family_matches_litert_reference_kernels`]).
const DYNAMIC_RANGE_TOLERANCE: f32 = 0.1;

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).fold(0, |best, i| if v[i] > v[best] { i } else { best })
}

fn relative_error(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let peak = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
        / peak
}

/// A golden file of `scripts/make_tflite_family_fixtures.py` with the three photos it was made
/// on.
struct Goldens {
    files: serde_json::Map<String, serde_json::Value>,
    pixels: Vec<u8>,
    /// One photo's shape (height, width, channels).
    shape: Vec<usize>,
}

impl Goldens {
    fn read(name: &str) -> Self {
        let dir = Path::new(DIR);
        let golden: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap();
        let photos = npy::from_bytes(&std::fs::read(dir.join("photos_96.npy")).unwrap()).unwrap();
        let petal::tflite::Data::U8(pixels) = photos.data else {
            panic!("photos are uint8")
        };
        Goldens {
            files: golden.as_object().unwrap().clone(),
            pixels,
            shape: photos.shape[1..].to_vec(),
        }
    }

    /// Photo `n` as the file's float input: `pixel × input_scale + input_offset`.
    fn input(&self, expect: &serde_json::Value, n: usize) -> Vec<f32> {
        let scale = expect["input_scale"].as_f64().unwrap() as f32;
        let offset = expect["input_offset"].as_f64().unwrap() as f32;
        let len: usize = self.shape.iter().product();
        self.pixels[n * len..][..len]
            .iter()
            .map(|&p| p as f32 * scale + offset)
            .collect()
    }

    /// The batch-1 input shape.
    fn batch_shape(&self) -> Vec<usize> {
        [&[1][..], &self.shape].concat()
    }
}

#[test]
fn every_family_matches_litert_reference_kernels() {
    let goldens = Goldens::read("families.json");
    assert_eq!(goldens.files.len(), 12, "six families, float32 and float16");
    for (file, expect) in &goldens.files {
        let mut interpreter = Interpreter::from_file(&Path::new(DIR).join(file)).unwrap();
        interpreter.preserve_all_tensors(true);
        let logits_tensor = expect["logits_tensor"].as_u64().unwrap() as usize;
        let signature = interpreter.signature_list().remove(0);
        let input = &signature.inputs[0];
        let ops: Vec<&str> = expect["ops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap())
            .collect();
        let floats = |v: &serde_json::Value| -> Vec<f32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        };
        for (n, (want, want_logits)) in expect["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .zip(expect["logits"].as_array().unwrap())
            .enumerate()
        {
            let (want, want_logits) = (floats(want), floats(want_logits));
            let (x, shape) = (goldens.input(expect, n), goldens.batch_shape());
            let outputs = interpreter
                .signature_runner(&signature.key)
                .unwrap()
                .run(&[(&input.name, &Tensor::f32(shape, x))])
                .unwrap();
            let got = outputs.values().next().unwrap().as_f32().unwrap();
            let logits = interpreter.tensor(logits_tensor).unwrap().as_f32().unwrap();
            for (what, got, want) in [("output", got, &want), ("logits", logits, &want_logits)] {
                let error = relative_error(got, want);
                assert!(
                    error <= TOLERANCE,
                    "{file} photo {n} {what}: relative error {error:e}\n petal {got:?}\nLiteRT {want:?}"
                );
            }
            assert_eq!(
                argmax(got),
                argmax(&want),
                "{file} photo {n}: top-1 differs"
            );
        }
        assert_eq!(interpreter.op_names(), ops, "{file}: operators in order");
    }
}

/// The families quantized by TensorFlow's converter: full-integer int8 (float input and output)
/// and uint8 (uint8 input and output) equal to LiteRT's reference integers, value for value;
/// dynamic-range (int8 weights, float activations) with the same top-1 and within
/// [`DYNAMIC_RANGE_TOLERANCE`].
///
/// Why not the float tolerance: a dynamic-range op quantizes its float input at run time with a
/// scale from the input's range, so when a float op before it differs from LiteRT's in a last
/// bit (the order of a sum), the scale can move by a bit and every rounding after it with it.
/// LiteRT's own default kernels (XNNPACK) differ from its reference ones by up to 6.5% on these
/// files; `hybrid_chain.tflite` in `tests/tflite.rs` checks the dynamic-range ops themselves
/// within 1e-6.
#[test]
fn every_quantized_family_matches_litert_reference_kernels() {
    let goldens = Goldens::read("quantized.json");
    assert_eq!(
        goldens.files.len(),
        14,
        "six families dynamic and int8, two uint8"
    );
    for (file, expect) in &goldens.files {
        let mut interpreter = Interpreter::from_file(&Path::new(DIR).join(file)).unwrap();
        interpreter.preserve_all_tensors(true);
        let logits_tensor = expect["logits_tensor"].as_u64().unwrap() as usize;
        let signature = interpreter.signature_list().remove(0);
        let input = &signature.inputs[0];
        let numbers = |v: &serde_json::Value| -> Vec<f64> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        };
        let exact = !file.ends_with("_dynamic.tflite");
        for (n, (want, want_logits)) in expect["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .zip(expect["logits"].as_array().unwrap())
            .enumerate()
        {
            let (want, want_logits) = (numbers(want), numbers(want_logits));
            let (x, shape) = (goldens.input(expect, n), goldens.batch_shape());
            let tensor = match &input.quantization {
                Some(q) => {
                    let stored = x.iter().map(|v| {
                        ((v / q.scales[0]).round() + q.zero_points[0] as f32).clamp(0.0, 255.0)
                            as u8
                    });
                    Tensor::new(shape, petal::tflite::Data::U8(stored.collect()))
                }
                None => Tensor::f32(shape, x),
            };
            let outputs = interpreter
                .signature_runner(&signature.key)
                .unwrap()
                .run(&[(&input.name, &tensor)])
                .unwrap();
            let got = values(outputs.values().next().unwrap());
            let logits = values(interpreter.tensor(logits_tensor).unwrap());
            for (what, got, want) in [("output", &got, &want), ("logits", &logits, &want_logits)] {
                if exact {
                    assert_eq!(got, want, "{file} photo {n} {what}");
                } else {
                    let (got, want): (Vec<f32>, Vec<f32>) = (
                        got.iter().map(|&v| v as f32).collect(),
                        want.iter().map(|&v| v as f32).collect(),
                    );
                    let error = relative_error(&got, &want);
                    assert!(
                        error <= DYNAMIC_RANGE_TOLERANCE,
                        "{file} photo {n} {what}: relative error {error:e}\n petal {got:?}\nLiteRT {want:?}"
                    );
                }
            }
            assert_eq!(
                argmax_f64(&got),
                argmax_f64(&want),
                "{file} photo {n}: top-1 differs"
            );
        }
        let ops: Vec<&str> = expect["ops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap())
            .collect();
        assert_eq!(interpreter.op_names(), ops, "{file}: operators in order");
    }
}

fn argmax_f64(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |best, i| if v[i] > v[best] { i } else { best })
}

/// Any tensor's values as numbers, for comparing with the goldens.
fn values(t: &Tensor) -> Vec<f64> {
    use petal::tflite::Data;
    match &t.data {
        Data::F32(v) => v.iter().map(|&v| v as f64).collect(),
        Data::I8(v) => v.iter().map(|&v| v as f64).collect(),
        Data::U8(v) => v.iter().map(|&v| v as f64).collect(),
        other => panic!("unexpected output type {:?}", other.dtype()),
    }
}

/// The operators the interpreter fuses give the bits the unfused ones give: EfficientNet's
/// swish (LOGISTIC then MUL) as one op, in float and int8, and activations (LOGISTIC,
/// HARD_SWISH) applied by the convolution before them.
#[test]
fn fused_operators_give_the_unfused_values() {
    let (floats, quantized) = (
        Goldens::read("families.json"),
        Goldens::read("quantized.json"),
    );
    for (goldens, file, fused_away) in [
        (
            &floats,
            "efficientnet_mini_float32.tflite",
            &[("MUL", 16), ("LOGISTIC", 21)][..],
        ),
        (
            &floats,
            "mobilenet_v3s_float32.tflite",
            &[("HARD_SWISH", 19), ("MUL", 0)][..],
        ),
        (
            &quantized,
            "efficientnet_mini_int8.tflite",
            &[("MUL", 16), ("LOGISTIC", 0)][..],
        ),
    ] {
        let path = Path::new(DIR).join(file);
        let expect = &goldens.files[file];
        // The output, and each operator's name with whether it ran.
        let run = |fused: bool| {
            let mut interpreter = Interpreter::from_file(&path).unwrap();
            interpreter.preserve_all_tensors(!fused);
            interpreter.profile(true);
            let signature = interpreter.signature_list().remove(0);
            let x = Tensor::f32(goldens.batch_shape(), goldens.input(expect, 0));
            let outputs = interpreter
                .signature_runner(&signature.key)
                .unwrap()
                .run(&[(&signature.inputs[0].name, &x)])
                .unwrap();
            let output = outputs.values().next().unwrap().as_f32().unwrap().to_vec();
            let ops: Vec<(String, bool)> = (interpreter.op_times().into_iter())
                .map(|(name, time)| (name.to_owned(), !time.is_zero()))
                .collect();
            (output, ops)
        };
        let (fused, ops) = run(true);
        let (plain, plain_ops) = run(false);
        assert_eq!(fused, plain, "{file}");
        // Unfused, every op runs but those computed once when prepared (shape arithmetic).
        let skipped: Vec<usize> = (0..ops.len())
            .filter(|&i| plain_ops[i].1 && !ops[i].1)
            .collect();
        for &i in &skipped {
            let (op, before) = (ops[i].0.as_str(), ops[i - 1].0.as_str());
            let takes_over = match op {
                "MUL" => ["LOGISTIC"].contains(&before),
                _ => ["CONV_2D", "DEPTHWISE_CONV_2D"].contains(&before),
            };
            assert!(takes_over, "{file}: {op} after {before} did not run");
        }
        for &(name, count) in fused_away {
            let skipped_here = skipped.iter().filter(|&&i| ops[i].0 == name).count();
            assert_eq!(skipped_here, count, "{file}: {name} fused\n{ops:?}");
        }
    }
}
