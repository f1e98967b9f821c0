//! The operators petal runs, as read from the flatbuffer: the op code, and each op's builtin
//! options checked (strides and windows of at least 1, fused activations and layouts petal
//! supports). Anything else is refused here, before any kernel is built.

use super::schema::{self, ActivationFunctionType, BuiltinOperator, BuiltinOptionsRef, TensorType};

/// The activation TensorFlow Lite fuses into an op's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fused {
    None,
    Relu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    Same,
    Valid,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OpKind {
    Conv2D {
        stride: (usize, usize),
        padding: Padding,
        activation: Fused,
    },
    MaxPool2D {
        filter: (usize, usize),
        stride: (usize, usize),
        padding: Padding,
        activation: Fused,
    },
    FullyConnected {
        activation: Fused,
        keep_num_dims: bool,
    },
    Reshape {
        new_shape: Option<Vec<i32>>,
    },
    Shape,
    StridedSlice {
        begin_mask: i32,
        end_mask: i32,
        shrink_axis_mask: i32,
    },
    Pack {
        axis: i32,
    },
    Mul {
        activation: Fused,
    },
    Add {
        activation: Fused,
    },
    Softmax {
        beta: f32,
    },
    Logistic,
}

impl OpKind {
    /// TensorFlow Lite's name for the operator.
    pub fn name(&self) -> &'static str {
        match self {
            OpKind::Conv2D { .. } => "CONV_2D",
            OpKind::MaxPool2D { .. } => "MAX_POOL_2D",
            OpKind::FullyConnected { .. } => "FULLY_CONNECTED",
            OpKind::Reshape { .. } => "RESHAPE",
            OpKind::Shape => "SHAPE",
            OpKind::StridedSlice { .. } => "STRIDED_SLICE",
            OpKind::Pack { .. } => "PACK",
            OpKind::Mul { .. } => "MUL",
            OpKind::Add { .. } => "ADD",
            OpKind::Softmax { .. } => "SOFTMAX",
            OpKind::Logistic => "LOGISTIC",
        }
    }
}

/// The op code: files keep small codes in the old 8-bit field and new ones in the 32-bit field,
/// and TensorFlow Lite takes the larger of the two.
pub fn operator_code(code: schema::OperatorCodeRef<'_>) -> Result<BuiltinOperator, String> {
    let fb = |e: planus::Error| format!("corrupt flatbuffer ({e})");
    if let Some(custom) = code.custom_code().map_err(fb)? {
        return Err(format!(
            "custom operator \"{custom}\" is not supported by petal"
        ));
    }
    let deprecated = code.deprecated_builtin_code().map_err(fb)? as i32;
    let builtin = code.builtin_code().map_err(fb)?;
    if deprecated > builtin as i32 {
        return BuiltinOperator::try_from(deprecated)
            .map_err(|_| format!("unknown operator code {deprecated}"));
    }
    Ok(builtin)
}

fn fused(f: ActivationFunctionType) -> Result<Fused, String> {
    match f {
        ActivationFunctionType::None => Ok(Fused::None),
        ActivationFunctionType::Relu => Ok(Fused::Relu),
        other => Err(format!("fused activation {other:?} is not supported")),
    }
}

fn padding(p: schema::Padding) -> Padding {
    match p {
        schema::Padding::Same => Padding::Same,
        schema::Padding::Valid => Padding::Valid,
    }
}

fn positive(what: &str, v: i32) -> Result<usize, String> {
    usize::try_from(v)
        .ok()
        .filter(|&v| v >= 1)
        .ok_or_else(|| format!("{what} must be at least 1, got {v}"))
}

