//! FULLY_CONNECTED on the native [`Dense`] layer (one GEMM, bias and ReLU fused).

use super::{f32_input, native, output_len, with_output, Io, Kernel};
use crate::nn::layers::{Dense, Layer};
use crate::nn::Mode;
use crate::tflite::options::Fused;
use crate::tflite::tensor::Tensor;

pub(super) struct FullyConnected {
    layer: Dense,
    inputs: usize,
    units: usize,
    keep_num_dims: bool,
    input: usize,
    output: usize,
}

impl FullyConnected {
    pub(super) fn new(
        io: Io,
        name: String,
        activation: Fused,
        keep_num_dims: bool,
    ) -> Result<Self, String> {
        io.expect_inputs(2..=3)?;
        let input = io.input(0)?;
        let (weights, shape) = io.constant_f32(1, "weights")?;
        let &[units, inputs] = shape else {
            return Err(format!(
                "the weights must be 2-D (units, inputs), got {shape:?}"
            ));
        };
        if units == 0 || inputs == 0 {
            return Err(format!("the weights have an empty shape {shape:?}"));
        }
        let bias = match io.optional(2) {
            None => None,
            Some(_) => {
                let (bias, shape) = io.constant_f32(2, "bias")?;
                if shape != [units] {
                    return Err(format!("the bias has shape {shape:?}, expected [{units}]"));
                }
                Some(bias.to_vec())
            }
        };
        // TensorFlow Lite keeps (units, inputs); the native kernel wants Keras's (inputs, units).
        let mut kernel = vec![0.0; weights.len()];
        for (u, row) in weights.chunks_exact(inputs).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                kernel[i * units + u] = v;
            }
        }
        let layer = Dense::with_weights(name, inputs, units, native(activation), kernel, bias)
            .ok_or("the weights do not fit the layer")?;
        Ok(FullyConnected {
            layer,
            inputs,
            units,
            keep_num_dims,
            input,
            output: io.output,
        })
    }
}

impl Kernel for FullyConnected {
    fn run(&mut self, tensors: &mut [Tensor]) -> Result<(), String> {
        let (input, inputs, units, keep) =
            (self.input, self.inputs, self.units, self.keep_num_dims);
        let layer = &mut self.layer;
        with_output(tensors, self.output, |tensors, out| {
            let x = f32_input(tensors, input, "input")?;
            let in_shape = &tensors[input].shape;
            // Every dimension but the last is a row, as TensorFlow Lite flattens the input.
            let rows = x.len() / inputs;
            if x.is_empty() || x.len() % inputs != 0 || (keep && in_shape.last() != Some(&inputs)) {
                return Err(format!(
                    "the input of shape {in_shape:?} does not split into rows of {inputs} values"
                ));
            }
            let shape = if keep {
                let mut s = in_shape.clone();
                *s.last_mut().expect("checked non-empty") = units;
                s
            } else {
                vec![rows, units]
            };
            let len = output_len(&shape)?;
            let y = out.f32_mut(shape, len);
            layer.forward(x, y, rows, Mode::Infer);
            Ok(())
        })
    }
}
