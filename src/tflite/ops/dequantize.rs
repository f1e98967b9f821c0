//! DEQUANTIZE to FLOAT32: FLOAT16 values (float16 models keep their weights so), and INT8,
//! UINT8 and INT16 values by their scales and zero points, per tensor or per channel.

use super::{Inputs, Op, Out};
use crate::tflite::schema::BuiltinOptions;
use crate::tflite::tensor::{dequantize_into, Data, Tensor};

pub(super) fn build(_: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    Ok(Box::new(Dequantize { inner: 1 }))
}

struct Dequantize {
    /// Values per step along the quantized axis (the product of the dimensions after it).
    inner: usize,
}

impl Op for Dequantize {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(1..=1)?;
        let x = inputs.get(0)?;
        match (&x.data, &x.quantization) {
            (Data::F16(_), _) => {}
            (Data::I8(_) | Data::U8(_) | Data::I16(_), Some(q)) => {
                self.inner = x.shape.get(q.axis + 1..).map_or(1, |s| s.iter().product());
            }
            _ => {
                return Err(format!(
                    "petal dequantizes FLOAT16, and quantized INT8, UINT8 and INT16; got {}{}",
                    x.dtype(),
                    if x.quantization.is_none() {
                        " without quantization"
                    } else {
                        ""
                    }
                ))
            }
        }
        Ok(vec![Out::f32(x.shape.clone())])
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        let x = inputs[0].ok_or("the input is missing")?;
        let Some(y) = outputs[0].as_f32_mut() else {
            return Err("the output is not the tensor prepared".into());
        };
        let inner = self.inner;
        let q = x.quantization.as_ref();
        match &x.data {
            Data::F16(v) => y.iter_mut().zip(v).for_each(|(y, v)| *y = v.to_f32()),
            Data::I8(v) => dequantize_into(v, q.ok_or("no quantization")?, inner, y),
            Data::U8(v) => dequantize_into(v, q.ok_or("no quantization")?, inner, y),
            Data::I16(v) => dequantize_into(v, q.ok_or("no quantization")?, inner, y),
            _ => return Err("the input is not of the type prepared".into()),
        }
        Ok(())
    }
}
