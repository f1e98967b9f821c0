//! Optimizers with Keras's update rules.

use super::layers::Param;
use crate::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Values per parallel piece of an Adam update.
const ADAM_CHUNK: usize = 1 << 16;

/// One Adam update's constants: Keras's α (the bias-corrected learning rate), β1, β2, ε.
#[derive(Clone, Copy)]
struct AdamStep {
    alpha: f32,
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
}

impl AdamStep {
    fn apply(self, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        adam_update(self, w, g, m, v)
    }

    #[inline(always)]
    fn apply_portable(self, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        let (b1, b2) = (self.beta_1, self.beta_2);
        for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m += (g - *m) * (1.0 - b1);
            *v += (g * g - *v) * (1.0 - b2);
            *w -= self.alpha * *m / (v.sqrt() + self.epsilon);
        }
    }
}

crate::nn::simd::compiled_per_level! {
    /// One Adam update, vectorised at the selected level (it is memory-bound: wider vectors
    /// mostly save instructions).
    fn adam_update(step: AdamStep, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) =
        AdamStep::apply_portable
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum OptimizerConfig {
    Adam {
        learning_rate: f32,
        beta_1: f32,
        beta_2: f32,
        epsilon: f32,
    },
    Sgd {
        learning_rate: f32,
        momentum: f32,
    },
}

impl OptimizerConfig {
    /// Keras's `Adam()` defaults.
    pub fn adam() -> Self {
        OptimizerConfig::Adam {
            learning_rate: 0.001,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
        }
    }

    /// Keras's `SGD()` defaults.
    pub fn sgd() -> Self {
        OptimizerConfig::Sgd {
            learning_rate: 0.01,
            momentum: 0.0,
        }
    }

    /// The same optimizer with learning rate `lr`, which must be finite, positive and at most
    /// [`MAX_LEARNING_RATE`]: a larger one overflows the weights within a step or two, and
    /// training would only save NaN.
    pub fn with_learning_rate(self, lr: f32) -> Result<Self> {
        if !(lr > 0.0 && lr <= MAX_LEARNING_RATE) {
            return Err(Error::InvalidArgument(format!(
                "the learning rate must be a number above 0 and at most {MAX_LEARNING_RATE}, not {lr}; Keras's defaults are 0.001 (Adam) and 0.01 (SGD)"
            )));
        }
        Ok(match self {
            OptimizerConfig::Adam {
                beta_1,
                beta_2,
                epsilon,
                ..
            } => OptimizerConfig::Adam {
                learning_rate: lr,
                beta_1,
                beta_2,
                epsilon,
            },
            OptimizerConfig::Sgd { momentum, .. } => OptimizerConfig::Sgd {
                learning_rate: lr,
                momentum,
            },
        })
    }
}

/// The largest learning rate petal accepts (Keras accepts any; above this none trains).
pub const MAX_LEARNING_RATE: f32 = 10.0;

/// An optimizer's state (moments, step count), one slot per parameter in model order.
pub struct Optimizer {
    config: OptimizerConfig,
    step: i32,
    first: Vec<Vec<f32>>,
    second: Vec<Vec<f32>>,
}

impl Optimizer {
    pub fn new(config: OptimizerConfig) -> Self {
        Optimizer {
            config,
            step: 0,
            first: Vec::new(),
            second: Vec::new(),
        }
    }

    /// Updates every parameter from its gradient.
    pub fn apply(&mut self, params: Vec<&mut Param>) {
        if self.first.len() != params.len() {
            self.first = params.iter().map(|p| vec![0.0; p.value.len()]).collect();
            self.second = self.first.clone();
        }
        self.step += 1;
        match self.config {
            OptimizerConfig::Adam {
                learning_rate,
                beta_1,
                beta_2,
                epsilon,
            } => {
                // Keras: alpha = lr · sqrt(1 − β2^t) / (1 − β1^t); m += (g − m)(1 − β1);
                // v += (g² − v)(1 − β2); w −= alpha · m / (sqrt(v) + ε).
                let t = self.step;
                let alpha = learning_rate as f64 * (1.0 - (beta_2 as f64).powi(t)).sqrt()
                    / (1.0 - (beta_1 as f64).powi(t));
                let step = AdamStep {
                    alpha: alpha as f32,
                    beta_1,
                    beta_2,
                    epsilon,
                };
                for ((p, m), v) in params
                    .into_iter()
                    .zip(&mut self.first)
                    .zip(&mut self.second)
                {
                    // Chunks over the worker threads: the Dense kernel alone has 4 M values.
                    p.value
                        .par_chunks_mut(ADAM_CHUNK)
                        .zip(p.grad.par_chunks(ADAM_CHUNK))
                        .zip(m.par_chunks_mut(ADAM_CHUNK))
                        .zip(v.par_chunks_mut(ADAM_CHUNK))
                        .for_each(|(((w, g), m), v)| step.apply(w, g, m, v));
                }
            }
            OptimizerConfig::Sgd {
                learning_rate,
                momentum,
            } => {
                for (p, velocity) in params.into_iter().zip(&mut self.first) {
                    for ((w, &g), u) in p.value.iter_mut().zip(&p.grad).zip(velocity.iter_mut()) {
                        *u = momentum * *u - learning_rate * g;
                        *w += *u;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_first_step_moves_by_the_learning_rate() {
        // With bias correction, the first Adam step is lr · g / (|g| + ε') ≈ lr · sign(g).
        let mut p = Param::new("kernel", vec![2], vec![1.0, 1.0]);
        p.grad = vec![0.5, -2.0];
        let mut adam = Optimizer::new(OptimizerConfig::adam());
        adam.apply(vec![&mut p]);
        assert!(
            (p.value[0] - 0.999).abs() < 1e-6 && (p.value[1] - 1.001).abs() < 1e-6,
            "{:?}",
            p.value
        );
    }

    #[test]
    fn adam_matches_keras_second_step() {
        // Keras 3: w = 1.0, g = 0.5 then 0.25, default Adam → after two steps.
        let mut p = Param::new("w", vec![1], vec![1.0]);
        let mut adam = Optimizer::new(OptimizerConfig::adam());
        p.grad = vec![0.5];
        adam.apply(vec![&mut p]);
        p.grad = vec![0.25];
        adam.apply(vec![&mut p]);
        let (m, v) = (
            0.1f64 * 0.5 * 0.9 + 0.1 * 0.25,
            0.001f64 * 0.25 * 0.999 + 0.001 * 0.0625,
        );
        let alpha = 0.001 * (1.0 - 0.999f64.powi(2)).sqrt() / (1.0 - 0.9f64.powi(2));
        let expected = 1.0 - 0.001 - alpha * m / (v.sqrt() + 1e-7);
        assert!(
            (p.value[0] as f64 - expected).abs() < 1e-6,
            "{} vs {expected}",
            p.value[0]
        );
    }

    #[test]
    fn sgd_with_momentum_accumulates_velocity() {
        let mut p = Param::new("w", vec![1], vec![0.0]);
        let mut sgd = Optimizer::new(OptimizerConfig::Sgd {
            learning_rate: 0.1,
            momentum: 0.9,
        });
        p.grad = vec![1.0];
        sgd.apply(vec![&mut p]);
        sgd.apply(vec![&mut p]);
        assert!((p.value[0] - (-0.1 - 0.19)).abs() < 1e-6);
    }
}
