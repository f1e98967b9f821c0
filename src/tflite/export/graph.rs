//! The graph an export builds before writing it: tensors, operators and constant data as the
//! schema holds them, so that the quantization passes can rewrite it in place.
//!
//! Constants are stored after the flatbuffer, each at a 64-byte aligned offset from the start of
//! the file (the schema's `Buffer.offset`/`size`, "version 3c"): planus, which writes the
//! flatbuffer, does not honour the schema's `force_align: 16` for inline buffer data, and data
//! outside the flatbuffer can be aligned exactly (16 is what TensorFlow Lite asks for; 64 suits
//! cache lines and AVX-512 loads).

use super::scales::symmetric_per_channel;
use super::{INPUT_NAME, OUTPUT_NAME, SIGNATURE_KEY};
use crate::tflite::parse::SCHEMA_VERSION;
use crate::tflite::schema::{self, BuiltinOperator, BuiltinOptions, TensorType};

const DATA_ALIGNMENT: usize = 64;

pub(in crate::tflite) struct Op {
    pub code: BuiltinOperator,
    /// The version TensorFlow's converter gives an operator of these types; the file's operator
    /// code takes the largest of its operators'.
    pub version: i32,
    pub inputs: Vec<i32>,
    pub output: i32,
    pub options: Option<BuiltinOptions>,
}

#[derive(Default)]
pub(in crate::tflite) struct Graph {
    pub tensors: Vec<schema::Tensor>,
    /// In execution order.
    pub ops: Vec<Op>,
    /// The constants' bytes; constant `i` is buffer `i + 1` (buffer 0 is the empty sentinel).
    data: Vec<Vec<u8>>,
    pub input: i32,
    pub output: i32,
    metadata: Vec<(String, u32)>,
}

impl Graph {
    /// A tensor computed at run time, batch 1 and resizable (`shape_signature` -1), with
    /// `per_sample` dimensions after the batch.
    pub fn activation(&mut self, name: String, per_sample: &[i32]) -> i32 {
        let shape: Vec<i32> = [1].iter().chain(per_sample).copied().collect();
        let signature: Vec<i32> = [-1].iter().chain(per_sample).copied().collect();
        self.push_tensor(schema::Tensor {
            shape: Some(shape),
            shape_signature: Some(signature),
            type_: TensorType::Float32,
            name: Some(name),
            ..Default::default()
        })
    }

    /// A tensor computed at run time with `of`'s shape, name suffixed, of type `type_`.
    pub fn computed_like(&mut self, of: i32, suffix: &str, type_: TensorType) -> i32 {
        let template = &self.tensors[of as usize];
        let tensor = schema::Tensor {
            shape: template.shape.clone(),
            shape_signature: template.shape_signature.clone(),
            type_,
            name: Some(format!("{}{suffix}", self.name(of))),
            ..Default::default()
        };
        self.push_tensor(tensor)
    }

