//! RandomRotation: turns each image about its centre by a random angle.

use super::factor::{base_range, uniform};
use super::{Affine, Augmentation, ImageSize, Sampling, Transform};
use crate::data::numpy_rng::RandomState;
use crate::nn::layers::{Factor, LayerConfig};

pub struct Rotation {
    factor: Factor,
    /// Bounds of the angle as fractions of a full turn.
    turns: (f32, f32),
    sampling: Sampling,
}

impl Rotation {
    pub fn new(factor: Factor, sampling: Sampling) -> Result<Self, String> {
        let turns = base_range(factor, "factor", [-1.0, 1.0])?;
        Ok(Rotation {
            factor,
            turns,
            sampling,
        })
    }
}

impl Augmentation for Rotation {
    fn config(&self, name: String, seed: Option<u32>) -> LayerConfig {
        LayerConfig::RandomRotation {
            factor: self.factor,
            fill_mode: self.sampling.fill_mode,
            interpolation: self.sampling.interpolation,
            fill_value: self.sampling.fill_value,
            seed,
            name: Some(name),
        }
    }

    /// Keras's rotation matrix about ((width - 1) / 2, (height - 1) / 2), in float32 as Keras
    /// computes it.
    fn draw(&self, rng: &mut RandomState, size: ImageSize) -> Transform {
        let degrees = uniform(rng, (self.turns.0 * 360.0, self.turns.1 * 360.0));
        let radians = degrees * (std::f64::consts::PI / 180.0) as f32;
        let (sin, cos) = radians.sin_cos();
        let cx = 0.5 * (size.width as f32 - 1.0);
        let cy = 0.5 * (size.height as f32 - 1.0);
        let (a0, a1, b0, b1) = (cos, -sin, sin, cos);
        Transform::Geometric {
            map: Affine([
                a0,
                a1,
                cx - cx * a0 - cy * a1,
                b0,
                b1,
                cy - cx * b0 - cy * b1,
            ]),
            sampling: Some(self.sampling),
        }
    }
}
