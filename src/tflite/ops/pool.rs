//! MAX_POOL_2D on the native [`MaxPooling2D`] layer.

use super::{checked_image_output, image_shape, native_padding, run_image_layer, Io, Kernel};
use crate::nn::layers::MaxPooling2D;
use crate::tflite::options::{Fused, Padding};
use crate::tflite::tensor::Tensor;

pub(super) struct MaxPool {
    layer: MaxPooling2D,
    activation: Fused,
    input: usize,
    output: usize,
    in_shape: [usize; 3],
    out_shape: [usize; 3],
}

impl MaxPool {
    pub(super) fn new(
        io: Io,
        name: String,
        filter: (usize, usize),
        stride: (usize, usize),
        padding: Padding,
        activation: Fused,
    ) -> Result<Self, String> {
        io.expect_inputs(1..=1)?;
        let input = io.input(0)?;
        let (h, w, c) = image_shape(io.shape(input), "input")?;
        if filter.0 > h || filter.1 > w {
            return Err(format!(
                "a {filter:?} pool window is larger than the {h}×{w} input"
            ));
        }
        let layer = MaxPooling2D::new(name, (h, w, c), filter, stride, native_padding(padding))
            .ok_or_else(|| {
                format!("a {filter:?} pool does not fit the {h}×{w} input with VALID padding")
            })?;
        let out_shape = checked_image_output(&layer, &io, "pool")?;
        Ok(MaxPool {
            layer,
            activation,
            input,
            output: io.output,
            in_shape: [h, w, c],
            out_shape,
        })
    }
}

impl Kernel for MaxPool {
    fn run(&mut self, tensors: &mut [Tensor]) -> Result<(), String> {
        let ends = [self.input, self.output];
        let shapes = [self.in_shape, self.out_shape];
        run_image_layer(&mut self.layer, tensors, ends, shapes, self.activation)
    }
}
