//! CONV_2D: each image's receptive fields laid out as rows (im2col, a few rows at a time as the
//! product needs them; skipped for 1×1 stride-1 filters, whose input already is that matrix),
//! times the filter packed once when prepared.

use super::fused_activation::Fused;
use super::padding::window_axis;
use super::{checked, f32_in, f32_out, nhwc, options, Inputs, Op, Out};
use crate::nn::kernels::conv::im2col::im2col;
use crate::nn::kernels::packed_gemm::PackedB;
use crate::nn::layers::window::Axis;
use crate::tflite::schema::{BuiltinOptions, Conv2DOptions};
use crate::tflite::tensor::Tensor;

pub(super) fn build(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    let o = options!(options, Conv2DOptions).ok_or("its Conv2DOptions are missing")?;
    Ok(Box::new(Conv {
        options: o.clone(),
        activation: Fused::new(o.fused_activation_function)?,
        geometry: None,
        filter: None,
    }))
}

struct Geometry {
    rows: Axis,
    cols: Axis,
    channels: usize,
    filters: usize,
    /// A 1×1 filter at stride 1: the image is its own column matrix.
    pointwise: bool,
}

struct Conv {
    options: Conv2DOptions,
    activation: Fused,
    geometry: Option<Geometry>,
    /// The filter and bias, packed when first prepared (they are constants).
    filter: Option<PackedB>,
}

impl Op for Conv {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(2..=3)?;
        let [n, h, w, c] = nhwc(inputs.f32(0, "input")?, "input")?;
        let (filter, filter_shape) = inputs.f32_constant(1, "filter")?;
        let &[filters, kh, kw, fc] = filter_shape else {
            return Err(format!(
                "the filter must be 4-D (out, height, width, in), got {filter_shape:?}"
            ));
        };
        if fc != c || filters == 0 {
            return Err(format!(
                "the filter {filter_shape:?} does not fit the input's {c} channels (grouped \
                 convolutions are not supported)"
            ));
        }
        let bias = match inputs.optional(2) {
            None => None,
            Some(_) => {
                let (bias, bias_shape) = inputs.f32_constant(2, "bias")?;
                if bias_shape != [filters] {
                    return Err(format!(
                        "the bias has shape {bias_shape:?}, expected [{filters}]"
                    ));
                }
                Some(bias)
            }
        };
        if self.filter.is_none() {
            self.filter = Some(PackedB::new(filter, filters, kh * kw * c, bias));
        }
        let o = &self.options;
        let rows = window_axis(h, kh, o.stride_h, o.dilation_h_factor, o.padding)?;
        let cols = window_axis(w, kw, o.stride_w, o.dilation_w_factor, o.padding)?;
        let pointwise = kh == 1 && kw == 1 && rows.stride == 1 && cols.stride == 1;
        let out = checked(vec![n, rows.output, cols.output, filters])?;
        self.geometry = Some(Geometry {
            rows,
            cols,
            channels: c,
            filters,
            pointwise,
        });
        Ok(vec![Out::f32(out)])
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        let (Some(g), Some(filter)) = (&self.geometry, &self.filter) else {
            return Err("not prepared".into());
        };
        let x = f32_in(inputs, 0)?;
        let y = f32_out(outputs, 0)?;
        let pixels = g.rows.output * g.cols.output;
        let image_len = g.rows.input * g.cols.input * g.channels;
        let range = self.activation.range();
        for (x, y) in x
            .chunks_exact(image_len)
            .zip(y.chunks_exact_mut(pixels * g.filters))
        {
            if g.pointwise {
                filter.multiply(x, pixels, y, range);
            } else {
                let fields = |pixels, rows: &mut [f32]| {
                    im2col(x, &g.rows, &g.cols, g.channels, pixels, rows)
                };
                filter.multiply_rows_made_by(fields, pixels, y, range);
            }
        }
        Ok(())
    }
}
