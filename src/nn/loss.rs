//! Sparse categorical cross-entropy (Keras's loss for integer labels) and accuracy.

/// Totals over a batch: summed loss and how many predictions were right.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchScore {
    pub loss_sum: f64,
    pub correct: usize,
    pub count: usize,
}

impl std::ops::AddAssign for BatchScore {
    fn add_assign(&mut self, other: Self) {
        self.loss_sum += other.loss_sum;
        self.correct += other.correct;
        self.count += other.count;
    }
}

impl BatchScore {
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.count.max(1) as f64
    }

    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.count.max(1) as f64
    }
}

/// Keras clips probabilities to [ε, 1 − ε] with its backend epsilon.
const EPSILON: f32 = 1e-7;

/// Scores `outputs` (`labels.len()` rows of `classes` values: logits, or probabilities when
/// `from_logits` is false) and, if `grad` is given, writes d(mean loss)/d outputs into it.
pub fn sparse_categorical_crossentropy(
    outputs: &[f32],
    labels: &[i32],
    classes: usize,
    from_logits: bool,
    mut grad: Option<&mut [f32]>,
) -> BatchScore {
    let batch = labels.len();
    let mut score = BatchScore {
        count: batch,
        ..Default::default()
    };
    for (n, &label) in labels.iter().enumerate() {
        let row = &outputs[n * classes..(n + 1) * classes];
        let label = label as usize;
        let predicted = row
            .iter()
            .enumerate()
            .fold(0, |best, (i, &v)| if v > row[best] { i } else { best });
        score.correct += usize::from(predicted == label);
        let grad_row = grad
            .as_deref_mut()
            .map(|g| &mut g[n * classes..(n + 1) * classes]);
        score.loss_sum += if from_logits {
            logits_loss(row, label, batch, grad_row)
        } else {
            probabilities_loss(row, label, batch, grad_row)
        };
    }
    score
}

fn logits_loss(row: &[f32], label: usize, batch: usize, grad: Option<&mut [f32]>) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&v| ((v - max) as f64).exp()).sum();
    let log_sum = sum.ln() + max as f64;
    if let Some(grad) = grad {
        for (i, (g, &v)) in grad.iter_mut().zip(row).enumerate() {
            let p = ((v as f64 - log_sum).exp()) as f32;
            *g = (p - f32::from(u8::from(i == label))) / batch as f32;
        }
    }
    log_sum - row[label] as f64
}

fn probabilities_loss(row: &[f32], label: usize, batch: usize, grad: Option<&mut [f32]>) -> f64 {
    let sum: f32 = row.iter().sum();
    let p = (row[label] / sum).clamp(EPSILON, 1.0 - EPSILON);
    if let Some(grad) = grad {
        let clipped = !(EPSILON..=1.0 - EPSILON).contains(&(row[label] / sum));
        for (i, g) in grad.iter_mut().enumerate() {
            let own = if i == label && !clipped {
                1.0 / row[label]
            } else {
                0.0
            };
            *g = if clipped {
                0.0
            } else {
                (1.0 / sum - own) / batch as f32
            };
        }
    }
    -(p as f64).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_logits_cost_log_classes() {
        let score = sparse_categorical_crossentropy(&[0.0; 10], &[1, 3], 5, true, None);
        assert!((score.loss() - 5f64.ln()).abs() < 1e-6);
    }

    #[test]
    fn accuracy_counts_argmax_hits() {
        let outputs = [0.1, 0.9, 0.8, 0.2, 0.3, 0.7];
        let score = sparse_categorical_crossentropy(&outputs, &[1, 1, 1], 2, true, None);
        assert_eq!((score.correct, score.count), (2, 3));
    }

    #[test]
    fn gradients_match_finite_differences() {
        let outputs = [0.2f32, -0.4, 1.1, 0.3, 0.35, 0.25, 0.4, 0.3];
        let labels = [2, 0];
        for (from_logits, rows) in [
            (true, &outputs[..]),
            (false, &[0.2, 0.5, 0.3, 0.6, 0.1, 0.3][..]),
        ] {
            let classes = rows.len() / 2;
            let mut grad = vec![0.0; rows.len()];
            sparse_categorical_crossentropy(rows, &labels, classes, from_logits, Some(&mut grad));
            for i in 0..rows.len() {
                let h = 1e-3;
                let (mut plus, mut minus) = (rows.to_vec(), rows.to_vec());
                plus[i] += h;
                minus[i] -= h;
                let f = |o: &[f32]| {
                    sparse_categorical_crossentropy(o, &labels, classes, from_logits, None).loss()
                };
                let numeric = (f(&plus) - f(&minus)) / (2.0 * h as f64);
                assert!(
                    (numeric - grad[i] as f64).abs() < 1e-3,
                    "{from_logits} {i}: {numeric} vs {}",
                    grad[i]
                );
            }
        }
    }
}
