//! Every operator petal runs: its builtin code and how to build it from its options. Adding an
//! op is a file in this folder, one line here, and its test.

use super::{
    activation, binary, concatenation, conv, depthwise_conv, dequantize, fully_connected, pad,
    pool, quantize, reduce, reshape, softmax, strided_slice, transpose, Op,
};
use crate::tflite::parse::OpCode;
use crate::tflite::schema::{BuiltinOperator as B, BuiltinOptions};

type Build = fn(Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String>;

const REGISTRY: &[(B, Build)] = &[
    (B::Abs, activation::build_abs),
    (B::Add, binary::build_add),
    (B::AveragePool2d, pool::build_average),
    (B::Concatenation, concatenation::build_concatenation),
    (B::Conv2d, conv::build),
    (B::DepthwiseConv2d, depthwise_conv::build),
    (B::Dequantize, dequantize::build),
    (B::Div, binary::build_div),
    (B::Exp, activation::build_exp),
    (B::ExpandDims, reshape::build_expand_dims),
    (B::FullyConnected, fully_connected::build),
    (B::Gelu, activation::build_gelu),
    (B::HardSwish, activation::build_hard_swish),
    (B::LeakyRelu, activation::build_leaky_relu),
    (B::Logistic, activation::build_logistic),
    (B::MaxPool2d, pool::build_max),
    (B::Maximum, binary::build_maximum),
    (B::Mean, reduce::build_mean),
    (B::Minimum, binary::build_minimum),
    (B::Mul, binary::build_mul),
    (B::Neg, activation::build_neg),
    (B::Pack, concatenation::build_pack),
    (B::Pad, pad::build),
    (B::Padv2, pad::build),
    (B::Quantize, quantize::build),
    (B::ReduceMax, reduce::build_max),
    (B::ReduceMin, reduce::build_min),
    (B::ReduceProd, reduce::build_prod),
    (B::Relu, activation::build_relu),
    (B::Relu0To1, activation::build_relu_0_to_1),
    (B::Relu6, activation::build_relu6),
    (B::ReluN1To1, activation::build_relu_n1_to_1),
    (B::Reshape, reshape::build_reshape),
    (B::Rsqrt, activation::build_rsqrt),
    (B::Shape, reshape::build_shape),
    (B::Softmax, softmax::build),
    (B::Sqrt, activation::build_sqrt),
    (B::Square, activation::build_square),
    (B::SquaredDifference, binary::build_squared_difference),
    (B::Squeeze, reshape::build_squeeze),
    (B::StridedSlice, strided_slice::build),
    (B::Sub, binary::build_sub),
    (B::Sum, reduce::build_sum),
    (B::Tanh, activation::build_tanh),
    (B::Transpose, transpose::build),
];

/// Builds the op for `code` from its options; an op petal lacks is an error naming it.
pub(crate) fn build(
    code: &OpCode,
    version: i32,
    options: Option<&BuiltinOptions>,
) -> Result<Box<dyn Op>, String> {
    let builtin = match code {
        OpCode::Builtin(b) => *b,
        OpCode::Custom(_) => {
            return Err(
                "custom operators are outside TensorFlow Lite's builtins, and petal \
                        runs only builtins"
                    .into(),
            )
        }
    };
    match REGISTRY.iter().find(|(b, _)| *b == builtin) {
        Some((_, build)) => build(options),
        None => Err(format!(
            "not an operator petal runs yet (version {version}); `petal tflite info` lists the \
             model's operators and `petal tflite ops` lists petal's"
        )),
    }
}

/// The names of the operators petal runs, in TensorFlow Lite's spelling.
pub fn supported() -> Vec<String> {
    REGISTRY
        .iter()
        .map(|(b, _)| crate::tflite::describe::operator_name(*b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operator_is_registered_once() {
        let names = supported();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        assert!(names.contains(&"DEPTHWISE_CONV_2D".to_string()));
    }

    #[test]
    fn an_operator_petal_lacks_is_named_with_its_version() {
        let e = build(&OpCode::Builtin(B::Lstm), 3, None).err().unwrap();
        assert!(
            e.starts_with("not an operator petal runs yet (version 3)"),
            "{e}"
        );
        assert!(e.contains("petal tflite ops"), "{e}");
        let e = build(&OpCode::Custom("Foo".into()), 1, None).err().unwrap();
        assert!(e.contains("custom operators"), "{e}");
    }
}
