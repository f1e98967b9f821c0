//! What quantized ops share: a tensor's scale and zero point checked, the real multipliers
//! their integer kernels apply, the fused activation's bounds in stored values, and dispatch on
//! the stored type (int8 or uint8).

use super::fused_activation::Fused;
use crate::nn::kernels::quantized::{Multiplier, Quantized, Requantize, Scaling};
use crate::tflite::tensor::{DType, Tensor};

/// real = scale × (stored − zero point), one scale for the whole tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Affine {
    pub scale: f32,
    pub zero_point: i32,
}

/// The stored range of a quantized type.
pub(crate) fn type_range(dtype: DType) -> Result<(i32, i32), String> {
    match dtype {
        DType::I8 => Ok((<i8 as Quantized>::MIN, <i8 as Quantized>::MAX)),
        DType::U8 => Ok((<u8 as Quantized>::MIN, <u8 as Quantized>::MAX)),
        DType::I16 => Ok((i16::MIN as i32, i16::MAX as i32)),
        other => Err(format!("{other} is not a quantized type")),
    }
}

/// The tensor's one scale and zero point, checked: a positive, finite scale and a zero point
/// its type can hold.
pub(crate) fn affine(t: &Tensor, what: &str) -> Result<Affine, String> {
    let q = t
        .quantization
        .as_ref()
        .ok_or_else(|| format!("the {what} ({}) has no quantization", t.dtype()))?;
    let (&[scale], &[zero_point]) = (&q.scales[..], &q.zero_points[..]) else {
        return Err(format!(
            "the {what} must have one scale and zero point, got {}",
            q.scales.len()
        ));
    };
    if !(scale.is_finite() && scale > 0.0) {
        return Err(format!(
            "the {what}'s scale {scale} is not a positive number"
        ));
    }
    let (lo, hi) = type_range(t.dtype())?;
    if !(lo as i64..=hi as i64).contains(&zero_point) {
        return Err(format!(
            "the {what}'s zero point {zero_point} is outside {}'s range",
            t.dtype()
        ));
    }
    Ok(Affine {
        scale,
        zero_point: zero_point as i32,
    })
}

/// A constant's scales and zero points, one per slice along `axis` of `channels` (a single
/// scale is repeated), checked as [`affine`] checks them except that a scale may be zero (a
/// channel whose weights are all zero).
pub(crate) fn per_channel(
    t: &Tensor,
    axis: usize,
    channels: usize,
    what: &str,
) -> Result<(Vec<f32>, Vec<i32>), String> {
    let q = t
        .quantization
        .as_ref()
        .ok_or_else(|| format!("the {what} ({}) has no quantization", t.dtype()))?;
    let n = q.scales.len();
    if n != 1 && (n != channels || q.axis != axis) {
        return Err(format!(
            "the {what} has {n} scales along dimension {}, expected 1 or {channels} along \
             dimension {axis}",
            q.axis
        ));
    }
    if let Some(bad) = q.scales.iter().find(|s| !(s.is_finite() && **s >= 0.0)) {
        return Err(format!(
            "the {what} has scale {bad}, not a non-negative number"
        ));
    }
    let (lo, hi) = type_range(t.dtype())?;
    if let Some(bad) = q
        .zero_points
        .iter()
        .find(|z| !(lo as i64..=hi as i64).contains(z))
    {
        return Err(format!(
            "the {what}'s zero point {bad} is outside {}'s range",
            t.dtype()
        ));
    }
    let scales = (0..channels).map(|c| q.scales[c % n]).collect();
    let zero_points = (0..channels).map(|c| q.zero_points[c % n] as i32).collect();
    Ok((scales, zero_points))
}

/// `real` as LiteRT's kernels apply it, or an error naming `what` when the scales make it
/// infinite or NaN.
pub(crate) fn multiplier(real: f64, what: &str) -> Result<Multiplier, String> {
    Multiplier::new(real)
        .ok_or_else(|| format!("the scales make the {what} multiplier {real}, not a finite number"))
}

/// The fused activation's range in `out`'s stored values (LiteRT's
/// `CalculateActivationRangeQuantized`): each bound quantized, within the type's range.
pub(crate) fn activation_bounds(
    fused: Fused,
    out: Affine,
    dtype: DType,
) -> Result<(i32, i32), String> {
    let (lo, hi) = type_range(dtype)?;
    let quantize = |real: f32| out.zero_point as i64 + (real / out.scale).round() as i64;
    let (min, max) = fused.range();
    let min = match min.is_finite() {
        true => quantize(min).max(lo as i64) as i32,
        false => lo,
    };
    let max = match max.is_finite() {
        true => quantize(max).min(hi as i64) as i32,
        false => hi,
    };
    Ok((min, max))
}

