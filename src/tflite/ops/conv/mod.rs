//! CONV_2D: each image's receptive fields laid out as rows (im2col, a few rows at a time as the
//! product needs them; skipped for 1×1 stride-1 filters, whose input already is that matrix),
//! times the filter packed once when prepared. Float models multiply floats; quantized ones
//! (int8, uint8) multiply integers ([`quantized`]).

mod direct;
mod hybrid;
mod quantized;
mod residual;

use super::fused_activation::Fused;
use super::padding::window_axis;
use super::{
    checked, f32_in, f32_out, nhwc, options, then_apply_of, DepthwiseStage, InPlace, Inputs, Op,
    Out, ResidualAdd, TilingMaxPool,
};
use crate::nn::kernels::conv::im2col::im2col;
use crate::nn::kernels::expanded_depthwise::ExpandedDepthwise;
use crate::nn::kernels::packed_gemm::PackedB;
use crate::nn::kernels::ThenApply;
use crate::nn::layers::window::Axis;
use crate::tflite::schema::{BuiltinOptions, Conv2DOptions};
use crate::tflite::tensor::{DType, Tensor};
use direct::DirectConv;
use hybrid::HybridConv;
use quantized::QuantizedConv;

pub(super) fn build(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    let o = options!(options, Conv2DOptions).ok_or("its Conv2DOptions are missing")?;
    Ok(Box::new(Conv {
        options: o.clone(),
        activation: Fused::new(o.fused_activation_function)?,
        geometry: None,
        kernel: None,
        pool: None,
        then: None,
        depthwise: None,
        residual: None,
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

impl Geometry {
    fn pixels(&self) -> usize {
        self.rows.output * self.cols.output
    }

    fn image_len(&self) -> usize {
        self.rows.input * self.cols.input * self.channels
    }
}

/// The filter and bias, made ready when first prepared (they are constants).
enum Kernel {
    Float(PackedB),
    Direct(DirectConv),
    Quantized(QuantizedConv),
    Hybrid(HybridConv),
}

struct Conv {
    options: Conv2DOptions,
    activation: Fused,
    geometry: Option<Geometry>,
    kernel: Option<Kernel>,
    /// The max-pool after it, which it does instead (quantized convolutions that read windows
    /// from a padded image, any max-pool; float ones by the direct kernels, 2×2 ones).
    pool: Option<TilingMaxPool>,
    /// The activation after it, which it applies as it writes (float only).
    then: Option<InPlace>,
    /// The depthwise convolution after it, which it does instead (float 1×1 only).
    depthwise: Option<DepthwiseStage>,
    /// The residual ADD after it, which it does instead (float, by the product).
    residual: Option<ResidualAdd>,
}

impl Op for Conv {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(2..=3)?;
        let x = inputs.get(0)?;
        let [n, h, w, c] = nhwc(x, "input")?;
        let filter = inputs
            .value(1)
            .ok_or("the filter must be a constant (computed at run time here)")?;
        let &[filters, kh, kw, fc] = &filter.shape[..] else {
            return Err(format!(
                "the filter must be 4-D (out, height, width, in), got {:?}",
                filter.shape
            ));
        };
        if fc != c || filters == 0 {
            return Err(format!(
                "the filter {:?} does not fit the input's {c} channels (grouped convolutions \
                 are not supported)",
                filter.shape
            ));
        }
        let undilated = self.options.dilation_h_factor == 1 && self.options.dilation_w_factor == 1;
        let o = &self.options;
        let rows = window_axis(h, kh, o.stride_h, o.dilation_h_factor, o.padding)?;
        let cols = window_axis(w, kw, o.stride_w, o.dilation_w_factor, o.padding)?;
        let pointwise = kh == 1 && kw == 1 && rows.stride == 1 && cols.stride == 1;
        let out = checked(vec![n, rows.output, cols.output, filters])?;
        let geometry = Geometry {
            rows,
            cols,
            channels: c,
            filters,
            pointwise,
        };
        // A new input shape may leave the direct kernels' reach.
        if matches!(&self.kernel, Some(Kernel::Direct(_)) if !DirectConv::takes(&geometry)) {
            self.kernel = None;
        }
        if self.kernel.is_none() {
            let shape = (kh, kw, c);
            self.kernel = Some(match (x.dtype(), filter.dtype()) {
                (DType::F32, DType::I8) => Kernel::Hybrid(HybridConv::new(
                    inputs,
                    filters,
                    shape,
                    undilated,
                    self.activation,
                )?),
                (DType::F32, _) => float_kernel(inputs, &geometry, shape, self.activation)?,
                (DType::I8 | DType::U8, _) => Kernel::Quantized(QuantizedConv::new(
                    inputs,
                    filters,
                    shape,
                    undilated,
                    self.activation,
                )?),
                (other, _) => {
                    return Err(format!(
                        "petal runs CONV_2D on FLOAT32, INT8 and UINT8, not {other}"
                    ))
                }
            });
        }
        self.geometry = Some(geometry);
        Ok(vec![Out::new(x.dtype(), out)])
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        let (Some(g), Some(kernel)) = (&self.geometry, &mut self.kernel) else {
            return Err("not prepared".into());
        };
        match kernel {
            Kernel::Float(filter) => match &self.depthwise {
                Some(stage) => {
                    expanded_depthwise(g, filter, self.activation, stage, inputs, outputs)
                }
                None => match self.residual {
                    Some(add) => {
                        let skip = f32_in(inputs, inputs.len() - 1)?;
                        let start = f32_out(outputs, 0)?.as_ptr() as usize;
                        let adding = residual::adding(add, start, skip);
                        float(g, filter, (self.activation, Some(&adding)), inputs, outputs)
                    }
                    None => {
                        let then = then_apply_of(&self.then);
                        float(g, filter, (self.activation, then), inputs, outputs)
                    }
                },
            },
            Kernel::Quantized(q) => {
                let x = inputs[0].ok_or("the input is missing")?;
                let pool = self.pool.map_or((1, 1), |p| (p.rows, p.cols));
                q.run(g, pool, &x.data, &mut outputs[0].data)
            }
            Kernel::Hybrid(h) => {
                h.run(g, f32_in(inputs, 0)?, f32_out(outputs, 0)?);
                Ok(())
            }
            Kernel::Direct(d) => {
                let then = then_apply_of(&self.then);
                let pooled = self.pool.is_some();
                d.run(g, pooled, f32_in(inputs, 0)?, f32_out(outputs, 0)?, then);
                Ok(())
            }
        }
    }

    fn pool_output(&mut self, pool: Option<TilingMaxPool>) -> bool {
        let can = match (&self.kernel, &self.geometry) {
            (Some(Kernel::Quantized(q)), Some(g)) => q.can_pool(g),
            (Some(Kernel::Direct(_)), _) => pool == Some(TilingMaxPool { rows: 2, cols: 2 }),
            _ => false,
        };
        self.pool = pool.filter(|_| can);
        self.pool.is_some()
    }

    fn then_apply(&mut self, then: Option<InPlace>) -> bool {
        let can = match self.kernel {
            Some(Kernel::Float(_)) => true,
            Some(Kernel::Direct(_)) => self.pool.is_none(),
            _ => false,
        };
        self.then = then.filter(|_| can);
        self.then.is_some()
    }

    fn add_residual(&mut self, add: Option<ResidualAdd>) -> bool {
        let can = matches!(self.kernel, Some(Kernel::Float(_)))
            && self.then.is_none()
            && self.depthwise.is_none();
        self.residual = add.filter(|_| can);
        self.residual.is_some()
    }

    fn expand_into(&mut self, stage: Option<DepthwiseStage>) -> bool {
        let can = |stage: &DepthwiseStage| match (&self.kernel, &self.geometry) {
            (Some(Kernel::Float(_)), Some(g)) => {
                let d = &stage.depthwise;
                g.pointwise
                    && self.then.is_none()
                    && self.residual.is_none()
                    && d.multiplier == 1
                    && ExpandedDepthwise::pays_for(g.pixels() * g.filters)
            }
            _ => false,
        };
        self.depthwise = stage.filter(can);
        self.depthwise.is_some()
    }
}

/// The direct kernels where they take the convolution, else the filter packed for the
/// product with receptive fields.
fn float_kernel(
    inputs: &Inputs,
    g: &Geometry,
    (kh, kw, c): (usize, usize, usize),
    activation: Fused,
) -> Result<Kernel, String> {
    let (filter, _) = inputs.f32_constant(1, "filter")?;
    let bias = inputs.f32_bias(2, g.filters)?;
    let direct = DirectConv::takes(g)
        .then(|| DirectConv::new(filter, bias, (g.filters, kh, kw, c), activation))
        .flatten();
    Ok(match direct {
        Some(direct) => Kernel::Direct(direct),
        None => Kernel::Float(PackedB::new(filter, g.filters, kh * kw * c, bias)),
    })
}

/// The depthwise convolution `stage` of the 1×1 convolution's output, into the depthwise
/// convolution's output tensor.
fn expanded_depthwise(
    g: &Geometry,
    filter: &PackedB,
    activation: Fused,
    stage: &DepthwiseStage,
    inputs: &[Option<&Tensor>],
    outputs: &mut [Tensor],
) -> Result<(), String> {
    let x = f32_in(inputs, 0)?;
    let y = f32_out(outputs, 0)?;
    let d = &stage.depthwise;
    let fused = ExpandedDepthwise {
        expand: filter,
        expand_range: activation.range(),
        depthwise: d,
        filter: &stage.filter,
        bias: stage.bias.as_deref(),
    };
    let out_len = d.rows.output * d.cols.output * d.out_channels();
    let then = then_apply_of(&stage.then);
    for (x, y) in x
        .chunks_exact(g.image_len())
        .zip(y.chunks_exact_mut(out_len))
    {
        fused.run(x, y, then);
    }
    Ok(())
}

fn float(
    g: &Geometry,
    filter: &PackedB,
    (activation, then): (Fused, ThenApply),
    inputs: &[Option<&Tensor>],
    outputs: &mut [Tensor],
) -> Result<(), String> {
    let x = f32_in(inputs, 0)?;
    let y = f32_out(outputs, 0)?;
    let pixels = g.pixels();
    let range = activation.range();
    for (x, y) in x
        .chunks_exact(g.image_len())
        .zip(y.chunks_exact_mut(pixels * g.filters))
    {
        if g.pointwise {
            filter.multiply(x, pixels, y, range, then);
        } else {
            let fields =
                |pixels, rows: &mut [f32]| im2col(x, &g.rows, &g.cols, g.channels, pixels, rows);
            filter.multiply_rows_made_by(fields, pixels, y, range, then);
        }
    }
    Ok(())
}
