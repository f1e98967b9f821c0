//! RandomTranslation: shifts each image by random fractions of its height and width.

use super::factor::{symmetric_range, uniform};
use super::{Affine, Augmentation, ImageSize, Sampling, Transform};
use crate::data::numpy_rng::RandomState;
use crate::nn::layers::{Factor, LayerConfig};

pub struct Translation {
    height_factor: Factor,
    width_factor: Factor,
    height: (f32, f32),
    width: (f32, f32),
    sampling: Sampling,
}

impl Translation {
    pub fn new(
        height_factor: Factor,
        width_factor: Factor,
        sampling: Sampling,
    ) -> Result<Self, String> {
        let allowed = |v: f32| (-1.0..=1.0).contains(&v);
        Ok(Translation {
            height_factor,
            width_factor,
            height: symmetric_range(height_factor, "height_factor", allowed, "[-1, 1]")?,
            width: symmetric_range(width_factor, "width_factor", allowed, "[-1, 1]")?,
            sampling,
        })
    }
}

impl Augmentation for Translation {
    fn config(&self, name: String, seed: Option<u32>) -> LayerConfig {
        LayerConfig::RandomTranslation {
            height_factor: self.height_factor,
            width_factor: self.width_factor,
            fill_mode: self.sampling.fill_mode,
            interpolation: self.sampling.interpolation,
            fill_value: self.sampling.fill_value,
            seed,
            name: Some(name),
        }
    }

    /// The content moves by (dx, dy) pixels, so output pixel p shows input p - (dx, dy).
    fn draw(&self, rng: &mut RandomState, size: ImageSize) -> Transform {
        let dy = uniform(rng, self.height) * size.height as f32;
        let dx = uniform(rng, self.width) * size.width as f32;
        Transform::Geometric {
            map: Affine([1.0, 0.0, -dx, 0.0, 1.0, -dy]),
            sampling: Some(self.sampling),
        }
    }
}