pub fn op_kind(
    code: BuiltinOperator,
    options: Option<BuiltinOptionsRef<'_>>,
) -> Result<OpKind, String> {
    let fb = |e: planus::Error| format!("corrupt flatbuffer ({e})");
    let missing = || format!("its options are missing or of the wrong kind ({options:?})");
    Ok(match code {
        BuiltinOperator::Conv2d => {
            let Some(BuiltinOptionsRef::Conv2DOptions(o)) = options else {
                return Err(missing());
            };
            if (
                o.dilation_h_factor().map_err(fb)?,
                o.dilation_w_factor().map_err(fb)?,
            ) != (1, 1)
            {
                return Err("dilated convolutions are not supported".into());
            }
            OpKind::Conv2D {
                stride: (
                    positive("stride_h", o.stride_h().map_err(fb)?)?,
                    positive("stride_w", o.stride_w().map_err(fb)?)?,
                ),
                padding: padding(o.padding().map_err(fb)?),
                activation: fused(o.fused_activation_function().map_err(fb)?)?,
            }
        }
        BuiltinOperator::MaxPool2d => {
            let Some(BuiltinOptionsRef::Pool2DOptions(o)) = options else {
                return Err(missing());
            };
            OpKind::MaxPool2D {
                filter: (
                    positive("filter_height", o.filter_height().map_err(fb)?)?,
                    positive("filter_width", o.filter_width().map_err(fb)?)?,
                ),
                stride: (
                    positive("stride_h", o.stride_h().map_err(fb)?)?,
                    positive("stride_w", o.stride_w().map_err(fb)?)?,
                ),
                padding: padding(o.padding().map_err(fb)?),
                activation: fused(o.fused_activation_function().map_err(fb)?)?,
            }
        }
        BuiltinOperator::FullyConnected => match options {
            None => OpKind::FullyConnected {
                activation: Fused::None,
                keep_num_dims: false,
            },
            Some(BuiltinOptionsRef::FullyConnectedOptions(o)) => {
                if o.weights_format().map_err(fb)?
                    != schema::FullyConnectedOptionsWeightsFormat::Default
                {
                    return Err("shuffled weight formats are not supported".into());
                }
                OpKind::FullyConnected {
                    activation: fused(o.fused_activation_function().map_err(fb)?)?,
                    keep_num_dims: o.keep_num_dims().map_err(fb)?,
                }
            }
            Some(_) => return Err(missing()),
        },
        BuiltinOperator::Reshape => match options {
            None => OpKind::Reshape { new_shape: None },
            Some(BuiltinOptionsRef::ReshapeOptions(o)) => OpKind::Reshape {
                new_shape: o.new_shape().map_err(fb)?.map(|s| s.iter().collect()),
            },
            Some(_) => return Err(missing()),
        },
        BuiltinOperator::Shape => {
            if let Some(BuiltinOptionsRef::ShapeOptions(o)) = options {
                if o.out_type().map_err(fb)? != TensorType::Int32 {
                    return Err("only INT32 shapes are supported".into());
                }
            }
            OpKind::Shape
        }
        BuiltinOperator::StridedSlice => {
            let Some(BuiltinOptionsRef::StridedSliceOptions(o)) = options else {
                return Err(missing());
            };
            if o.ellipsis_mask().map_err(fb)? != 0
                || o.new_axis_mask().map_err(fb)? != 0
                || o.offset().map_err(fb)?
            {
                return Err("ellipsis_mask, new_axis_mask and offset are not supported".into());
            }
            OpKind::StridedSlice {
                begin_mask: o.begin_mask().map_err(fb)?,
                end_mask: o.end_mask().map_err(fb)?,
                shrink_axis_mask: o.shrink_axis_mask().map_err(fb)?,
            }
        }
        BuiltinOperator::Pack => {
            let Some(BuiltinOptionsRef::PackOptions(o)) = options else {
                return Err(missing());
            };
            OpKind::Pack {
                axis: o.axis().map_err(fb)?,
            }
        }
        BuiltinOperator::Mul => OpKind::Mul {
            activation: match options {
                Some(BuiltinOptionsRef::MulOptions(o)) => {
                    fused(o.fused_activation_function().map_err(fb)?)?
                }
                None => Fused::None,
                Some(_) => return Err(missing()),
            },
        },
        BuiltinOperator::Add => OpKind::Add {
            activation: match options {
                Some(BuiltinOptionsRef::AddOptions(o)) => {
                    fused(o.fused_activation_function().map_err(fb)?)?
                }
                None => Fused::None,
                Some(_) => return Err(missing()),
            },
        },
        BuiltinOperator::Softmax => OpKind::Softmax {
            beta: match options {
                Some(BuiltinOptionsRef::SoftmaxOptions(o)) => o.beta().map_err(fb)?,
                None => 1.0,
                Some(_) => return Err(missing()),
            },
        },
        BuiltinOperator::Logistic => OpKind::Logistic,
        other => {
            return Err(format!(
                "operator {other:?} is not supported by petal (it runs CONV_2D, MAX_POOL_2D, \
                 FULLY_CONNECTED, RESHAPE, SHAPE, STRIDED_SLICE, PACK, MUL, ADD, SOFTMAX, LOGISTIC)"
            ))
        }
    })
}
