//! The image-classifier families TensorFlow's converter makes (MobileNet V1, V2, V3 Small and
//! Large, and stand-ins with EfficientNet's and ResNet's layer kinds), in float32 and float16,
//! against LiteRT's reference kernels on three flower photos (`scripts/make_tflite_family_fixtures.py`).

use petal::tflite::{npy, Interpreter, Tensor};
use std::path::Path;

const DIR: &str = "tests/golden/tflite/families";
/// max |petal − LiteRT| / max(1, max |LiteRT|) over the output, as the issue measures it.
const TOLERANCE: f32 = 1e-4;

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

#[test]
fn every_family_matches_litert_reference_kernels() {
    let dir = Path::new(DIR);
    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("families.json")).unwrap()).unwrap();
    let photos = npy::from_bytes(&std::fs::read(dir.join("photos_96.npy")).unwrap()).unwrap();
    let petal::tflite::Data::U8(pixels) = &photos.data else {
        panic!("photos are uint8")
    };
    let image_len: usize = photos.shape[1..].iter().product();
    let golden = golden.as_object().unwrap();
    assert_eq!(golden.len(), 12, "six families, float32 and float16");
    for (file, expect) in golden {
        let mut interpreter = Interpreter::from_file(&dir.join(file)).unwrap();
        interpreter.preserve_all_tensors(true);
        let logits_tensor = expect["logits_tensor"].as_u64().unwrap() as usize;
        let signature = interpreter.signature_list().remove(0);
        let input = &signature.inputs[0];
        let scale = expect["input_scale"].as_f64().unwrap() as f32;
        let offset = expect["input_offset"].as_f64().unwrap() as f32;
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
            let x = pixels[n * image_len..][..image_len]
                .iter()
                .map(|&p| p as f32 * scale + offset)
                .collect();
            let mut shape = vec![1];
            shape.extend_from_slice(&photos.shape[1..]);
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
