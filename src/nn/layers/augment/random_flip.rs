//! RandomFlip: mirrors each image with probability one half.

use super::{Affine, Augmentation, ImageSize, Transform};
use crate::data::numpy_rng::RandomState;
use crate::nn::layers::{FlipMode, LayerConfig};

pub struct Flip {
    pub mode: FlipMode,
}

impl Augmentation for Flip {
    fn config(&self, name: String, seed: Option<u32>) -> LayerConfig {
        LayerConfig::RandomFlip {
            mode: self.mode,
            seed,
            name: Some(name),
        }
    }

    /// One draw per image, as in Keras 3: with "horizontal_and_vertical" an image is flipped
    /// along both axes or along neither.
    fn draw(&self, rng: &mut RandomState, size: ImageSize) -> Transform {
        if rng.uniform() > 0.5 {
            return Transform::Geometric {
                map: Affine::IDENTITY,
                sampling: None,
            };
        }
        let [mut a0, mut a2, mut b1, mut b2] = [1.0, 0.0, 1.0, 0.0];
        if self.mode != FlipMode::Vertical {
            (a0, a2) = (-1.0, size.width as f32 - 1.0);
        }
        if self.mode != FlipMode::Horizontal {
            (b1, b2) = (-1.0, size.height as f32 - 1.0);
        }
        Transform::Geometric {
            map: Affine([a0, 0.0, a2, 0.0, b1, b2]),
            sampling: None,
        }
    }
}
