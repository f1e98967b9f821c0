//! The float16 form, as TensorFlow's converter writes it with `supported_types = [tf.float16]`:
//! every float constant stored as FLOAT16 and widened back to float32 by a DEQUANTIZE operator
//! at the start of the graph; activations, input and output stay float32.

use super::graph::{le_bytes, Graph, Op};
use crate::tflite::schema::{BuiltinOperator, TensorType};
use half::f16;

/// DEQUANTIZE of FLOAT16, TensorFlow's version 3.
const DEQUANTIZE_FLOAT16_VERSION: i32 = 3;

pub(super) fn convert(g: &mut Graph) {
    let constants: Vec<i32> = (0..g.tensors.len() as i32)
        .filter(|&t| g.f32_constant(t).is_some())
        .collect();
    let mut widen = Vec::with_capacity(constants.len());
    for t in constants {
        let values = g.f32_constant(t).expect("a float constant");
        let halves: Vec<f16> = values.iter().map(|&v| f16::from_f32(v)).collect();
        g.replace_constant(t, TensorType::Float16, le_bytes(&halves, f16::to_le_bytes));
        let wide = g.computed_like(t, "/dequantize", TensorType::Float32);
        g.reroute_readers(t, wide);
        widen.push(Op {
            code: BuiltinOperator::Dequantize,
            version: DEQUANTIZE_FLOAT16_VERSION,
            inputs: vec![t],
            output: wide,
            options: None,
        });
    }
    g.ops.splice(0..0, widen);
}
