use super::{Layer, LayerConfig, Mode};
use crate::data::numpy_rng::RandomState;
use crate::nn::shape::Shape;

/// Dropout: in training, zeroes each value with probability `rate` and scales the rest by
/// 1 / (1 - rate); at inference, the identity.
pub struct Dropout {
    name: String,
    shape: Shape,
    rate: f32,
    seed: Option<u32>,
    rng: RandomState,
    /// The last training pass's multipliers (0 or 1 / (1 - rate)).
    mask: Vec<f32>,
}

impl Dropout {
    pub fn new(
        name: String,
        shape: Shape,
        rate: f32,
        seed: Option<u32>,
        fallback_seed: u32,
    ) -> Self {
        let rng = RandomState::new(seed.unwrap_or(fallback_seed));
        Dropout {
            name,
            shape,
            rate,
            seed,
            rng,
            mask: Vec::new(),
        }
    }
}

impl Layer for Dropout {
    fn name(&self) -> &str {
        &self.name
    }

    fn config(&self) -> LayerConfig {
        LayerConfig::Dropout {
            rate: self.rate,
            seed: self.seed,
            name: Some(self.name.clone()),
        }
    }

    fn output_shape(&self) -> Shape {
        self.shape
    }

    fn forward(&mut self, x: &[f32], y: &mut [f32], batch: usize, mode: Mode) {
        let n = batch * self.shape.size();
        if mode == Mode::Infer || self.rate == 0.0 {
            y[..n].copy_from_slice(&x[..n]);
            self.mask.clear();
            return;
        }
        let keep = 1.0 / (1.0 - self.rate);
        let threshold = (self.rate as f64 * 4_294_967_296.0) as u64;
        self.mask.clear();
        self.mask.extend((0..n).map(|_| {
            if (self.rng.next_u32() as u64) < threshold {
                0.0
            } else {
                keep
            }
        }));
        for ((o, &v), &m) in y[..n].iter_mut().zip(&x[..n]).zip(&self.mask) {
            *o = v * m;
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
        let Some(dx) = dx else { return };
        let n = batch * self.shape.size();
        if self.mask.len() != n {
            dx[..n].copy_from_slice(&dy[..n]);
            return;
        }
        for ((d, &g), &m) in dx[..n].iter_mut().zip(&dy[..n]).zip(&self.mask) {
            *d = g * m;
        }
    }
}
