//! FULLY_CONNECTED: every dimension of the input but the last is a row, times the weights
//! packed once when prepared, on top of the bias.

use super::fused_activation::Fused;
use super::{checked, f32_in, f32_out, options, Inputs, Op, Out};
use crate::nn::kernels::packed_gemm::PackedB;
use crate::tflite::schema::{BuiltinOptions, FullyConnectedOptionsWeightsFormat};
use crate::tflite::tensor::Tensor;

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
        rows: 0,
        weights: None,
    }))
}

struct FullyConnected {
    activation: Fused,
    keep_num_dims: bool,
    rows: usize,
    /// The weights and bias, packed when first prepared (they are constants).
    weights: Option<PackedB>,
}

impl Op for FullyConnected {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(2..=3)?;
        let x = inputs.f32(0, "input")?;
        let (weights, shape) = inputs.f32_constant(1, "weights")?;
        let &[units, depth] = shape else {
            return Err(format!(
                "the weights must be 2-D (units, inputs), got {shape:?}"
            ));
        };
        if units == 0 || depth == 0 {
            return Err(format!("the weights have an empty shape {shape:?}"));
        }
        let bias = match inputs.optional(2) {
            None => None,
            Some(_) => {
                let (bias, bias_shape) = inputs.f32_constant(2, "bias")?;
                if bias_shape != [units] {
                    return Err(format!(
                        "the bias has shape {bias_shape:?}, expected [{units}]"
                    ));
                }
                Some(bias)
            }
        };
        if self.weights.is_none() {
            self.weights = Some(PackedB::new(weights, units, depth, bias));
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
        Ok(vec![Out::f32(checked(shape)?)])
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        let weights = self.weights.as_ref().ok_or("not prepared")?;
        let x = f32_in(inputs, 0)?;
        let y = f32_out(outputs, 0)?;
        weights.multiply(x, self.rows, y, self.activation.range());
        Ok(())
    }
}
