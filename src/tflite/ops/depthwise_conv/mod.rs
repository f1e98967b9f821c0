//! DEPTHWISE_CONV_2D on the engine's depthwise kernels: float, or quantized ([`quantized`]).

mod hybrid;
mod quantized;

use super::fused_activation::Fused;
use super::padding::window_axis;
use super::{
    checked, f32_in, f32_out, nhwc, options, then_apply_of, DepthwiseStage, InPlace, Inputs, Op,
    Out,
};
use crate::nn::kernels::depthwise::Depthwise;
use crate::nn::kernels::ThenApply;
use crate::nn::simd::Level;
use crate::tflite::schema::{BuiltinOptions, DepthwiseConv2DOptions};
use crate::tflite::tensor::{DType, Tensor};
use hybrid::HybridDepthwiseConv;
use quantized::QuantizedDepthwiseConv;
use std::sync::Arc;

pub(super) fn build(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    let o = options!(options, DepthwiseConv2DOptions)
        .ok_or("its DepthwiseConv2DOptions are missing")?;
    Ok(Box::new(DepthwiseConv {
        options: o.clone(),
        activation: Fused::new(o.fused_activation_function)?,
        kernel: None,
        then: None,
    }))
}

enum Kernel {
    /// The geometry, the filter and the bias (copies of the constants, which a 1×1
    /// convolution before it may take over with it).
    Float(Depthwise, Arc<[f32]>, Option<Arc<[f32]>>),
    Quantized(QuantizedDepthwiseConv),
    Hybrid(HybridDepthwiseConv),
}

struct DepthwiseConv {
    options: DepthwiseConv2DOptions,
    activation: Fused,
    kernel: Option<Kernel>,
    /// The activation after it, which it applies as it writes (float only).
    then: Option<InPlace>,
}

impl Op for DepthwiseConv {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(2..=3)?;
        let x = inputs.get(0)?;
        let [n, h, w, c] = nhwc(x, "input")?;
        let filter = inputs
            .value(1)
            .ok_or("the filter must be a constant (computed at run time here)")?;
        let &[1, kh, kw, out_channels] = &filter.shape[..] else {
            return Err(format!(
                "the filter must be [1, height, width, channels], got {:?}",
                filter.shape
            ));
        };
        // TensorFlow Lite derives the multiplier from the shapes; the option may be stale.
        if out_channels == 0 || out_channels % c != 0 {
            return Err(format!(
                "the filter's {out_channels} channels are not a multiple of the input's {c}"
            ));
        }
        let o = &self.options;
        let rows = window_axis(h, kh, o.stride_h, o.dilation_h_factor, o.padding)?;
        let cols = window_axis(w, kw, o.stride_w, o.dilation_w_factor, o.padding)?;
        let out = checked(vec![n, rows.output, cols.output, out_channels])?;
        let multiplier = out_channels / c;
        self.kernel = Some(match (x.dtype(), filter.dtype()) {
            (DType::F32, DType::I8) => Kernel::Hybrid(HybridDepthwiseConv::new(
                inputs,
                rows,
                cols,
                multiplier,
                self.activation,
            )?),
            (DType::F32, _) => {
                let bias = inputs.f32_bias(2, out_channels)?.map(Arc::from);
                let (filter, _) = inputs.f32_constant(1, "filter")?;
                let (min, max) = self.activation.range();
                let geometry = Depthwise {
                    rows,
                    cols,
                    channels: c,
                    multiplier,
                    min,
                    max,
                    level: Level::selected(),
                };
                Kernel::Float(geometry, Arc::from(filter), bias)
            }
            (DType::I8 | DType::U8, _) => Kernel::Quantized(QuantizedDepthwiseConv::new(
                inputs,
                rows,
                cols,
                multiplier,
                self.activation,
            )?),
            (other, _) => {
                return Err(format!(
                    "petal runs DEPTHWISE_CONV_2D on FLOAT32, INT8 and UINT8, not {other}"
                ))
            }
        });
        Ok(vec![Out::new(x.dtype(), out)])
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        match self.kernel.as_mut().ok_or("not prepared")? {
            Kernel::Float(d, filter, bias) => {
                let then = then_apply_of(&self.then);
                float((d, filter, bias.as_deref()), then, inputs, outputs)
            }
            Kernel::Hybrid(h) => {
                h.run(f32_in(inputs, 0)?, f32_out(outputs, 0)?);
                Ok(())
            }
            Kernel::Quantized(q) => {
                let x = inputs[0].ok_or("the input is missing")?;
                q.run(&x.data, &mut outputs[0].data)
            }
        }
    }

    fn then_apply(&mut self, then: Option<InPlace>) -> bool {
        let can = matches!(self.kernel, Some(Kernel::Float(..)));
        self.then = then.filter(|_| can);
        self.then.is_some()
    }

    fn depthwise_stage(&self) -> Option<DepthwiseStage> {
        match &self.kernel {
            Some(Kernel::Float(d, filter, bias)) => Some(DepthwiseStage {
                depthwise: d.clone(),
                filter: filter.clone(),
                bias: bias.clone(),
                then: self.then.clone(),
            }),
            _ => None,
        }
    }
}

fn float(
    (d, filter, bias): (&Depthwise, &[f32], Option<&[f32]>),
    then: ThenApply,
    inputs: &[Option<&Tensor>],
    outputs: &mut [Tensor],
) -> Result<(), String> {
    let x = f32_in(inputs, 0)?;
    let y = f32_out(outputs, 0)?;
    let image_len = d.rows.input * d.cols.input * d.channels;
    let out_len = d.rows.output * d.cols.output * d.out_channels();
    for (x, y) in x.chunks_exact(image_len).zip(y.chunks_exact_mut(out_len)) {
        d.run(x, filter, bias, y, then);
    }
    Ok(())
}
