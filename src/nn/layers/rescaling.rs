use super::{Build, Layer, LayerConfig, Mode};
use crate::nn::shape::Shape;

/// Rescaling: `x * scale + offset`, e.g. 1/255 to bring pixels into 0..1.
pub struct Rescaling {
    name: String,
    shape: Shape,
    scale: f32,
    offset: f32,
}

impl Rescaling {
    pub(crate) fn from_config(config: &LayerConfig, b: Build) -> Result<Self, String> {
        let LayerConfig::Rescaling { scale, offset, .. } = *config else {
            return Err(Build::not_for("Rescaling", config));
        };
        Ok(Rescaling::new(b.name, b.input, scale, offset))
    }

    pub fn new(name: String, shape: Shape, scale: f32, offset: f32) -> Self {
        Rescaling {
            name,
            shape,
            scale,
            offset,
        }
    }
}

impl Layer for Rescaling {
    fn name(&self) -> &str {
        &self.name
    }

    fn config(&self) -> LayerConfig {
        LayerConfig::Rescaling {
            scale: self.scale,
            offset: self.offset,
            name: Some(self.name.clone()),
        }
    }

    fn output_shape(&self) -> Shape {
        self.shape
    }

    fn forward(&mut self, x: &[f32], y: &mut [f32], batch: usize, _mode: Mode) {
        let n = batch * self.shape.size();
        for (o, &v) in y[..n].iter_mut().zip(&x[..n]) {
            *o = v * self.scale + self.offset;
        }
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
            let n = batch * self.shape.size();
            for (d, &g) in dx[..n].iter_mut().zip(&dy[..n]) {
                *d = g * self.scale;
            }
        }
    }
}
