//! Layer arguments as Keras names them, readable from model description files (JSON).

use crate::nn::activation::Activation;
use serde::{Deserialize, Serialize};

/// An integer or a (height, width) pair, as Keras accepts for kernel sizes, strides and pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Pair {
    Same(usize),
    Two([usize; 2]),
}

impl Pair {
    pub fn get(self) -> (usize, usize) {
        match self {
            Pair::Same(v) => (v, v),
            Pair::Two([h, w]) => (h, w),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Padding {
    #[default]
    Valid,
    Same,
}

fn one() -> Pair {
    Pair::Same(1)
}
fn two() -> Pair {
    Pair::Same(2)
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum LayerConfig {
    Rescaling {
        scale: f32,
        #[serde(default)]
        offset: f32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Conv2D {
        filters: usize,
        kernel_size: Pair,
        #[serde(default = "one")]
        strides: Pair,
        #[serde(default)]
        padding: Padding,
        #[serde(default)]
        activation: Activation,
        #[serde(default = "yes")]
        use_bias: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    MaxPooling2D {
        #[serde(default = "two")]
        pool_size: Pair,
        /// Defaults to the pool size, as in Keras.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strides: Option<Pair>,
        #[serde(default)]
        padding: Padding,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Flatten {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Dense {
        units: usize,
        #[serde(default)]
        activation: Activation,
        #[serde(default = "yes")]
        use_bias: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Dropout {
        rate: f32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
}

impl LayerConfig {
    /// Keras's class name, e.g. "Conv2D".
    pub fn kind(&self) -> &'static str {
        match self {
            LayerConfig::Rescaling { .. } => "Rescaling",
            LayerConfig::Conv2D { .. } => "Conv2D",
            LayerConfig::MaxPooling2D { .. } => "MaxPooling2D",
            LayerConfig::Flatten { .. } => "Flatten",
            LayerConfig::Dense { .. } => "Dense",
            LayerConfig::Dropout { .. } => "Dropout",
        }
    }

    /// The automatic name's stem, as Keras derives it ("conv2d", "max_pooling2d", …).
    pub fn name_stem(&self) -> &'static str {
        match self {
            LayerConfig::Rescaling { .. } => "rescaling",
            LayerConfig::Conv2D { .. } => "conv2d",
            LayerConfig::MaxPooling2D { .. } => "max_pooling2d",
            LayerConfig::Flatten { .. } => "flatten",
            LayerConfig::Dense { .. } => "dense",
            LayerConfig::Dropout { .. } => "dropout",
        }
    }

    /// Layers that only act while training (Dropout): an inference graph such as a TFLite export
    /// leaves them out.
    pub fn is_training_only(&self) -> bool {
        matches!(self, LayerConfig::Dropout { .. })
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            LayerConfig::Rescaling { name, .. }
            | LayerConfig::Conv2D { name, .. }
            | LayerConfig::MaxPooling2D { name, .. }
            | LayerConfig::Flatten { name }
            | LayerConfig::Dense { name, .. }
            | LayerConfig::Dropout { name, .. } => name.as_deref(),
        }
    }
}
