//! CONV_2D on the native [`Conv2D`] layer (its direct or im2col kernels, bias and ReLU fused).

use super::{
    checked_image_output, image_shape, native, native_padding, run_image_layer, Io, Kernel,
};
use crate::nn::layers::conv2d::Conv2DSpec;
use crate::nn::layers::Conv2D;
use crate::tflite::options::{Fused, Padding};
use crate::tflite::tensor::Tensor;

pub(super) struct Conv {
    layer: Conv2D,
    input: usize,
    output: usize,
    in_shape: [usize; 3],
    out_shape: [usize; 3],
}

impl Conv {
    pub(super) fn new(
        io: Io,
        name: String,
        stride: (usize, usize),
        padding: Padding,
        activation: Fused,
    ) -> Result<Self, String> {
        io.expect_inputs(2..=3)?;
        let input = io.input(0)?;
        let (h, w, c) = image_shape(io.shape(input), "input")?;
        let (filter, filter_shape) = io.constant_f32(1, "filter")?;
        let &[filters, kh, kw, fc] = filter_shape else {
            return Err(format!(
                "the filter must be 4-D (out, height, width, in), got {filter_shape:?}"
            ));
        };
        if fc != c || filters == 0 || kh == 0 || kw == 0 {
            return Err(format!(
                "the filter {filter_shape:?} does not fit the input's {c} channels"
            ));
        }
        let bias = match io.optional(2) {
            None => None,
            Some(_) => {
                let (bias, shape) = io.constant_f32(2, "bias")?;
                if shape != [filters] {
                    return Err(format!(
                        "the bias has shape {shape:?}, expected [{filters}]"
                    ));
                }
                Some(bias.to_vec())
            }
        };
        // TensorFlow Lite keeps filters as (out, kh, kw, in); the native kernel wants Keras's
        // (kh, kw, in, out).
        let mut kernel = vec![0.0; filter.len()];
        for (o, per_filter) in filter.chunks_exact(kh * kw * c).enumerate() {
            for (k, &v) in per_filter.iter().enumerate() {
                kernel[k * filters + o] = v;
            }
        }
        let spec = Conv2DSpec {
            filters,
            kernel: (kh, kw),
            strides: stride,
            padding: native_padding(padding),
            activation: native(activation),
            use_bias: bias.is_some(),
        };
        let layer = Conv2D::with_weights(name, (h, w, c), spec, kernel, bias).ok_or_else(|| {
            format!("a ({kh}, {kw}) filter does not fit the {h}×{w} input with VALID padding")
        })?;
        let out_shape = checked_image_output(&layer, &io, "convolution")?;
        Ok(Conv {
            layer,
            input,
            output: io.output,
            in_shape: [h, w, c],
            out_shape,
        })
    }
}

impl Kernel for Conv {
    fn run(&mut self, tensors: &mut [Tensor]) -> Result<(), String> {
        let ends = [self.input, self.output];
        let shapes = [self.in_shape, self.out_shape];
        // The native layer fuses bias and activation itself.
        run_image_layer(&mut self.layer, tensors, ends, shapes, Fused::None)
    }
}
