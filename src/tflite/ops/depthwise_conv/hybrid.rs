//! Dynamic-range DEPTHWISE_CONV_2D (float input and output, int8 filter with per-channel
//! scales), as LiteRT's hybrid kernel computes it: each image quantized asymmetrically to int8
//! at run time, integer sums per channel, then `sum × (filter scale × image scale)` on top of
//! the float bias.

use crate::nn::kernels::quantized::depthwise::QuantizedDepthwise;
use crate::nn::kernels::quantized::dynamic_range::asymmetric;
use crate::nn::layers::window::Axis;
use crate::tflite::ops::fused_activation::Fused;
use crate::tflite::ops::quantized::symmetric_weights;
use crate::tflite::ops::Inputs;

pub(super) struct HybridDepthwiseConv {
    kernel: QuantizedDepthwise,
    /// One per output channel.
    scales: Vec<f32>,
    bias: Vec<f32>,
    activation: Fused,
    image: Vec<i8>,
}

impl HybridDepthwiseConv {
    pub fn new(
        inputs: &Inputs,
        rows: Axis,
        cols: Axis,
        multiplier: usize,
        activation: Fused,
    ) -> Result<Self, String> {
        let channels = inputs.get(0)?.shape[3];
        let out_channels = channels * multiplier;
        let (filter, scales) = symmetric_weights(inputs, 3, out_channels)?;
        let bias = inputs
            .f32_bias(2, out_channels)?
            .map_or_else(|| vec![0.0; out_channels], <[f32]>::to_vec);
        Ok(HybridDepthwiseConv {
            kernel: QuantizedDepthwise {
                rows,
                cols,
                channels,
                multiplier,
                filter: filter.iter().map(|&w| w as i32).collect(),
                bias: vec![0; out_channels],
                input_offset: 0,
            },
            scales,
            bias,
            activation,
            image: Vec::new(),
        })
    }

    pub fn run(&mut self, x: &[f32], y: &mut [f32]) {
        let k = &mut self.kernel;
        let image_len = k.rows.input * k.cols.input * k.channels;
        let out_len = k.rows.output * k.cols.output * k.out_channels();
        for (x, y) in x.chunks_exact(image_len).zip(y.chunks_exact_mut(out_len)) {
            self.image.resize(x.len(), 0);
            let (scale, zero_point) = asymmetric(x, &mut self.image);
            k.input_offset = -zero_point;
            let (scales, bias, activation) = (&self.scales, &self.bias, self.activation);
            k.run_then(&self.image, y, |sums, out: &mut [f32]| {
                for (c, (o, &sum)) in out.iter_mut().zip(sums).enumerate() {
                    *o = activation.clamp(sum as f32 * (scales[c] * scale) + bias[c]);
                }
            });
        }
    }
}
