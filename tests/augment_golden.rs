//! petal's geometric augmentation layers against Keras 3's, with factors pinned to one value so
//! each draw is certain (golden file made by `scripts/make_augment_golden.py`).

mod common;

use common::golden_dir;
use petal::nn::{Mode, ModelConfig, Sequential};
use serde_json::Value;

fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn pinned_rotations_zooms_and_translations_match_keras() {
    let text = std::fs::read_to_string(golden_dir().join("augment_keras.jsonl")).unwrap();
    let mut cases = 0;
    for line in text.lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        let description = serde_json::json!({
            "input_shape": case["shape"],
            "layers": [case["layer"]],
        });
        let config = ModelConfig::from_json(&description.to_string()).unwrap();
        let mut model = Sequential::new(&config, 1).unwrap();
        let input = floats(&case["input"]);
        let expected = floats(&case["output"]);
        let got = model.forward(&input, 1, Mode::Train);
        let worst = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst <= 1e-3,
            "{}: max difference {worst}\n petal {got:?}\n keras {expected:?}",
            case["layer"]
        );
        assert_eq!(
            model.forward(&input, 1, Mode::Infer),
            &input[..],
            "identity at inference"
        );
        cases += 1;
    }
    assert_eq!(cases, 17);
}
