//! The tutorial's models, built from the same descriptions a user can write.

use super::activation::Activation;
use super::layers::{LayerConfig, Padding, Pair};
use super::model::ModelConfig;
use crate::{Error, Result};

pub const NAMES: [&str; 1] = ["tutorial"];

/// `name` for `classes` classes and `height × width` RGB input.
pub fn preset(name: &str, height: usize, width: usize, classes: usize) -> Result<ModelConfig> {
    match name {
        "tutorial" => Ok(tutorial(height, width, classes)),
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