    pub fn constant(
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

    pub fn constant_f32(&mut self, name: String, shape: &[usize], values: &[f32]) -> i32 {
        self.constant(
            name,
            shape,
            TensorType::Float32,
            le_bytes(values, f32::to_le_bytes),
        )
    }

    pub fn constant_i32(&mut self, name: String, shape: &[usize], values: &[i32]) -> i32 {
        self.constant(
            name,
            shape,
            TensorType::Int32,
            le_bytes(values, i32::to_le_bytes),
        )
    }

    /// The values of a FLOAT32 constant; `None` for anything else.
    pub fn f32_constant(&self, tensor: i32) -> Option<Vec<f32>> {
        let t = &self.tensors[tensor as usize];
        if t.buffer == 0 || t.type_ != TensorType::Float32 {
            return None;
        }
        let bytes = &self.data[t.buffer as usize - 1];
        Some(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        )
    }

    /// Gives constant `tensor` new contents of another type.
    pub fn replace_constant(&mut self, tensor: i32, type_: TensorType, bytes: Vec<u8>) {
        let t = &mut self.tensors[tensor as usize];
        t.type_ = type_;
        self.data[t.buffer as usize - 1] = bytes;
    }

    /// Makes the float weights `tensor` symmetric int8, one scale per slice along axis 0, and
    /// returns the scales.
    pub fn quantize_weights(&mut self, tensor: i32, values: &[f32]) -> Vec<f32> {
        let channels = self.tensors[tensor as usize]
            .shape
            .as_ref()
            .map_or(1, |s| s[0] as usize);
        let (quantized, scales) = symmetric_per_channel(values, channels);
        self.replace_constant(
            tensor,
            TensorType::Int8,
            le_bytes(&quantized, i8::to_le_bytes),
        );
        self.set_quantization(tensor, scales.clone(), vec![0; channels]);
        scales
    }

    pub fn name(&self, tensor: i32) -> &str {
        self.tensors[tensor as usize].name.as_deref().unwrap_or("")
    }

    pub fn set_quantization(&mut self, tensor: i32, scales: Vec<f32>, zero_points: Vec<i64>) {
        self.tensors[tensor as usize].quantization =
            Some(Box::new(schema::QuantizationParameters {
                scale: Some(scales),
                zero_point: Some(zero_points),
                ..Default::default()
            }));
    }

    /// The single scale and zero point of an affinely quantized tensor.
    pub fn affine(&self, tensor: i32) -> Option<(f32, i64)> {
        let q = self.tensors[tensor as usize].quantization.as_ref()?;
        match (q.scale.as_deref()?, q.zero_point.as_deref()?) {
            ([scale], [zero_point]) => Some((*scale, *zero_point)),
            _ => None,
        }
    }

    /// Appends an operator of version 1, the float one.
    pub fn op(
        &mut self,
        code: BuiltinOperator,
        inputs: Vec<i32>,
        output: i32,
        options: Option<BuiltinOptions>,
    ) {
        self.ops.push(Op {
            code,
            version: 1,
            inputs,
            output,
            options,
        });
    }

    /// Makes every operator that reads `from` read `to` instead.
    pub fn reroute_readers(&mut self, from: i32, to: i32) {
        for input in self.ops.iter_mut().flat_map(|op| op.inputs.iter_mut()) {
            if *input == from {
                *input = to;
            }
        }
    }

    pub fn push_metadata(&mut self, name: &str, bytes: Vec<u8>) {
        self.data.push(bytes);
        self.metadata
            .push((name.to_owned(), self.data.len() as u32));
    }

    fn push_tensor(&mut self, tensor: schema::Tensor) -> i32 {
        self.tensors.push(tensor);
        self.tensors.len() as i32 - 1
    }

    /// The operator codes, in order of first use, and each operator's index into them.
    fn operator_codes(&self) -> (Vec<schema::OperatorCode>, Vec<u32>) {
        let mut codes: Vec<schema::OperatorCode> = Vec::new();
        let mut indices = Vec::with_capacity(self.ops.len());
        for op in &self.ops {
            let index = match codes.iter().position(|c| c.builtin_code == op.code) {
                Some(i) => {
                    codes[i].version = codes[i].version.max(op.version);
                    i
                }
                None => {
                    codes.push(schema::OperatorCode {
                        deprecated_builtin_code: (op.code as i32).min(127) as i8,
                        builtin_code: op.code,
                        version: op.version,
                        custom_code: None,
                    });
                    codes.len() - 1
                }
            };
            indices.push(index as u32);
        }
        (codes, indices)
    }

    pub fn serialise(self) -> Vec<u8> {
        let (codes, code_indices) = self.operator_codes();
        let operators: Vec<schema::Operator> = self
            .ops
            .iter()
            .zip(code_indices)
            .map(|(op, opcode_index)| schema::Operator {
                opcode_index,
                inputs: Some(op.inputs.clone()),
                outputs: Some(vec![op.output]),
                builtin_options: op.options.clone(),
                ..Default::default()
            })
            .collect();
        let Graph {
            tensors,
            data,
            input,
            output,
            metadata,
            ..
        } = self;
        let model = |offsets: &[usize]| schema::Model {
            version: SCHEMA_VERSION,
            operator_codes: Some(codes.clone()),
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
            metadata: Some(
                metadata
                    .iter()
                    .map(|(name, buffer)| schema::Metadata {
                        name: Some(name.clone()),
                        buffer: *buffer,
                    })
                    .collect(),
            ),
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

pub(super) fn le_bytes<T: Copy, const N: usize>(
    values: &[T],
    to_bytes: fn(T) -> [u8; N],
) -> Vec<u8> {
    values.iter().flat_map(|&v| to_bytes(v)).collect()
}