/// Binds `$v` to the stored values of a quantized tensor's data (int8 or uint8) and evaluates
/// `$body` (generic over the type), or evaluates `$otherwise` for any other type.
macro_rules! with_quantized {
    ($data:expr, $v:ident => $body:expr, $otherwise:expr) => {
        match $data {
            $crate::tflite::tensor::Data::I8($v) => $body,
            $crate::tflite::tensor::Data::U8($v) => $body,
            _ => $otherwise,
        }
    };
}
pub(crate) use with_quantized;

/// How a quantized CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED turns its sums into outputs,
/// with LiteRT's multipliers (`PopulateConvolutionQuantizationParams`): per channel
/// `input scale × filter scale / output scale` in double precision, except that the fixed-point
/// multiplier of a uint8 model rounds the scale product to float first.
pub(crate) struct ProductQuantization {
    pub stage: Requantize,
    /// Added to each input value: minus the input's zero point.
    pub input_offset: i32,
    /// The filter's zero points, one per output channel.
    pub filter_zero_points: Vec<i32>,
}

/// How the op's reference kernel scales its sums.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Requantization {
    /// In fixed point (CONV_2D, DEPTHWISE_CONV_2D).
    FixedPoint,
    /// In double precision (FULLY_CONNECTED since LiteRT's reference kernel changed in 2025).
    Real,
}

impl ProductQuantization {
    pub fn new(
        inputs: &super::Inputs,
        filter_axis: usize,
        channels: usize,
        fused: Fused,
        requantization: Requantization,
    ) -> Result<Self, String> {
        let (input, output) = (inputs.get(0)?, inputs.output(0)?);
        let filter = inputs.value(1).ok_or("the filter must be a constant")?;
        let x = affine(input, "input")?;
        let y = affine(output, "output")?;
        if output.dtype() != input.dtype() {
            return Err(format!(
                "a {} input makes a {} output here, petal expects the same type",
                input.dtype(),
                output.dtype()
            ));
        }
        let (scales, filter_zero_points) = per_channel(filter, filter_axis, channels, "filter")?;
        let legacy = input.dtype() == DType::U8 && requantization == Requantization::FixedPoint;
        let reals = scales.iter().map(|&s| match legacy {
            // LiteRT's `GetQuantizedConvolutionMultipler`, for uint8 models.
            true => (x.scale * s) as f64 / y.scale as f64,
            false => x.scale as f64 * s as f64 / y.scale as f64,
        });
        let scaling = match requantization {
            Requantization::FixedPoint => Scaling::fixed(
                &reals
                    .map(|real| multiplier(real, "output"))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Requantization::Real => Scaling::Real(reals.collect()),
        };
        let (min, max) = activation_bounds(fused, y, output.dtype())?;
        Ok(ProductQuantization {
            stage: Requantize {
                scaling,
                zero_point: y.zero_point,
                min,
                max,
            },
            input_offset: -x.zero_point,
            filter_zero_points,
        })
    }
}

/// A quantized op's INT32 bias of `len` values (constant), or zeros when it has none.
pub(crate) fn bias(inputs: &super::Inputs, i: usize, len: usize) -> Result<Vec<i32>, String> {
    let Some(t) = inputs.optional(i) else {
        return Ok(vec![0; len]);
    };
    let t = inputs
        .value(i)
        .filter(|_| t.dtype() == DType::I32)
        .ok_or_else(|| format!("the bias must be an INT32 constant, got {}", t.dtype()))?;
    match (t.as_i32(), &t.shape[..]) {
        (Some(v), [n]) if *n == len => Ok(v.to_vec()),
        _ => Err(format!(
            "the bias has shape {:?}, expected [{len}]",
            t.shape
        )),
    }
}

/// The int8 weights of a dynamic-range op (input 1, a constant): their values and one scale per
/// slice along `axis` of `channels`; zero points must be 0, as LiteRT's hybrid kernels assume.
pub(crate) fn symmetric_weights<'a>(
    inputs: &super::Inputs<'a>,
    axis: usize,
    channels: usize,
) -> Result<(&'a [i8], Vec<f32>), String> {
    let w = inputs.value(1).ok_or("the weights must be a constant")?;
    let crate::tflite::tensor::Data::I8(values) = &w.data else {
        return Err(format!(
            "float inputs take FLOAT32 or INT8 weights, got {}",
            w.dtype()
        ));
    };
    let (scales, zero_points) = per_channel(w, axis, channels, "weights")?;
    if zero_points.iter().any(|&z| z != 0) {
        return Err("dynamic-range weights must have zero point 0".into());
    }
    Ok((values, scales))
}
