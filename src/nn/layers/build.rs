//! Building a layer from its config, as Keras pairs `from_config` with `get_config`: each layer
//! reads its own arguments (in its own file), checking each with a message that names it.

use super::augment::RandomLayer;
use super::{Conv2D, Dense, Dropout, Flatten, Layer, LayerConfig, MaxPooling2D, Pair, Rescaling};
use crate::nn::shape::Shape;
use std::fmt::Display;

/// What a layer is built with besides its arguments.
pub struct Build {
    pub name: String,
    pub input: Shape,
    /// Seeds initial weights, Dropout masks and augmentation draws when the config has no seed.
    pub seed: u32,
    /// How many more weights the model may hold: checked before any is allocated.
    pub room: usize,
}

impl Build {
    /// The image input's (height, width, channels), or why `what` cannot take this input.
    pub(crate) fn image(&self, what: &str) -> Result<(usize, usize, usize), String> {
        self.input.as_image().ok_or_else(|| {
            format!(
                "{what} needs image input (height, width, channels), got {}",
                self.input
            )
        })
    }

    /// A (height, width) argument whose parts must both be at least 1.
    pub(crate) fn positive(arg: &str, pair: Pair) -> Result<(usize, usize), String> {
        match pair.get() {
            (0, _) | (_, 0) => Err(format!(
                "argument `{arg}` must be at least 1, got {:?}",
                pair.get()
            )),
            sizes => Ok(sizes),
        }
    }

    /// Refuses `weights` (described as `described`) beyond the model's remaining room.
    pub(crate) fn check_room(&self, weights: usize, described: impl Display) -> Result<(), String> {
        if weights > self.room {
            return Err(format!(
                "{described} weights are more than the {} this model may still have",
                self.room
            ));
        }
        Ok(())
    }

    /// The error for a config of another layer kind handed to `kind`'s `from_config`.
    pub(crate) fn not_for(kind: &str, config: &LayerConfig) -> String {
        format!("a {} config cannot build a {kind} layer", config.kind())
    }
}

impl LayerConfig {
    /// The layer this config describes, built by its own `from_config`.
    pub fn build(&self, build: Build) -> Result<Box<dyn Layer>, String> {
        Ok(match self {
            LayerConfig::Rescaling { .. } => Box::new(Rescaling::from_config(self, build)?),
            LayerConfig::Conv2D { .. } => Box::new(Conv2D::from_config(self, build)?),
            LayerConfig::MaxPooling2D { .. } => Box::new(MaxPooling2D::from_config(self, build)?),
            LayerConfig::Flatten { .. } => Box::new(Flatten::from_config(self, build)?),
            LayerConfig::Dense { .. } => Box::new(Dense::from_config(self, build)?),
            LayerConfig::Dropout { .. } => Box::new(Dropout::from_config(self, build)?),
            LayerConfig::RandomFlip { .. }
            | LayerConfig::RandomRotation { .. }
            | LayerConfig::RandomZoom { .. }
            | LayerConfig::RandomTranslation { .. }
            | LayerConfig::RandomContrast { .. }
            | LayerConfig::RandomBrightness { .. } => {
                Box::new(RandomLayer::from_config(self, build)?)
            }
        })
    }
}
