//! Keras's default initialisers: Glorot (Xavier) uniform kernels, zero biases.

use crate::data::numpy_rng::RandomState;

/// Values uniform in ±sqrt(6 / (fan_in + fan_out)), drawn from a seeded generator.
pub fn glorot_uniform(len: usize, fan_in: usize, fan_out: usize, seed: u32) -> Vec<f32> {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    let mut rng = RandomState::new(seed);
    (0..len)
        .map(|_| {
            let unit = rng.next_u32() as f64 / 4_294_967_296.0;
            ((2.0 * unit - 1.0) * limit) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glorot_stays_within_its_limit_and_is_seeded() {
        let w = glorot_uniform(10_000, 27, 144, 5);
        let limit = (6.0f32 / 171.0).sqrt();
        assert!(w.iter().all(|v| v.abs() <= limit));
        let mean: f32 = w.iter().sum::<f32>() / w.len() as f32;
        assert!(mean.abs() < 0.01 * limit * 10.0);
        assert!(w.iter().any(|v| v.abs() > 0.9 * limit));
        assert_eq!(w, glorot_uniform(10_000, 27, 144, 5));
        assert_ne!(w, glorot_uniform(10_000, 27, 144, 6));
    }
}
