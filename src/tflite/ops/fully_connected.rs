//! FULLY_CONNECTED: every dimension of the input but the last is a row, times the transposed
//! weights in one GEMM, on top of the bias.

use super::fused_activation::Fused;
use super::{checked, f32_in, f32_out, options, Inputs, Op, Out};
use crate::nn::kernels::gemm::{matmul, Mat, Threads};
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
        sizes: (0, 0, 0),
    }))
}

struct FullyConnected {
    activation: Fused,
    keep_num_dims: bool,
    /// Rows, inputs, units.
    sizes: (usize, usize, usize),
}

impl Op for FullyConnected {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(2..=3)?;
        let x = inputs.f32(0, "input")?;
        let (_, shape) = inputs.f32_constant(1, "weights")?;
        let &[units, depth] = shape else {
            return Err(format!(
                "the weights must be 2-D (units, inputs), got {shape:?}"
            ));
        };
        if units == 0 || depth == 0 {
            return Err(format!("the weights have an empty shape {shape:?}"));
        }
        if inputs.optional(2).is_some() {
            let (_, bias_shape) = inputs.f32_constant(2, "bias")?;
            if bias_shape != [units] {
                return Err(format!(
                    "the bias has shape {bias_shape:?}, expected [{units}]"
                ));
            }
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
        self.sizes = (rows, depth, units);
        Ok(vec![Out::f32(checked(shape)?)])
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        let (rows, depth, units) = self.sizes;
        let (x, w) = (f32_in(inputs, 0)?, f32_in(inputs, 1)?);
        let bias = inputs.get(2).copied().flatten().and_then(Tensor::as_f32);
        let y = f32_out(outputs, 0)?;
        if let Some(bias) = bias {
            y.chunks_exact_mut(units)
                .for_each(|row| row.copy_from_slice(bias));
        }
        let weights = Mat::new(w, units, depth).t();
        matmul(
            y,
            Mat::new(x, rows, depth),
            weights,
            bias.is_some(),
            Threads::All,
        );
        self.activation.apply(y);
        Ok(())
    }
}
