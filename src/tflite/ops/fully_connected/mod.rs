//! FULLY_CONNECTED: every dimension of the input but the last is a row, times the weights
//! made ready once when prepared, on top of the bias. Float models multiply floats; quantized
//! ones integers ([`quantized`]).

mod hybrid;
mod quantized;

use super::fused_activation::Fused;
use super::{checked, f32_in, f32_out, options, Inputs, Op, Out};
use crate::nn::kernels::packed_gemm::PackedB;
use crate::tflite::schema::{BuiltinOptions, FullyConnectedOptionsWeightsFormat};
use crate::tflite::tensor::{DType, Tensor};
use hybrid::HybridFullyConnected;
use quantized::QuantizedFullyConnected;

pub(super) fn build(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    let o = options!(options, FullyConnectedOptions)
        .cloned()
        .unwrap_or_default();
    if o.weights_format != FullyConnectedOptionsWeightsFormat::Default {
        return Err("shuffled weight formats are not supported".into());
    }
    Ok(Box::new(FullyConnected {
        activation: Fused::new(o.fused_activation_function)?,
        keep_num_dims: o.keep_num_dims,
        asymmetric_inputs: o.asymmetric_quantize_inputs,
        rows: 0,
        kernel: None,
    }))
}

enum Kernel {
    Float(PackedB),
    Quantized(QuantizedFullyConnected),
    Hybrid(HybridFullyConnected),
}

struct FullyConnected {
    activation: Fused,
    keep_num_dims: bool,
    /// For dynamic-range weights: quantize each input row over its whole range, not
    /// symmetrically.
    asymmetric_inputs: bool,
    rows: usize,
    /// The weights and bias, made ready when first prepared (they are constants).
    kernel: Option<Kernel>,
}

impl Op for FullyConnected {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(2..=3)?;
        let x = inputs.get(0)?;
        let weights = inputs
            .value(1)
            .ok_or("the weights must be a constant (computed at run time here)")?;
        let &[units, depth] = &weights.shape[..] else {
            return Err(format!(
                "the weights must be 2-D (units, inputs), got {:?}",
                weights.shape
            ));
        };
        if units == 0 || depth == 0 {
            return Err(format!(
                "the weights have an empty shape {:?}",
                weights.shape
            ));
        }
        if self.kernel.is_none() {
            self.kernel = Some(match (x.dtype(), weights.dtype()) {
                (DType::F32, DType::I8) => Kernel::Hybrid(HybridFullyConnected::new(
                    inputs,
                    units,
                    depth,
                    self.activation,
                    self.asymmetric_inputs,
                )?),
                (DType::F32, _) => Kernel::Float(float_weights(inputs, units, depth)?),
                (DType::I8 | DType::U8, _) => Kernel::Quantized(QuantizedFullyConnected::new(
                    inputs,
                    units,
                    depth,
                    self.activation,
                )?),
                (other, _) => {
                    return Err(format!(
                        "petal runs FULLY_CONNECTED on FLOAT32, INT8 and UINT8, not {other}"
                    ))
                }
            });
        }
        let count = x.shape.iter().product::<usize>();
        if count == 0
            || count % depth != 0
            || (self.keep_num_dims && x.shape.last() != Some(&depth))
        {
            return Err(format!(
                "the input of shape {:?} does not split into rows of {depth} values",
                x.shape
            ));
        }
        let rows = count / depth;
        let shape = if self.keep_num_dims {
            let mut s = x.shape.clone();
            *s.last_mut().expect("checked non-empty") = units;
            s
        } else {
            vec![rows, units]
        };
        self.rows = rows;
        Ok(vec![Out::new(x.dtype(), checked(shape)?)])
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        match self.kernel.as_mut().ok_or("not prepared")? {
            Kernel::Float(weights) => {
                let x = f32_in(inputs, 0)?;
                let y = f32_out(outputs, 0)?;
                weights.multiply(x, self.rows, y, self.activation.range(), None);
                Ok(())
            }
            Kernel::Quantized(q) => {
                let x = inputs[0].ok_or("the input is missing")?;
                q.run(self.rows, &x.data, &mut outputs[0].data)
            }
            Kernel::Hybrid(h) => {
                h.run(self.rows, f32_in(inputs, 0)?, f32_out(outputs, 0)?);
                Ok(())
            }
        }
    }
}

fn float_weights(inputs: &Inputs, units: usize, depth: usize) -> Result<PackedB, String> {
    let (weights, _) = inputs.f32_constant(1, "weights")?;
    let bias = inputs.f32_bias(2, units)?;
    Ok(PackedB::new(weights, units, depth, bias))
}
