use super::*;
use crate::nn::loss::sparse_categorical_crossentropy;
use crate::nn::optim::{Optimizer, OptimizerConfig};

fn wave(n: usize, phase: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 * 0.731 + phase).sin() * 43.758).fract())
        .collect()
}

fn check_gradients(json: &str, batch: usize) {
    let config = ModelConfig::from_json(json).unwrap();
    let mut model = Sequential::new(&config, 3).unwrap();
    let x: Vec<f32> = wave(batch * model.input_shape().size(), 0.3)
        .iter()
        .map(|v| v * 255.0)
        .collect();
    let upstream = wave(batch * model.output_shape().size(), 1.7);
    let objective = |model: &mut Sequential| -> f64 {
        let y = model.forward(&x, batch, Mode::Train);
        y.iter()
            .zip(&upstream)
            .map(|(a, b)| (*a as f64) * (*b as f64))
            .sum()
    };
    objective(&mut model);
    model.backward(&x, &upstream, batch);
    let analytic: Vec<Vec<f32>> = model.params_mut().iter().map(|p| p.grad.clone()).collect();
    let mut checked = 0;
    for (pi, grads) in analytic.iter().enumerate() {
        for i in (0..grads.len()).step_by(grads.len().div_ceil(12)) {
            let h = 1e-2f32;
            let original = model.params_mut()[pi].value[i];
            model.params_mut()[pi].value[i] = original + h;
            let plus = objective(&mut model);
            model.params_mut()[pi].value[i] = original - h;
            let minus = objective(&mut model);
            model.params_mut()[pi].value[i] = original;
            let numeric = (plus - minus) / (2.0 * h as f64);
            let tolerance = 2e-2 * numeric.abs().max(1.0);
            assert!(
                (numeric - grads[i] as f64).abs() < tolerance,
                "param {pi} index {i}: numeric {numeric} vs analytic {}",
                grads[i]
            );
            checked += 1;
        }
    }
    assert!(checked > 20);
}

#[test]
fn conv_pool_dense_gradients_match_finite_differences() {
    check_gradients(
        r#"{"input_shape": [7, 6, 2], "layers": [
            {"type": "Rescaling", "scale": 0.00392156862745098},
            {"type": "Conv2D", "filters": 3, "kernel_size": 3, "padding": "same", "activation": "sigmoid"},
            {"type": "Conv2D", "filters": 4, "kernel_size": [2, 3], "strides": 2, "activation": "linear"},
            {"type": "MaxPooling2D", "pool_size": 2, "padding": "same"},
            {"type": "Flatten"},
            {"type": "Dense", "units": 5, "activation": "sigmoid"},
            {"type": "Dense", "units": 3, "activation": "softmax"}
        ]}"#,
        3,
    );
}

/// Two 16-filter convolutions with 2×2 pools: what the direct kernels fuse. Odd sizes leave
/// a row and a column out of every pool.
const FUSABLE: &str = r#"{"input_shape": [11, 13, 3], "layers": [
    {"type": "Rescaling", "scale": 0.00392156862745098},
    {"type": "Conv2D", "filters": 16, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"type": "MaxPooling2D"},
    {"type": "Conv2D", "filters": 16, "kernel_size": 3, "padding": "same", "activation": "linear"},
    {"type": "MaxPooling2D"},
    {"type": "Flatten"},
    {"type": "Dense", "units": 3}
]}"#;

#[test]
fn direct_conv_gradients_match_finite_differences() {
    // Without the pools and ReLU: finite differences across their kinks on this many units
    // are noisy. The fused pool is checked against the separate layers below.
    let smooth = FUSABLE
        .replace("relu", "linear")
        .replace(r#"{"type": "MaxPooling2D"},"#, "");
    check_gradients(&smooth, 3);
}

#[test]
fn fused_conv_and_pool_match_the_separate_layers() {
    let config = ModelConfig::from_json(FUSABLE).unwrap();
    let run = |fuse: bool, batch: usize| {
        let mut model = Sequential::new(&config, 5).unwrap();
        model.fuse_pools(fuse);
        let x: Vec<f32> = wave(batch * model.input_shape().size(), 0.1)
            .iter()
            .map(|v| v * 255.0 - 60.0)
            .collect();
        let y = model.forward(&x, batch, Mode::Train).to_vec();
        let upstream = wave(y.len(), 0.9);
        model.backward(&x, &upstream, batch);
        let grads: Vec<Vec<f32>> = model.params_mut().iter().map(|p| p.grad.clone()).collect();
        let fused = model
            .steps
            .iter()
            .filter(|s| matches!(s, Step::ConvPool { .. }))
            .count();
        (y, grads, fused)
    };
    for batch in [1, 4] {
        let (y, grads, fused) = run(true, batch);
        let (y_separate, grads_separate, _) = run(false, batch);
        assert_eq!(fused, 2);
        assert_eq!(y, y_separate);
        for (g, e) in grads.iter().zip(&grads_separate) {
            let worst = g
                .iter()
                .zip(e)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(worst < 1e-5, "gradients differ by {worst}");
        }
    }
}

#[test]
fn default_pool_on_odd_sizes_gradients_match() {
    check_gradients(
        r#"{"input_shape": [7, 5, 2], "layers": [
            {"type": "Rescaling", "scale": 0.00392156862745098},
            {"type": "Conv2D", "filters": 3, "kernel_size": 3, "padding": "same", "activation": "sigmoid"},
            {"type": "MaxPooling2D"},
            {"type": "Flatten"},
            {"type": "Dense", "units": 3}
        ]}"#,
        3,
    );
}

