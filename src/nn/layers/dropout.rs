use super::{Build, Layer, LayerConfig, Mode};
use crate::nn::shape::Shape;
use crate::split_mix::SplitMix64;

/// Dropout: in training, zeroes each value with probability `rate` and scales the rest by
/// 1 / (1 - rate); at inference, the identity.
pub struct Dropout {
    name: String,
    shape: Shape,
    rate: f32,
    seed: Option<u32>,
    /// Two 32-bit draws per step: a training step of the tutorial's augmented model draws a
    /// million mask values, where Mersenne Twister's cost showed.
    rng: SplitMix64,
    /// The last training pass's multipliers (0 or 1 / (1 - rate)).
    mask: Vec<f32>,
}

impl Dropout {
    pub(crate) fn from_config(config: &LayerConfig, b: Build) -> Result<Self, String> {
        let LayerConfig::Dropout { rate, seed, .. } = *config else {
            return Err(Build::not_for("Dropout", config));
        };
        if !(0.0..1.0).contains(&rate) {
            return Err(format!("argument `rate` must be in [0, 1), got {rate}"));
        }
        Ok(Dropout::new(b.name, b.input, rate, seed, b.seed))
    }

    pub fn new(
        name: String,
        shape: Shape,
        rate: f32,
        seed: Option<u32>,
        fallback_seed: u32,
    ) -> Self {
        let rng = SplitMix64(u64::from(seed.unwrap_or(fallback_seed)));
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
        self.mask.resize(n, 0.0);
        for pair in self.mask.chunks_mut(2) {
            let bits = self.rng.next();
            for (m, draw) in pair.iter_mut().zip([bits & 0xffff_ffff, bits >> 32]) {
                *m = if draw < threshold { 0.0 } else { keep };
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_rate_and_scales_the_rest_in_training_only() {
        let n = 20_000;
        let mut layer = Dropout::new("dropout".into(), Shape::Vector(n), 0.3, Some(7), 0);
        let x = vec![2.0; n];
        let mut y = vec![0.0; n];
        layer.forward(&x, &mut y, 1, Mode::Train);
        let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
        assert!((dropped - 0.3).abs() < 0.02, "dropped {dropped}");
        assert!(y.iter().all(|&v| v == 0.0 || (v - 2.0 / 0.7).abs() < 1e-6));
        let mut dx = vec![0.0; n];
        layer.backward(&x, &y, &mut vec![1.0; n], Some(&mut dx), 1);
        assert!(dx.iter().zip(&y).all(|(&d, &v)| (d == 0.0) == (v == 0.0)));
        let mut again = vec![0.0; n];
        layer.forward(&x, &mut again, 1, Mode::Train);
        assert_ne!(again, y, "a new mask each step");
        layer.forward(&x, &mut y, 1, Mode::Infer);
        assert_eq!(y, x);
    }
}
