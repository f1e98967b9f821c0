//! RandomBrightness: adds one random amount to every value of an image.

use super::factor::{base_range, uniform};
use super::random_contrast::checked_value_range;
use super::{Augmentation, ImageSize, Transform};
use crate::data::numpy_rng::RandomState;
use crate::nn::layers::{Factor, LayerConfig};

pub struct Brightness {
    factor: Factor,
    bounds: (f32, f32),
    value_range: [f32; 2],
}

impl Brightness {
    pub fn new(factor: Factor, value_range: [f32; 2]) -> Result<Self, String> {
        Ok(Brightness {
            factor,
            bounds: base_range(factor, "factor", [-1.0, 1.0])?,
            value_range: checked_value_range(value_range)?,
        })
    }
}

impl Augmentation for Brightness {
    fn config(&self, name: String, seed: Option<u32>) -> LayerConfig {
        LayerConfig::RandomBrightness {
            factor: self.factor,
            value_range: self.value_range,
            seed,
            name: Some(name),
        }
    }

    /// The draw is a fraction of the value range: -1 turns an image black, 1 white.
    fn draw(&self, rng: &mut RandomState, _size: ImageSize) -> Transform {
        let [low, high] = self.value_range;
        Transform::Values {
            scale: 1.0,
            mean_weight: 0.0,
            shift: uniform(rng, self.bounds) * (high - low),
            range: self.value_range,
        }
    }
}
