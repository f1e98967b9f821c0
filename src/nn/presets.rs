//! The tutorial's models, built from the same descriptions a user can write.

use super::activation::Activation;
use super::layers::{Factor, FillMode, FlipMode, LayerConfig, Padding, Pair};
use super::model::ModelConfig;
use crate::data::resize::Interpolation;
use crate::{Error, Result};

pub const NAMES: [&str; 2] = ["tutorial", "tutorial-augmented"];

/// `name` for `classes` classes and `height × width` RGB input.
pub fn preset(name: &str, height: usize, width: usize, classes: usize) -> Result<ModelConfig> {
    match name {
        "tutorial" => Ok(tutorial(height, width, classes)),
        "tutorial-augmented" => Ok(tutorial_augmented(height, width, classes)),
        _ => Err(Error::InvalidArgument(format!(
            "unknown preset {name:?}: known presets are {NAMES:?}"
        ))),
    }
}

fn conv(filters: usize) -> LayerConfig {
    LayerConfig::Conv2D {
        filters,
        kernel_size: Pair::Same(3),
        strides: Pair::Same(1),
        padding: Padding::Same,
        activation: Activation::Relu,
        use_bias: true,
        name: None,
    }
}

fn pool() -> LayerConfig {
    LayerConfig::MaxPooling2D {
        pool_size: Pair::Same(2),
        strides: None,
        padding: Padding::Valid,
        name: None,
    }
}

/// The tutorial's first model: rescaling, three conv/pool blocks, Dense(128), Dense(classes).
fn tutorial(height: usize, width: usize, classes: usize) -> ModelConfig {
    ModelConfig {
        input_shape: [height, width, 3],
        layers: vec![
            LayerConfig::Rescaling {
                scale: 1.0 / 255.0,
                offset: 0.0,
                name: None,
            },
            conv(16),
            pool(),
            conv(32),
            pool(),
            conv(64),
            pool(),
            LayerConfig::Flatten { name: None },
            LayerConfig::Dense {
                units: 128,
                activation: Activation::Relu,
                use_bias: true,
                name: None,
            },
            LayerConfig::Dense {
                units: classes,
                activation: Activation::Linear,
                use_bias: true,
                name: None,
            },
        ],
    }
}

/// The tutorial's data_augmentation block: RandomFlip("horizontal"), RandomRotation(0.1),
/// RandomZoom(0.1).
pub fn tutorial_augmentation() -> Vec<LayerConfig> {
    vec![
        LayerConfig::RandomFlip {
            mode: FlipMode::Horizontal,
            seed: None,
            name: None,
        },
        LayerConfig::RandomRotation {
            factor: Factor::Single(0.1),
            fill_mode: FillMode::Reflect,
            interpolation: Interpolation::Bilinear,
            fill_value: 0.0,
            seed: None,
            name: None,
        },
        LayerConfig::RandomZoom {
            height_factor: Factor::Single(0.1),
            width_factor: None,
            fill_mode: FillMode::Reflect,
            interpolation: Interpolation::Bilinear,
            fill_value: 0.0,
            seed: None,
            name: None,
        },
    ]
}

/// The tutorial's second model: augmentation in front, Dropout(0.2) before Flatten, and the
/// last layer named "outputs" (the name its TensorFlow Lite signature uses).
fn tutorial_augmented(height: usize, width: usize, classes: usize) -> ModelConfig {
    let base = tutorial(height, width, classes);
    let mut layers = tutorial_augmentation();
    for layer in base.layers {
        if matches!(layer, LayerConfig::Flatten { .. }) {
            layers.push(LayerConfig::Dropout {
                rate: 0.2,
                seed: None,
                name: None,
            });
        }
        layers.push(layer);
    }
    if let Some(LayerConfig::Dense { name, .. }) = layers.last_mut() {
        *name = Some("outputs".into());
    }
    ModelConfig {
        input_shape: base.input_shape,
        layers,
    }
}
