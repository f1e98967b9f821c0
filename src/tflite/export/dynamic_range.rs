//! The dynamic-range form, as TensorFlow's converter writes it with `Optimize.DEFAULT` and no
//! representative data: the weights of CONV_2D and FULLY_CONNECTED with at least 1,024 elements
//! become symmetric int8, one scale per output channel; biases, smaller weights and every
//! activation stay float32. LiteRT quantizes each op's input on the fly (asymmetrically for
//! FULLY_CONNECTED, as the converter asks) and runs the product in integers.

use super::graph::Graph;
use crate::tflite::schema::{BuiltinOperator, BuiltinOptions};

/// TensorFlow's `min_elements_for_weights`: smaller weights stay float.
const MIN_ELEMENTS: usize = 1024;

/// Hybrid versions, as the converter writes them: per-channel CONV_2D, per-channel
/// FULLY_CONNECTED with asymmetric input quantization.
const CONV_2D_VERSION: i32 = 5;
const FULLY_CONNECTED_VERSION: i32 = 12;

pub(super) fn convert(g: &mut Graph) {
    for i in 0..g.ops.len() {
        let version = match g.ops[i].code {
            BuiltinOperator::Conv2d => CONV_2D_VERSION,
            BuiltinOperator::FullyConnected => FULLY_CONNECTED_VERSION,
            _ => continue,
        };
        let weights = g.ops[i].inputs[1];
        let Some(values) = g.f32_constant(weights).filter(|v| v.len() >= MIN_ELEMENTS) else {
            continue;
        };
        g.quantize_weights(weights, &values);
        g.ops[i].version = version;
        if let Some(BuiltinOptions::FullyConnectedOptions(options)) = &mut g.ops[i].options {
            options.asymmetric_quantize_inputs = true;
        }
    }
}
