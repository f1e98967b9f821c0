//! Layer arguments as Keras names them, readable from model description files (JSON).

use crate::data::resize::Interpolation;
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

/// A number or a (lower, upper) pair: the range of an augmentation layer's random draw.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Factor {
    Single(f32),
    Range([f32; 2]),
}

/// Which axes RandomFlip may flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlipMode {
    Horizontal,
    Vertical,
    #[default]
    HorizontalAndVertical,
}

/// What geometric augmentations sample beyond the image's edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FillMode {
    /// d c b a | a b c d | d c b a
    #[default]
    Reflect,
    /// a b c d | a b c d | a b c d
    Wrap,
    /// k k k k | a b c d | k k k k, with k = fill_value
    Constant,
    /// a a a a | a b c d | d d d d
    Nearest,
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
fn byte_range() -> [f32; 2] {
    [0.0, 255.0]
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
    RandomFlip {
        #[serde(default)]
        mode: FlipMode,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// `factor` is a fraction of a full turn: 0.1 rotates by up to ±36°.
    RandomRotation {
        factor: Factor,
        #[serde(default)]
        fill_mode: FillMode,
        #[serde(default)]
        interpolation: Interpolation,
        #[serde(default)]
        fill_value: f32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Positive factors zoom out, negative zoom in; without `width_factor` the aspect is kept.
    RandomZoom {
        height_factor: Factor,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        width_factor: Option<Factor>,
        #[serde(default)]
        fill_mode: FillMode,
        #[serde(default)]
        interpolation: Interpolation,
        #[serde(default)]
        fill_value: f32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Factors are fractions of the height and width.
    RandomTranslation {
        height_factor: Factor,
        width_factor: Factor,
        #[serde(default)]
        fill_mode: FillMode,
        #[serde(default)]
        interpolation: Interpolation,
        #[serde(default)]
        fill_value: f32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    RandomContrast {
        factor: Factor,
        #[serde(default = "byte_range")]
        value_range: [f32; 2],
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    RandomBrightness {
        factor: Factor,
        #[serde(default = "byte_range")]
        value_range: [f32; 2],
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
            LayerConfig::RandomFlip { .. } => "RandomFlip",
            LayerConfig::RandomRotation { .. } => "RandomRotation",
            LayerConfig::RandomZoom { .. } => "RandomZoom",
            LayerConfig::RandomTranslation { .. } => "RandomTranslation",
            LayerConfig::RandomContrast { .. } => "RandomContrast",
            LayerConfig::RandomBrightness { .. } => "RandomBrightness",
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
            LayerConfig::RandomFlip { .. } => "random_flip",
            LayerConfig::RandomRotation { .. } => "random_rotation",
            LayerConfig::RandomZoom { .. } => "random_zoom",
            LayerConfig::RandomTranslation { .. } => "random_translation",
            LayerConfig::RandomContrast { .. } => "random_contrast",
            LayerConfig::RandomBrightness { .. } => "random_brightness",
        }
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            LayerConfig::Rescaling { name, .. }
            | LayerConfig::Conv2D { name, .. }
            | LayerConfig::MaxPooling2D { name, .. }
            | LayerConfig::Flatten { name }
            | LayerConfig::Dense { name, .. }
            | LayerConfig::Dropout { name, .. }
            | LayerConfig::RandomFlip { name, .. }
            | LayerConfig::RandomRotation { name, .. }
            | LayerConfig::RandomZoom { name, .. }
            | LayerConfig::RandomTranslation { name, .. }
            | LayerConfig::RandomContrast { name, .. }
            | LayerConfig::RandomBrightness { name, .. } => name.as_deref(),
        }
    }

    /// Random augmentation layers: they transform images in training only.
    pub fn is_augmentation(&self) -> bool {
        matches!(
            self,
            LayerConfig::RandomFlip { .. }
                | LayerConfig::RandomRotation { .. }
                | LayerConfig::RandomZoom { .. }
                | LayerConfig::RandomTranslation { .. }
                | LayerConfig::RandomContrast { .. }
                | LayerConfig::RandomBrightness { .. }
        )
    }

    /// Layers that are the identity at inference, and so are left out of exported models.
    pub fn is_training_only(&self) -> bool {
        self.is_augmentation() || matches!(self, LayerConfig::Dropout { .. })
    }
}
