//! Writing a [`Sequential`] model as a `.tflite` file: the inference graph only (training-only
//! layers such as Dropout are left out), one subgraph with batch dimension 1 that runtimes may
//! resize (`shape_signature` -1), and a `serving_default` signature as TensorFlow's converter
//! writes it.
//!
//! Layers become: Rescaling → MUL (and ADD for an offset) by a scalar; Conv2D → CONV_2D and
//! Dense → FULLY_CONNECTED with ReLU fused, a sigmoid or softmax activation as a LOGISTIC or
//! SOFTMAX op after them; MaxPooling2D → MAX_POOL_2D; Flatten → RESHAPE to `[-1, n]`.
//!
//! Weights are stored after the flatbuffer, each at a 64-byte aligned offset from the start of
//! the file (the schema's `Buffer.offset`/`size`, "version 3c"): planus, which writes the
//! flatbuffer, does not honour the schema's `force_align: 16` for inline buffer data, and data
//! outside the flatbuffer can be aligned exactly (16 is what TensorFlow Lite asks for; 64 suits
//! cache lines and AVX-512 loads).

use super::parse::SCHEMA_VERSION;
use super::schema::{self, ActivationFunctionType, BuiltinOperator, BuiltinOptions, TensorType};
use crate::fsutil::write_atomically;
use crate::nn::activation::Activation;
use crate::nn::layers::{LayerConfig, Padding};
use crate::nn::{Sequential, Shape};
use crate::{Error, Result};
use std::path::Path;

pub const SIGNATURE_KEY: &str = "serving_default";
/// The input's name in the signature: Keras names a Sequential model's input
/// `<model name>_input` (the tutorial's is `sequential_1_input`), and petal's models are named
/// "sequential" (as `petal summary` prints).
pub const INPUT_NAME: &str = "sequential_input";
/// The output's name in the signature, as in the tutorial.
pub const OUTPUT_NAME: &str = "outputs";

/// The metadata entry with the class names (a JSON list of strings), so that `petal predict`
/// can name classes; runtimes ignore metadata they do not know.
pub const CLASS_NAMES_METADATA: &str = "petal_class_names";

const DATA_ALIGNMENT: usize = 64;

/// The `.tflite` file of `model`'s inference graph, with `class_names` in its metadata.
pub fn export(model: &Sequential, class_names: &[String]) -> Result<Vec<u8>> {
    let mut graph = build_graph(model).map_err(|reason| Error::TfLite {
        origin: "TFLite export".into(),
        reason,
    })?;
    let names = serde_json::to_string(class_names).expect("strings serialise");
    graph.data.push(names.into_bytes());
    graph.metadata = Some((CLASS_NAMES_METADATA, graph.data.len() as u32));
    Ok(graph.serialise())
}

/// Writes [`export`]'s bytes to `path` (see [`write_atomically`]) and returns how many.
pub fn export_file(model: &Sequential, class_names: &[String], path: &Path) -> Result<usize> {
    let bytes = export(model, class_names).map_err(|e| match e {
        Error::TfLite { reason, .. } => Error::TfLite {
            origin: path.display().to_string(),
            reason,
        },
        other => other,
    })?;
    write_atomically(path, &bytes)?;
    Ok(bytes.len())
}

#[derive(Default)]
struct GraphBuilder {
    tensors: Vec<schema::Tensor>,
    operators: Vec<schema::Operator>,
    codes: Vec<BuiltinOperator>,
    /// The constants' bytes; constant `i` is buffer `i + 1` (buffer 0 is the empty sentinel).
    data: Vec<Vec<u8>>,
    /// The tensor the signature returns.
    output: i32,
    /// A metadata entry's name and buffer.
    metadata: Option<(&'static str, u32)>,
}

impl GraphBuilder {
    /// A tensor computed at run time for one sample of `shape`, batch 1 and resizable.
    fn activation(&mut self, name: String, shape: Shape) -> i32 {
        let dims: Vec<i32> = match shape {
            Shape::Image {
                height,
                width,
                channels,
            } => vec![height as i32, width as i32, channels as i32],
            Shape::Vector(n) => vec![n as i32],
        };
        self.push_tensor(schema::Tensor {
            shape: Some([1].into_iter().chain(dims.iter().copied()).collect()),
            shape_signature: Some([-1].into_iter().chain(dims).collect()),
            type_: TensorType::Float32,
            buffer: 0,
            name: Some(name),
            ..Default::default()
        })
    }

