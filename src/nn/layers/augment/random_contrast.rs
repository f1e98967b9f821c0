//! RandomContrast: pushes each image's values away from (or towards) their channel means.

use super::factor::{base_range, uniform};
use super::{Augmentation, ImageSize, Transform};
use crate::data::numpy_rng::RandomState;
use crate::nn::layers::{Factor, LayerConfig};

pub struct Contrast {
    factor: Factor,
    /// The draw's range is 1 - lower .. 1 + upper.
    bounds: (f32, f32),
    value_range: [f32; 2],
}

impl Contrast {
    pub fn new(factor: Factor, value_range: [f32; 2]) -> Result<Self, String> {
        Ok(Contrast {
            factor,
            bounds: base_range(factor, "factor", [0.0, 1.0])?,
            value_range: checked_value_range(value_range)?,
        })
    }
}

/// A finite, non-empty [low, high] in either order, as Keras sorts it.
pub(super) fn checked_value_range([a, b]: [f32; 2]) -> Result<[f32; 2], String> {
    if a.is_finite() && b.is_finite() && a != b {
        Ok([a.min(b), a.max(b)])
    } else {
        Err(format!(
            "argument `value_range` must be two different finite numbers, got [{a}, {b}]"
        ))
    }
}

impl Augmentation for Contrast {
    fn config(&self, name: String, seed: Option<u32>) -> LayerConfig {
        LayerConfig::RandomContrast {
            factor: self.factor,
            value_range: self.value_range,
            seed,
            name: Some(name),
        }
    }

    /// `(x - mean) · f + mean` per channel, clipped to the value range.
    fn draw(&self, rng: &mut RandomState, _size: ImageSize) -> Transform {
        let f = uniform(rng, (1.0 - self.bounds.0, 1.0 + self.bounds.1));
        Transform::Values {
            scale: f,
            mean_weight: 1.0 - f,
            shift: 0.0,
            range: self.value_range,
        }
    }
}
