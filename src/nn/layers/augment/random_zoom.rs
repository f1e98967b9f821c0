//! RandomZoom: scales each image about its centre; positive factors zoom out.

use super::factor::{symmetric_range, uniform};
use super::{Affine, Augmentation, ImageSize, Sampling, Transform};
use crate::data::numpy_rng::RandomState;
use crate::nn::layers::{Factor, LayerConfig};

pub struct Zoom {
    height_factor: Factor,
    width_factor: Option<Factor>,
    height: (f32, f32),
    width: Option<(f32, f32)>,
    sampling: Sampling,
}

impl Zoom {
    pub fn new(
        height_factor: Factor,
        width_factor: Option<Factor>,
        sampling: Sampling,
    ) -> Result<Self, String> {
        let allowed = |v: f32| v > -1.0 && v <= 1.0;
        let height = symmetric_range(height_factor, "height_factor", allowed, "(-1, 1]")?;
        let width = width_factor
            .map(|f| symmetric_range(f, "width_factor", allowed, "(-1, 1]"))
            .transpose()?;
        Ok(Zoom {
            height_factor,
            width_factor,
            height,
            width,
            sampling,
        })
    }
}

impl Augmentation for Zoom {
    fn config(&self, name: String, seed: Option<u32>) -> LayerConfig {
        LayerConfig::RandomZoom {
            height_factor: self.height_factor,
            width_factor: self.width_factor,
            fill_mode: self.sampling.fill_mode,
            interpolation: self.sampling.interpolation,
            fill_value: self.sampling.fill_value,
            seed,
            name: Some(name),
        }
    }

    /// Keras's zoom matrix: each axis scaled by 1 + its draw about the image's centre; without
    /// a width factor the width takes the height's draw.
    fn draw(&self, rng: &mut RandomState, size: ImageSize) -> Transform {
        let zoom_y = 1.0 + uniform(rng, self.height);
        let zoom_x = self.width.map_or(zoom_y, |w| 1.0 + uniform(rng, w));
        let x_offset = (size.width as f32 - 1.0) / 2.0 * (1.0 - zoom_x);
        let y_offset = (size.height as f32 - 1.0) / 2.0 * (1.0 - zoom_y);
        Transform::Geometric {
            map: Affine([zoom_x, 0.0, x_offset, 0.0, zoom_y, y_offset]),
            sampling: Some(self.sampling),
        }
    }
}