    fn constant(
        &mut self,
        name: String,
        shape: &[usize],
        type_: TensorType,
        bytes: Vec<u8>,
    ) -> i32 {
        self.data.push(bytes);
        let dims: Vec<i32> = shape.iter().map(|&d| d as i32).collect();
        self.push_tensor(schema::Tensor {
            shape: Some(dims.clone()),
            shape_signature: Some(dims),
            type_,
            buffer: self.data.len() as u32,
            name: Some(name),
            ..Default::default()
        })
    }

    fn constant_f32(&mut self, name: String, shape: &[usize], values: &[f32]) -> i32 {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.constant(name, shape, TensorType::Float32, bytes)
    }

    fn constant_i32(&mut self, name: String, shape: &[usize], values: &[i32]) -> i32 {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.constant(name, shape, TensorType::Int32, bytes)
    }

    fn push_tensor(&mut self, tensor: schema::Tensor) -> i32 {
        self.tensors.push(tensor);
        self.tensors.len() as i32 - 1
    }

    fn op(
        &mut self,
        code: BuiltinOperator,
        inputs: Vec<i32>,
        output: i32,
        options: Option<BuiltinOptions>,
    ) {
        let index = match self.codes.iter().position(|&c| c == code) {
            Some(i) => i,
            None => {
                self.codes.push(code);
                self.codes.len() - 1
            }
        };
        self.operators.push(schema::Operator {
            opcode_index: index as u32,
            inputs: Some(inputs),
            outputs: Some(vec![output]),
            builtin_options: options,
            ..Default::default()
        });
    }

    /// An activation Keras applies after the layer that TensorFlow Lite cannot fuse: its own op.
    fn unfused(&mut self, activation: Activation, x: i32, name: &str, shape: Shape) -> i32 {
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
        let y = self.activation(format!("{name}/{suffix}"), shape);
        self.op(code, vec![x], y, options);
        y
    }

