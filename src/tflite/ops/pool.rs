//! MAX_POOL_2D on the native [`MaxPooling2D`] layer.

use super::{
    apply, batch_of, checked_image_output, f32_input, image_shape, native_padding, output_len,
    with_output, Io, Kernel,
};
use crate::nn::layers::{Layer, MaxPooling2D};
use crate::nn::Mode;
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
        let (input, out_shape, in_shape, activation) =
            (self.input, self.out_shape, self.in_shape, self.activation);
        let layer = &mut self.layer;
        with_output(tensors, self.output, |tensors, out| {
            let batch = batch_of(&tensors[input], &in_shape, "input")?;
            let x = f32_input(tensors, input, "input")?;
            let shape = vec![batch, out_shape[0], out_shape[1], out_shape[2]];
            let len = output_len(&shape)?;
            let y = out.f32_mut(shape, len);
            layer.forward(x, y, batch, Mode::Infer);
            apply(activation, y);
            Ok(())
        })
    }
}
