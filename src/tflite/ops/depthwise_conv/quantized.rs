//! Quantized DEPTHWISE_CONV_2D (int8 with per-channel filters, uint8 with a zero-pointed one).

use crate::nn::kernels::quantized::depthwise::QuantizedDepthwise;
use crate::nn::kernels::quantized::Quantized;
use crate::nn::layers::window::Axis;
use crate::tflite::ops::fused_activation::Fused;
use crate::tflite::ops::quantized::{bias, with_quantized, ProductQuantization, Requantization};
use crate::tflite::ops::Inputs;
use crate::tflite::tensor::Data;

pub(super) struct QuantizedDepthwiseConv {
    kernel: QuantizedDepthwise,
    quantization: ProductQuantization,
}

impl QuantizedDepthwiseConv {
    pub fn new(
        inputs: &Inputs,
        rows: Axis,
        cols: Axis,
        multiplier: usize,
        activation: Fused,
    ) -> Result<Self, String> {
        let x = inputs.get(0)?;
        let filter = inputs.value(1).ok_or("the filter must be a constant")?;
        let channels = x.shape[3];
        let out_channels = channels * multiplier;
        let quantization = ProductQuantization::new(
            inputs,
            3,
            out_channels,
            activation,
            Requantization::FixedPoint,
        )?;
        let zeros = &quantization.filter_zero_points;
        // Laid out [height][width][channel] as in the file, each less its channel's zero point.
        let widened: Vec<i32> = with_quantized!(&filter.data,
            w => w.iter().enumerate().map(|(i, v)| v.get() - zeros[i % out_channels]).collect(),
            return Err(format!("the filter must be INT8 or UINT8, got {}", filter.dtype())));
        Ok(QuantizedDepthwiseConv {
            kernel: QuantizedDepthwise {
                rows,
                cols,
                channels,
                multiplier,
                filter: widened,
                bias: bias(inputs, 2, out_channels)?,
                input_offset: quantization.input_offset,
            },
            quantization,
        })
    }

    pub fn run(&self, x: &Data, y: &mut Data) -> Result<(), String> {
        let mismatch = || "the tensors are not of the types prepared".to_string();
        with_quantized!(x, x => with_quantized!(y, y => { self.images(x, y); Ok(()) },
            Err(mismatch())), Err(mismatch()))
    }

    fn images<T: Quantized, U: Quantized>(&self, x: &[T], y: &mut [U]) {
        let k = &self.kernel;
        let image_len = k.rows.input * k.cols.input * k.channels;
        let out_len = k.rows.output * k.cols.output * k.out_channels();
        for (x, y) in x.chunks_exact(image_len).zip(y.chunks_exact_mut(out_len)) {
            k.run(x, y, &self.quantization.stage);
        }
    }
}
