use super::{Build, Layer, LayerConfig, Mode};
use crate::nn::shape::Shape;

/// Flatten: NHWC images are already laid out as Keras flattens them (row, column, channel).
pub struct Flatten {
    name: String,
    size: usize,
}

impl Flatten {
    pub(crate) fn from_config(config: &LayerConfig, b: Build) -> Result<Self, String> {
        let LayerConfig::Flatten { .. } = config else {
            return Err(Build::not_for("Flatten", config));
        };
        Ok(Flatten::new(b.name, b.input))
    }

    pub fn new(name: String, input: Shape) -> Self {
        Flatten {
            name,
            size: input.size(),
        }
    }
}

impl Layer for Flatten {
    fn name(&self) -> &str {
        &self.name
    }

    fn config(&self) -> LayerConfig {
        LayerConfig::Flatten {
            name: Some(self.name.clone()),
        }
    }

    fn output_shape(&self) -> Shape {
        Shape::Vector(self.size)
    }

    fn forward(&mut self, x: &[f32], y: &mut [f32], batch: usize, _mode: Mode) {
        y[..batch * self.size].copy_from_slice(&x[..batch * self.size]);
    }

    fn backward(
        &mut self,
        _x: &[f32],
        _y: &[f32],
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        batch: usize,
    ) {
        if let Some(dx) = dx {
            dx[..batch * self.size].copy_from_slice(&dy[..batch * self.size]);
        }
    }
}
