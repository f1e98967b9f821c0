//! The full-integer form, as TensorFlow's converter writes it with a `representative_dataset`:
//! every activation int8 with the scale and zero point of its calibrated range, weights
//! symmetric int8 per output channel, biases int32 at `input scale × weight scale`; float input
//! and output through QUANTIZE and DEQUANTIZE, or int8/uint8 ones (`inference_input_type`).

use super::calibration::ActivationRanges;
use super::graph::{le_bytes, Graph, Op};
use super::scales::{affine_int8, bias_int32};
use crate::tflite::schema::{BuiltinOperator, TensorType};

/// The type of an integer model's input and output, as `inference_input_type` and
/// `inference_output_type` set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelIo {
    /// float32, quantized and dequantized inside the model.
    Float,
    Int8,
    Uint8,
}

/// Softmax and sigmoid outputs lie in [0, 1]: LiteRT's int8 kernels require this fixed scale.
const PROBABILITY_SCALE: f32 = 1.0 / 256.0;
const PROBABILITY_ZERO_POINT: i64 = -128;

pub(super) fn convert(g: &mut Graph, ranges: &ActivationRanges, io: ModelIo) -> Result<(), String> {
    let input = g.input;
    let (scale, zero_point) = calibrated(g, ranges, input)?;
    g.set_quantization(input, vec![scale], vec![zero_point]);
    for i in 0..g.ops.len() {
        quantize_op(g, i, ranges)?;
    }
    for t in 0..g.tensors.len() {
        let tensor = &mut g.tensors[t];
        if tensor.buffer == 0 && tensor.type_ == TensorType::Float32 {
            tensor.type_ = TensorType::Int8;
        }
    }
    match io {
        ModelIo::Float => outer_io(g, TensorType::Float32),
        ModelIo::Int8 => {}
        ModelIo::Uint8 => outer_io(g, TensorType::Uint8),
    }
    Ok(())
}

fn calibrated(g: &Graph, ranges: &ActivationRanges, tensor: i32) -> Result<(f32, i64), String> {
    let (min, max) = ranges
        .get(tensor as usize)
        .ok_or_else(|| format!("calibration saw no values of tensor \"{}\"", g.name(tensor)))?;
    Ok(affine_int8(min, max))
}

/// Gives op `i`'s output, weights and bias their int8 form and the op its integer version.
fn quantize_op(g: &mut Graph, i: usize, ranges: &ActivationRanges) -> Result<(), String> {
    let (code, output, x) = (g.ops[i].code, g.ops[i].output, g.ops[i].inputs[0]);
    let (input_scale, input_zero_point) = g.affine(x).ok_or_else(|| {
        format!(
            "tensor \"{}\" was not quantized before its reader",
            g.name(x)
        )
    })?;
    let (out_scale, out_zero_point, version) = match code {
        BuiltinOperator::Conv2d | BuiltinOperator::FullyConnected => {
            product_constants(g, i, input_scale);
            let (s, z) = calibrated(g, ranges, output)?;
            let version = if code == BuiltinOperator::Conv2d {
                3
            } else {
                4
            };
            (s, z, version)
        }
        BuiltinOperator::Mul | BuiltinOperator::Add => {
            scalar_operand(g, g.ops[i].inputs[1]);
            let (s, z) = calibrated(g, ranges, output)?;
            (s, z, 2)
        }
        // Values move, none change: the output keeps the input's quantization.
        BuiltinOperator::MaxPool2d => (input_scale, input_zero_point, 2),
        BuiltinOperator::Reshape => (input_scale, input_zero_point, 1),
        BuiltinOperator::Softmax | BuiltinOperator::Logistic => {
            (PROBABILITY_SCALE, PROBABILITY_ZERO_POINT, 2)
        }
        other => return Err(format!("{other:?} has no int8 form in petal's export")),
    };
    g.set_quantization(output, vec![out_scale], vec![out_zero_point]);
    g.ops[i].version = version;
    Ok(())
}

/// A CONV_2D or FULLY_CONNECTED op's weights (per output channel) and bias.
fn product_constants(g: &mut Graph, i: usize, input_scale: f32) {
    let (weights, bias) = (g.ops[i].inputs[1], g.ops[i].inputs[2]);
    let values = g
        .f32_constant(weights)
        .expect("float weights before quantization");
    let scales = g.quantize_weights(weights, &values);
    let bias_values = g
        .f32_constant(bias)
        .expect("a float bias before quantization");
    let (quantized, scales) = bias_int32(&bias_values, input_scale, &scales);
    g.replace_constant(
        bias,
        TensorType::Int32,
        le_bytes(&quantized, i32::to_le_bytes),
    );
    g.set_quantization(bias, scales, vec![0; quantized.len()]);
}

/// The scalar of a Rescaling MUL or ADD: quantized over [0, value] (or [value, 0]), so that
/// the value itself is the code at one end.
fn scalar_operand(g: &mut Graph, constant: i32) {
    let values = g
        .f32_constant(constant)
        .expect("a float scalar before quantization");
    let (min, max) = values
        .iter()
        .fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let (scale, zero_point) = affine_int8(min, max);
    let codes: Vec<i8> = values
        .iter()
        .map(|&v| ((v / scale).round() + zero_point as f32).clamp(-128.0, 127.0) as i8)
        .collect();
    g.replace_constant(
        constant,
        TensorType::Int8,
        le_bytes(&codes, i8::to_le_bytes),
    );
    g.set_quantization(constant, vec![scale], vec![zero_point]);
}

/// The model's input becomes `outer` (float32 or uint8), quantized by a first QUANTIZE op into
/// the int8 tensor the graph reads; its output likewise, by a DEQUANTIZE (to float32) or a
/// QUANTIZE (to uint8, shifting by 128 as the converter's ops do) at the end.
fn outer_io(g: &mut Graph, outer: TensorType) {
    let input = g.input;
    let (scale, zero_point) = g.affine(input).expect("a quantized input");
    let inner = g.computed_like(input, "/quantize", TensorType::Int8);
    g.set_quantization(inner, vec![scale], vec![zero_point]);
    g.reroute_readers(input, inner);
    g.tensors[input as usize].type_ = outer;
    g.tensors[input as usize].quantization = None;
    if outer == TensorType::Uint8 {
        g.set_quantization(input, vec![scale], vec![zero_point + 128]);
    }
    g.ops
        .insert(0, conversion(BuiltinOperator::Quantize, 1, input, inner));

    let output = g.output;
    let (scale, zero_point) = g.affine(output).expect("a quantized output");
    let suffix = if outer == TensorType::Uint8 {
        "/uint8"
    } else {
        "/dequantize"
    };
    let converted = g.computed_like(output, suffix, outer);
    let last = if outer == TensorType::Uint8 {
        g.set_quantization(converted, vec![scale], vec![zero_point + 128]);
        conversion(BuiltinOperator::Quantize, 1, output, converted)
    } else {
        conversion(BuiltinOperator::Dequantize, 2, output, converted)
    };
    g.ops.push(last);
    g.output = converted;
}

fn conversion(code: BuiltinOperator, version: i32, from: i32, to: i32) -> Op {
    Op {
        code,
        version,
        inputs: vec![from],
        output: to,
        options: None,
    }
}
