//! A [`Sequential`] model's inference graph in float32: training-only layers such as Dropout
//! and the augmentation layers are left out.
//!
//! Layers become: Rescaling → MUL (and ADD for an offset) by a scalar, or, as TensorFlow's
//! converter does, nothing when it only scales and a Conv2D or Dense follows (its kernel takes
//! the scale); Conv2D → CONV_2D and Dense → FULLY_CONNECTED with ReLU fused, a sigmoid or softmax
//! activation as a LOGISTIC or SOFTMAX op after them; MaxPooling2D → MAX_POOL_2D; Flatten →
//! RESHAPE to `[-1, n]`.

use super::graph::Graph;
use super::INPUT_NAME;
use crate::nn::activation::Activation;
use crate::nn::layers::{Layer, LayerConfig, Padding};
use crate::nn::{Sequential, Shape};
use crate::tflite::schema::{
    self, ActivationFunctionType, BuiltinOperator, BuiltinOptions, TensorType,
};

pub(super) fn build_graph(model: &Sequential) -> Result<Graph, String> {
    let mut g = Graph::default();
    let mut shape = model.input_shape();
    let mut x = g.activation(format!("serving_default_{INPUT_NAME}:0"), &dims(shape));
    g.input = x;
    let exported: Vec<&dyn Layer> = model
        .layers()
        .iter()
        .map(|l| &**l)
        .filter(|l| !l.config().is_training_only())
        .collect();
    // A scale folded into the next layer's kernel.
    let mut pending_scale = 1.0;
    for (i, layer) in exported.iter().enumerate() {
        let name = layer.name().to_owned();
        let out_shape = layer.output_shape();
        match layer.config() {
            LayerConfig::Rescaling { scale, offset, .. } => {
                let next_has_kernel = exported.get(i + 1).is_some_and(|l| {
                    matches!(
                        l.config(),
                        LayerConfig::Conv2D { .. } | LayerConfig::Dense { .. }
                    )
                });
                if offset == 0.0 && next_has_kernel {
                    pending_scale = scale;
                } else {
                    x = rescaling(&mut g, x, &name, shape, scale, offset);
                }
            }
            LayerConfig::Conv2D {
                filters,
                kernel_size,
                strides,
                padding: pad,
                activation,
                ..
            } => {
                let Shape::Image { channels, .. } = shape else {
                    return Err(format!("layer \"{name}\": Conv2D needs image input"));
                };
                let (kh, kw) = kernel_size.get();
                let params = layer.params();
                // Keras's (kh, kw, in, out) to TensorFlow Lite's (out, kh, kw, in).
                let per_filter = kh * kw * channels;
                let mut ohwi = vec![0.0; params[0].value.len()];
                for (k, row) in params[0].value.chunks_exact(filters).enumerate() {
                    for (o, &v) in row.iter().enumerate() {
                        ohwi[o * per_filter + k] = v * pending_scale;
                    }
                }
                let w = g.constant_f32(
                    format!("{name}/kernel"),
                    &[filters, kh, kw, channels],
                    &ohwi,
                );
                let b = bias(&mut g, *layer, &name, filters);
                let y = g.activation(name.clone(), &dims(out_shape));
                let (sh, sw) = strides.get();
                let options = schema::Conv2DOptions {
                    padding: padding(pad),
                    stride_w: sw as i32,
                    stride_h: sh as i32,
                    fused_activation_function: fused(activation),
                    dilation_w_factor: 1,
                    dilation_h_factor: 1,
                    quantized_bias_type: TensorType::Float32,
                };
                g.op(
                    BuiltinOperator::Conv2d,
                    vec![x, w, b],
                    y,
                    Some(BuiltinOptions::Conv2DOptions(Box::new(options))),
                );
                x = unfused(&mut g, activation, y, &name, out_shape);
            }
            LayerConfig::MaxPooling2D {
                pool_size,
                strides,
                padding: pad,
                ..
            } => {
                let (fh, fw) = pool_size.get();
                let (sh, sw) = strides.unwrap_or(pool_size).get();
                let y = g.activation(name, &dims(out_shape));
                let options = schema::Pool2DOptions {
                    padding: padding(pad),
                    stride_w: sw as i32,
                    stride_h: sh as i32,
                    filter_width: fw as i32,
                    filter_height: fh as i32,
                    fused_activation_function: ActivationFunctionType::None,
                };
                g.op(
                    BuiltinOperator::MaxPool2d,
                    vec![x],
                    y,
                    Some(BuiltinOptions::Pool2DOptions(Box::new(options))),
                );
                x = y;
            }
            LayerConfig::Flatten { .. } => {
                let new_shape = [-1, out_shape.size() as i32];
                let s = g.constant_i32(format!("{name}/shape"), &[2], &new_shape);
                let y = g.activation(name, &dims(out_shape));
                let options = schema::ReshapeOptions {
                    new_shape: Some(new_shape.to_vec()),
                };
                g.op(
                    BuiltinOperator::Reshape,
                    vec![x, s],
                    y,
                    Some(BuiltinOptions::ReshapeOptions(Box::new(options))),
                );
                x = y;
            }
            LayerConfig::Dense {
                units, activation, ..
            } => {
                let inputs = shape.size();
                let kernel = &layer.params()[0].value;
                // Keras's (inputs, units) to TensorFlow Lite's (units, inputs).
                let mut transposed = vec![0.0; kernel.len()];
                for (i, row) in kernel.chunks_exact(units).enumerate() {
                    for (u, &v) in row.iter().enumerate() {
                        transposed[u * inputs + i] = v * pending_scale;
                    }
                }
                let w = g.constant_f32(format!("{name}/kernel"), &[units, inputs], &transposed);
                let b = bias(&mut g, *layer, &name, units);
                let y = g.activation(name.clone(), &dims(out_shape));
                let options = schema::FullyConnectedOptions {
                    fused_activation_function: fused(activation),
                    ..Default::default()
                };
                g.op(
                    BuiltinOperator::FullyConnected,
                    vec![x, w, b],
                    y,
                    Some(BuiltinOptions::FullyConnectedOptions(Box::new(options))),
                );
                x = unfused(&mut g, activation, y, &name, out_shape);
            }
            other => {
                return Err(format!(
                    "layer \"{name}\" ({}) cannot be exported to TensorFlow Lite",
                    other.kind()
                ))
            }
        }
        if !matches!(layer.config(), LayerConfig::Rescaling { .. }) {
            pending_scale = 1.0;
        }
        shape = out_shape;
    }
    if g.ops.is_empty() {
        return Err("the model has no inference layers to export".into());
    }
    g.output = x;
    Ok(g)
}

