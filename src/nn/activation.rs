//! Activations fused into the layer that precedes them, applied row by row (a row is one pixel's
//! channels or one sample's units).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    Linear,
    Relu,
    Sigmoid,
    Softmax,
}

impl Activation {
    /// Applies the activation in place to consecutive rows of `row_len` values.
    pub fn forward(self, values: &mut [f32], row_len: usize) {
        match self {
            Activation::Linear => {}
            Activation::Relu => values.iter_mut().for_each(|v| *v = v.max(0.0)),
            Activation::Sigmoid => values
                .iter_mut()
                .for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
            Activation::Softmax => values.chunks_exact_mut(row_len).for_each(softmax_in_place),
        }
    }

    /// Turns `grad` (d loss / d output) into d loss / d pre-activation, given the outputs `y`.
    pub fn backward(self, y: &[f32], grad: &mut [f32], row_len: usize) {
        match self {
            Activation::Linear => {}
            Activation::Relu => {
                // A select, not a branch, so the loop vectorises.
                for (g, &v) in grad.iter_mut().zip(y) {
                    *g = if v > 0.0 { *g } else { 0.0 };
                }
            }
            Activation::Sigmoid => {
                for (g, &v) in grad.iter_mut().zip(y) {
                    *g *= v * (1.0 - v);
                }
            }
            Activation::Softmax => {
                for (g, y) in grad.chunks_exact_mut(row_len).zip(y.chunks_exact(row_len)) {
                    let dot: f32 = g.iter().zip(y).map(|(a, b)| a * b).sum();
                    g.iter_mut().zip(y).for_each(|(g, &y)| *g = y * (*g - dot));
                }
            }
        }
    }
}

pub fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    row.iter_mut().for_each(|v| *v /= sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_rows_sum_to_one_and_keep_order() {
        let mut v = vec![1.0, 2.0, 3.0, 1000.0, 1000.0, 1000.0];
        Activation::Softmax.forward(&mut v, 3);
        assert!((v[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(v[0] < v[1] && v[1] < v[2]);
        assert!(v[3..].iter().all(|&p| (p - 1.0 / 3.0).abs() < 1e-6));
    }

    #[test]
    fn backward_matches_finite_differences() {
        let x = [0.3f32, -1.2, 0.8, 2.0];
        let upstream = [0.5f32, -1.0, 0.25, 2.0];
        for act in [
            Activation::Relu,
            Activation::Sigmoid,
            Activation::Softmax,
            Activation::Linear,
        ] {
            let loss = |x: &[f32]| {
                let mut y = x.to_vec();
                act.forward(&mut y, 4);
                y.iter()
                    .zip(&upstream)
                    .map(|(a, b)| (a * b) as f64)
                    .sum::<f64>()
            };
            let mut y = x.to_vec();
            act.forward(&mut y, 4);
            let mut grad = upstream.to_vec();
            act.backward(&y, &mut grad, 4);
            for i in 0..4 {
                let h = 1e-3;
                let (mut plus, mut minus) = (x.to_vec(), x.to_vec());
                plus[i] += h;
                minus[i] -= h;
                let numeric = (loss(&plus) - loss(&minus)) / (2.0 * h as f64);
                assert!(
                    (numeric - grad[i] as f64).abs() < 1e-2,
                    "{act:?} {i}: {numeric} vs {}",
                    grad[i]
                );
            }
        }
    }
}
