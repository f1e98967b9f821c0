//! CONV_2D: each image's receptive fields laid out as rows (im2col, skipped for 1×1 stride-1
//! filters, whose input already is that matrix), times the filter packed once when prepared.

use super::fused_activation::Fused;
use super::padding::window_axis;
use super::{checked, f32_in, f32_out, nhwc, options, Inputs, Op, Out};
use crate::nn::kernels::conv::im2col::im2col;
use crate::nn::kernels::packed_gemm::PackedB;
use crate::nn::layers::window::Axis;
use crate::nn::thread_pool;
use crate::tflite::schema::{BuiltinOptions, Conv2DOptions};
use crate::tflite::tensor::Tensor;

pub(super) fn build(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    let o = options!(options, Conv2DOptions).ok_or("its Conv2DOptions are missing")?;
    Ok(Box::new(Conv {
        options: o.clone(),
        activation: Fused::new(o.fused_activation_function)?,
        geometry: None,
        columns: Vec::new(),
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
    columns: Vec<f32>,
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
        let column_len = if pointwise {
            0
        } else {
            Tensor::elements(&[rows.output, cols.output, kh, kw, c])
                .filter(|&len| len <= super::MAX_OUTPUT_VALUES)
                .ok_or("the convolution's receptive fields are larger than petal handles")?
        };
        self.columns.clear();
        self.columns.resize(column_len, 0.0);
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
            let fields = if g.pointwise {
                x
            } else {
                receptive_fields(x, g, &mut self.columns);
                &self.columns
            };
            filter.multiply(fields, pixels, y, range);
        }
        Ok(())
    }
}

/// Values copied below which one thread lays out all receptive fields.
const PARALLEL_COPY: usize = 1 << 15;

/// im2col of one image, in bands of output rows split over the threads as the product that
/// follows splits its rows, so each thread multiplies the fields it copied (a first 3×3
/// convolution at 224×224 spends as long copying as multiplying).
fn receptive_fields(image: &[f32], g: &Geometry, columns: &mut [f32]) {
    let row_len = columns.len() / g.rows.output.max(1);
    let bands = if columns.len() < PARALLEL_COPY {
        1
    } else {
        thread_pool::threads() * 4
    };
    let band_rows = g.rows.output.div_ceil(bands).max(1);
    thread_pool::for_each_chunk(columns, band_rows * row_len, |band, chunk| {
        let first = band * band_rows;
        let rows = first..g.rows.output.min(first + band_rows);
        im2col(image, &g.rows, &g.cols, g.channels, rows, chunk);
    });
}
