//! SOFTMAX over the last axis, with `beta`: exp(β(x − max)) / Σ, as TensorFlow Lite computes it;
//! for int8 and uint8 in LiteRT's fixed point ([`quantized`]).

mod quantized;

use super::{f32_in, f32_out, options, Inputs, Op, Out};
use crate::tflite::schema::BuiltinOptions;
use crate::tflite::tensor::{DType, Tensor};
use quantized::QuantizedSoftmax;

pub(super) fn build(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    let beta = options!(options, SoftmaxOptions).map_or(1.0, |o| o.beta);
    Ok(Box::new(Softmax {
        beta,
        row: 0,
        quantized: None,
    }))
}

struct Softmax {
    beta: f32,
    row: usize,
    quantized: Option<QuantizedSoftmax>,
}

impl Op for Softmax {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(1..=1)?;
        let x = inputs.get(0)?;
        self.row = match x.shape.last() {
            Some(&n) if n > 0 => n,
            _ => return Err(format!("cannot take a softmax over shape {:?}", x.shape)),
        };
        self.quantized = match x.dtype() {
            DType::F32 => None,
            DType::I8 | DType::U8 => Some(QuantizedSoftmax::new(x, inputs.output(0)?, self.beta)?),
            other => {
                return Err(format!(
                    "petal runs SOFTMAX on FLOAT32, INT8 and UINT8, not {other}"
                ))
            }
        };
        Ok(vec![Out::new(x.dtype(), x.shape.clone())])
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        if let Some(q) = &self.quantized {
            let x = inputs[0].ok_or("the input is missing")?;
            return q.run(self.row, &x.data, &mut outputs[0].data);
        }
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