fn dims(shape: Shape) -> Vec<i32> {
    match shape {
        Shape::Image {
            height,
            width,
            channels,
        } => vec![height as i32, width as i32, channels as i32],
        Shape::Vector(n) => vec![n as i32],
    }
}

/// MUL by `scale`, then ADD `offset`, each left out when it changes nothing.
fn rescaling(g: &mut Graph, mut x: i32, name: &str, shape: Shape, scale: f32, offset: f32) -> i32 {
    let steps = [
        (BuiltinOperator::Mul, scale, 1.0, "mul"),
        (BuiltinOperator::Add, offset, 0.0, "add"),
    ];
    for (code, value, identity, what) in steps {
        if value == identity {
            continue;
        }
        let c = g.constant_f32(format!("{name}/{what}/y"), &[], &[value]);
        let y = g.activation(format!("{name}/{what}"), &dims(shape));
        let options = match code {
            BuiltinOperator::Mul => BuiltinOptions::MulOptions(Box::default()),
            _ => BuiltinOptions::AddOptions(Box::default()),
        };
        g.op(code, vec![x, c], y, Some(options));
        x = y;
    }
    x
}

fn bias(g: &mut Graph, layer: &dyn Layer, name: &str, units: usize) -> i32 {
    let params = layer.params();
    let zeros = vec![0.0; units];
    let values = params.get(1).map_or(&zeros[..], |b| &b.value[..]);
    g.constant_f32(format!("{name}/bias"), &[units], values)
}

/// An activation Keras applies after the layer that TensorFlow Lite cannot fuse: its own op.
fn unfused(g: &mut Graph, activation: Activation, x: i32, name: &str, shape: Shape) -> i32 {
    let (code, options, suffix) = match activation {
        Activation::Linear | Activation::Relu => return x,
        Activation::Sigmoid => (BuiltinOperator::Logistic, None, "Sigmoid"),
        Activation::Softmax => (
            BuiltinOperator::Softmax,
            Some(BuiltinOptions::SoftmaxOptions(Box::new(
                schema::SoftmaxOptions { beta: 1.0 },
            ))),
            "Softmax",
        ),
    };
    let y = g.activation(format!("{name}/{suffix}"), &dims(shape));
    g.op(code, vec![x], y, options);
    y
}

fn fused(activation: Activation) -> ActivationFunctionType {
    match activation {
        Activation::Relu => ActivationFunctionType::Relu,
        Activation::Linear | Activation::Sigmoid | Activation::Softmax => {
            ActivationFunctionType::None
        }
    }
}

fn padding(p: Padding) -> schema::Padding {
    match p {
        Padding::Same => schema::Padding::Same,
        Padding::Valid => schema::Padding::Valid,
    }
}
