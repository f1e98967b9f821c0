//! SOFTMAX over the last axis, with `beta`: exp(β(x − max)) / Σ, as TensorFlow Lite computes it.

use super::{f32_in, f32_out, options, Inputs, Op, Out};
use crate::tflite::schema::BuiltinOptions;
use crate::tflite::tensor::Tensor;

pub(super) fn build(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    let beta = options!(options, SoftmaxOptions).map_or(1.0, |o| o.beta);
    Ok(Box::new(Softmax { beta, row: 0 }))
}

struct Softmax {
    beta: f32,
    row: usize,
}

impl Op for Softmax {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(1..=1)?;
        let x = inputs.f32(0, "input")?;
        self.row = match x.shape.last() {
            Some(&n) if n > 0 => n,
            _ => return Err(format!("cannot take a softmax over shape {:?}", x.shape)),
        };
        Ok(vec![Out::f32(x.shape.clone())])
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        let x = f32_in(inputs, 0)?;
        let y = f32_out(outputs, 0)?;
        for (x, y) in x.chunks_exact(self.row).zip(y.chunks_exact_mut(self.row)) {
            let max = x.iter().copied().fold(f32::MIN, f32::max);
            let mut sum = 0.0;
            for (y, &v) in y.iter_mut().zip(x) {
                *y = ((v - max) * self.beta).exp();
                sum += *y;
            }
            y.iter_mut().for_each(|y| *y /= sum);
        }
        Ok(())
    }
}