    fn serialise(self) -> Vec<u8> {
        let GraphBuilder {
            tensors,
            operators,
            codes,
            data,
            output,
            metadata,
        } = self;
        let input = 0;
        let model = |offsets: &[usize]| schema::Model {
            version: SCHEMA_VERSION,
            operator_codes: Some(
                codes
                    .iter()
                    .map(|&code| schema::OperatorCode {
                        deprecated_builtin_code: (code as i32).min(127) as i8,
                        builtin_code: code,
                        version: 1,
                        custom_code: None,
                    })
                    .collect(),
            ),
            subgraphs: Some(vec![schema::SubGraph {
                tensors: Some(tensors.clone()),
                inputs: Some(vec![input]),
                outputs: Some(vec![output]),
                operators: Some(operators.clone()),
                name: Some("main".into()),
                debug_metadata_index: -1,
            }]),
            description: Some(format!("petal {}", env!("CARGO_PKG_VERSION"))),
            buffers: Some(
                std::iter::once(schema::Buffer::default())
                    .chain(data.iter().zip(offsets).map(|(d, &at)| schema::Buffer {
                        data: None,
                        offset: at as u64,
                        size: d.len() as u64,
                    }))
                    .collect(),
            ),
            metadata: metadata.map(|(name, buffer)| {
                vec![schema::Metadata {
                    name: Some(name.into()),
                    buffer,
                }]
            }),
            signature_defs: Some(vec![schema::SignatureDef {
                inputs: Some(vec![schema::TensorMap {
                    name: Some(INPUT_NAME.into()),
                    tensor_index: input as u32,
                }]),
                outputs: Some(vec![schema::TensorMap {
                    name: Some(OUTPUT_NAME.into()),
                    tensor_index: output as u32,
                }]),
                signature_key: Some(SIGNATURE_KEY.into()),
                subgraph_index: 0,
            }]),
            ..Default::default()
        };
        // The offsets depend on the flatbuffer's length, which does not depend on their values
        // (fixed-width fields, all present): measure with stand-ins, then write the real ones.
        let stand_ins = vec![usize::MAX >> 1; data.len()];
        let flatbuffer_len = schema::write_model(&model(&stand_ins)).len();
        let mut offsets = Vec::with_capacity(data.len());
        let mut end = flatbuffer_len;
        for d in &data {
            let at = end.next_multiple_of(DATA_ALIGNMENT);
            offsets.push(at);
            end = at + d.len();
        }
        let mut file = schema::write_model(&model(&offsets));
        debug_assert_eq!(file.len(), flatbuffer_len);
        file.reserve(end - file.len());
        for (d, &at) in data.iter().zip(&offsets) {
            file.resize(at, 0);
            file.extend_from_slice(d);
        }
        file
    }
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

fn build_graph(model: &Sequential) -> std::result::Result<GraphBuilder, String> {
    let mut g = GraphBuilder::default();
    let mut shape = model.input_shape();
    let mut x = g.activation(format!("serving_default_{INPUT_NAME}:0"), shape);
    let exported = model
        .layers()
        .iter()
        .filter(|l| !l.config().is_training_only());
    for layer in exported {
        let name = layer.name().to_owned();
        let params = layer.params();
        let out_shape = layer.output_shape();
        match layer.config() {
            LayerConfig::Rescaling { scale, offset, .. } => {
                let steps = [
                    (BuiltinOperator::Mul, scale, 1.0, "mul"),
                    (BuiltinOperator::Add, offset, 0.0, "add"),
                ];
                for (code, value, identity, what) in steps {
                    if value == identity {
                        continue;
                    }
                    let c = g.constant_f32(format!("{name}/{what}/y"), &[], &[value]);
                    let y = g.activation(format!("{name}/{what}"), shape);
                    let options = match code {
                        BuiltinOperator::Mul => BuiltinOptions::MulOptions(Box::default()),
                        _ => BuiltinOptions::AddOptions(Box::default()),
                    };
                    g.op(code, vec![x, c], y, Some(options));
                    x = y;
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
                let kernel = &params[0].value;
                // Keras's (kh, kw, in, out) to TensorFlow Lite's (out, kh, kw, in).
                let per_filter = kh * kw * channels;
                let mut ohwi = vec![0.0; kernel.len()];
                for (k, row) in kernel.chunks_exact(filters).enumerate() {
                    for (o, &v) in row.iter().enumerate() {
                        ohwi[o * per_filter + k] = v;
                    }
                }
                let w = g.constant_f32(
                    format!("{name}/kernel"),
                    &[filters, kh, kw, channels],
                    &ohwi,
                );
                let zeros = vec![0.0; filters];
                let bias = params.get(1).map_or(&zeros[..], |b| &b.value[..]);
                let b = g.constant_f32(format!("{name}/bias"), &[filters], bias);
                let y = g.activation(name.clone(), out_shape);
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
                x = g.unfused(activation, y, &name, out_shape);
            }
            LayerConfig::MaxPooling2D {
                pool_size,
                strides,
                padding: pad,
                ..
            } => {
                let (fh, fw) = pool_size.get();
                let (sh, sw) = strides.unwrap_or(pool_size).get();
                let y = g.activation(name, out_shape);
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
                let y = g.activation(name, out_shape);
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
                let kernel = &params[0].value;
                // Keras's (inputs, units) to TensorFlow Lite's (units, inputs).
                let mut transposed = vec![0.0; kernel.len()];
                for (i, row) in kernel.chunks_exact(units).enumerate() {
                    for (u, &v) in row.iter().enumerate() {
                        transposed[u * inputs + i] = v;
                    }
                }
                let w = g.constant_f32(format!("{name}/kernel"), &[units, inputs], &transposed);
                let zeros = vec![0.0; units];
                let bias = params.get(1).map_or(&zeros[..], |b| &b.value[..]);
                let b = g.constant_f32(format!("{name}/bias"), &[units], bias);
                let y = g.activation(name.clone(), out_shape);
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
                x = g.unfused(activation, y, &name, out_shape);
            }
            other => {
                return Err(format!(
                    "layer \"{name}\" ({}) cannot be exported to TensorFlow Lite",
                    other.kind()
                ))
            }
        }
        shape = out_shape;
    }
    if g.operators.is_empty() {
        return Err("the model has no inference layers to export".into());
    }
    g.output = x;
    Ok(g)
}
