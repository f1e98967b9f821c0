//! DEPTHWISE_CONV_2D on the engine's depthwise kernel.

use super::fused_activation::Fused;
use super::padding::window_axis;
use super::{checked, f32_in, f32_out, nhwc, options, Inputs, Op, Out};
use crate::nn::kernels::depthwise::Depthwise;
use crate::nn::simd::Level;
use crate::tflite::schema::{BuiltinOptions, DepthwiseConv2DOptions};
use crate::tflite::tensor::Tensor;

pub(super) fn build(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    let o = options!(options, DepthwiseConv2DOptions)
        .ok_or("its DepthwiseConv2DOptions are missing")?;
    Fused::new(o.fused_activation_function)?;
    Ok(Box::new(DepthwiseConv {
        options: o.clone(),
        kernel: None,
    }))
}

struct DepthwiseConv {
    options: DepthwiseConv2DOptions,
    kernel: Option<Depthwise>,
}

impl Op for DepthwiseConv {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(2..=3)?;
        let [n, h, w, c] = nhwc(inputs.f32(0, "input")?, "input")?;
        let (_, filter_shape) = inputs.f32_constant(1, "filter")?;
        let &[1, kh, kw, out_channels] = filter_shape else {
            return Err(format!(
                "the filter must be [1, height, width, channels], got {filter_shape:?}"
            ));
        };
        // TensorFlow Lite derives the multiplier from the shapes; the option may be stale.
        if c == 0 || out_channels == 0 || out_channels % c != 0 {
            return Err(format!(
                "the filter's {out_channels} channels are not a multiple of the input's {c}"
            ));
        }
        if inputs.optional(2).is_some() {
            let (_, bias_shape) = inputs.f32_constant(2, "bias")?;
            if bias_shape != [out_channels] {
                return Err(format!(
                    "the bias has shape {bias_shape:?}, expected [{out_channels}]"
                ));
            }
        }
        let o = &self.options;
        let rows = window_axis(h, kh, o.stride_h, o.dilation_h_factor, o.padding)?;
        let cols = window_axis(w, kw, o.stride_w, o.dilation_w_factor, o.padding)?;
        let out = checked(vec![n, rows.output, cols.output, out_channels])?;
        let activation = Fused::new(o.fused_activation_function)?;
        let (min, max) = activation.range();
        self.kernel = Some(Depthwise {
            rows,
            cols,
            channels: c,
            multiplier: out_channels / c,
            min,
            max,
            level: Level::selected(),
        });
        Ok(vec![Out::f32(out)])
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        let d = self.kernel.as_ref().ok_or("not prepared")?;
        let (x, filter) = (f32_in(inputs, 0)?, f32_in(inputs, 1)?);
        let bias = inputs.get(2).copied().flatten().and_then(Tensor::as_f32);
        let y = f32_out(outputs, 0)?;
        let image_len = d.rows.input * d.cols.input * d.channels;
        let out_len = d.rows.output * d.cols.output * d.out_channels();
        for (x, y) in x.chunks_exact(image_len).zip(y.chunks_exact_mut(out_len)) {
            d.run(x, filter, bias, y);
        }
        Ok(())
    }
}