#[test]
fn relu_and_overlapping_pools_gradients_match() {
    check_gradients(
        r#"{"input_shape": [6, 6, 1], "layers": [
            {"type": "Conv2D", "filters": 2, "kernel_size": 3, "padding": "same", "activation": "relu"},
            {"type": "MaxPooling2D", "pool_size": 3, "strides": 1},
            {"type": "Conv2D", "filters": 2, "kernel_size": 1, "use_bias": false},
            {"type": "Flatten"},
            {"type": "Dropout", "rate": 0.0},
            {"type": "Dense", "units": 2}
        ]}"#,
        4,
    );
}

#[test]
fn one_image_alone_gives_the_same_outputs_as_in_a_batch() {
    // Batch 1 spreads an image's bands over the threads; larger batches give each thread
    // whole images: both must compute the same numbers (up to the dense layers' GEMM,
    // whose summation order depends on the batch size).
    let config = crate::nn::presets::preset("tutorial", 40, 36, 3).unwrap();
    let mut model = Sequential::new(&config, 5).unwrap();
    let x: Vec<f32> = wave(3 * 40 * 36 * 3, 0.1)
        .iter()
        .map(|v| v * 255.0)
        .collect();
    let batch = model.forward(&x, 3, Mode::Infer).to_vec();
    for n in 0..3 {
        let alone = model
            .forward(&x[n * 4320..(n + 1) * 4320], 1, Mode::Infer)
            .to_vec();
        for (a, b) in alone.iter().zip(&batch[n * 3..(n + 1) * 3]) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}

#[test]
fn tutorial_preset_has_keras_parameter_count_and_summary() {
    let config = crate::nn::presets::preset("tutorial", 180, 180, 5).unwrap();
    let model = Sequential::new(&config, 1).unwrap();
    assert_eq!(model.param_count(), 3_989_285);
    let summary = model.summary("sequential");
    assert!(summary.contains("conv2d_2 (Conv2D)"), "{summary}");
    assert!(
        summary.contains("(None, 22, 22, 64)") && summary.contains("(None, 30976)"),
        "{summary}"
    );
    assert!(
        summary.contains("3,965,056") && summary.contains("Total params: 3,989,285 (15.22 MB)"),
        "{summary}"
    );
    assert_eq!(
        Sequential::new(&model.config(), 1).unwrap().config(),
        model.config()
    );
}

#[test]
fn tutorial_augmented_preset_has_the_tutorials_layers_and_round_trips() {
    let config = crate::nn::presets::preset("tutorial-augmented", 180, 180, 5).unwrap();
    let model = Sequential::new(&config, 1).unwrap();
    assert_eq!(model.param_count(), 3_989_285);
    let summary = model.summary("sequential_1");
    for row in [
        "random_flip (RandomFlip)",
        "random_rotation (RandomRotation)",
        "random_zoom (RandomZoom)",
        "dropout (Dropout)",
        "outputs (Dense)",
    ] {
        assert!(summary.contains(row), "{row} missing from\n{summary}");
    }
    let json = model.config().to_json();
    let reread = ModelConfig::from_json(&json).unwrap();
    assert_eq!(
        Sequential::new(&reread, 1).unwrap().config(),
        model.config()
    );
}

#[test]
fn bad_descriptions_name_the_layer_and_argument() {
    let err = |json: &str| {
        ModelConfig::from_json(json)
            .and_then(|c| Sequential::new(&c, 0).map(|_| ()))
            .unwrap_err()
            .to_string()
    };
    let e = err(
        r#"{"input_shape": [8, 8, 3], "layers": [{"type": "Conv2D", "filterz": 3, "kernel_size": 3}]}"#,
    );
    assert!(
        e.contains("layer 1 (Conv2D)") && e.contains("filterz"),
        "{e}"
    );
    let e = err(r#"{"input_shape": [8, 8, 3], "layers": [{"type": "Conv3D"}]}"#);
    assert!(e.contains("Conv3D"), "{e}");
    let e = err(r#"{"input_shape": [8, 8, 3], "layers": [{"type": "Dense", "units": 4}]}"#);
    assert!(e.contains("Flatten"), "{e}");
    let e = err(
        r#"{"input_shape": [8, 8, 3], "layers": [{"type": "Flatten"}, {"type": "Dropout", "rate": 1.5}]}"#,
    );
    assert!(
        e.contains("layer 2 (Dropout \"dropout\")") && e.contains("rate"),
        "{e}"
    );
    let e = err(
        r#"{"input_shape": [2, 2, 3], "layers": [{"type": "Conv2D", "filters": 1, "kernel_size": 3}]}"#,
    );
    assert!(e.contains("does not fit"), "{e}");
    for (arg, json) in [
        (
            "fill_value",
            r#"{"type": "RandomZoom", "height_factor": 0.1, "fill_value": 1e39}"#,
        ),
        ("scale", r#"{"type": "Rescaling", "scale": 1e308}"#),
    ] {
        let e = err(&format!(
            r#"{{"input_shape": [8, 8, 3], "layers": [{json}]}}"#
        ));
        assert!(
            e.contains("layer 1") && e.contains(arg) && e.contains("32-bit"),
            "{e}"
        );
    }
}

#[test]
fn a_small_model_learns_a_small_problem() {
    // Bright top half → class 0, bright bottom half → class 1, with noise.
    let (h, w) = (8, 8);
    let batch = 32;
    let mut images = vec![0f32; batch * h * w];
    let labels: Vec<i32> = (0..batch).map(|n| (n % 2) as i32).collect();
    let noise = wave(batch * h * w, 0.9);
    for n in 0..batch {
        for y in 0..h {
            for x in 0..w {
                let bright = (y < h / 2) == (n % 2 == 0);
                let i = n * h * w + y * w + x;
                images[i] = if bright { 200.0 } else { 40.0 } + noise[i] * 50.0;
            }
        }
    }
    let config = ModelConfig::from_json(
        r#"{"input_shape": [8, 8, 1], "layers": [
            {"type": "Rescaling", "scale": 0.00392156862745098},
            {"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
            {"type": "MaxPooling2D"},
            {"type": "Flatten"},
            {"type": "Dense", "units": 2}
        ]}"#,
    )
    .unwrap();
    let mut model = Sequential::new(&config, 11).unwrap();
    let mut adam = Optimizer::new(OptimizerConfig::adam().with_learning_rate(0.01).unwrap());
    let mut grad = vec![0f32; batch * 2];
    let mut first_loss = None;
    let mut last = Default::default();
    for _ in 0..60 {
        let out = model.forward(&images, batch, Mode::Train).to_vec();
        last = sparse_categorical_crossentropy(&out, &labels, 2, true, Some(&mut grad));
        first_loss.get_or_insert(last.loss());
        model.backward(&images, &grad, batch);
        adam.apply(model.params_mut());
    }
    assert!(last.accuracy() == 1.0, "accuracy {}", last.accuracy());
    assert!(
        last.loss() < first_loss.unwrap() / 4.0,
        "{} → {}",
        first_loss.unwrap(),
        last.loss()
    );
}

#[test]
fn the_plan_groups_augmentation_and_fuses_conv_pool_pairs() {
    let config = crate::nn::presets::preset("tutorial-augmented", 36, 36, 5).unwrap();
    let mut model = Sequential::new(&config, 1).unwrap();
    let conv_pool = |conv| Step::ConvPool { conv };
    let tail = [10, 11, 12, 13].map(Step::Layer);
    let mut expected = vec![Step::Augment(0..3), Step::Layer(3)];
    expected.extend([conv_pool(4), conv_pool(6), conv_pool(8)]);
    expected.extend(tail.clone());
    assert_eq!(model.steps, expected);
    model.fuse_pools(false);
    let mut separate = vec![Step::Augment(0..3)];
    separate.extend((3..10).map(Step::Layer));
    separate.extend(tail);
    assert_eq!(model.steps, separate);
}

#[test]
fn batches_too_large_for_memory_are_refused_with_the_figures() {
    let config = ModelConfig::from_json(
        r#"{"input_shape": [4000, 4000, 3], "layers": [
            {"type": "Conv2D", "filters": 16, "kernel_size": 3, "padding": "same"}]}"#,
    )
    .unwrap();
    let model = Sequential::new(&config, 0).unwrap();
    let per_image = model.activation_bytes(1);
    assert_eq!(per_image, 3 * 4000 * 4000 * 16 * 4);
    let err = model.check_memory(100_000).unwrap_err().to_string();
    assert!(
        err.contains("lower --batch-size") && err.contains("per image"),
        "{err}"
    );
}
