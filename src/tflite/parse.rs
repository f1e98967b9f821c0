//! Reading a `.tflite` file into owned, checked structures: every offset, index, shape and
//! buffer size is verified here, so the interpreter never looks at the flatbuffer again and never
//! meets an index it has not seen checked.

use super::schema::{self, BuiltinOperator, BuiltinOptions, ModelRef, TensorType};
use super::tensor::{DType, Data, Quantization};
use planus::ReadAsRoot;

/// The schema version TensorFlow Lite writes and reads.
pub const SCHEMA_VERSION: u32 = 3;
pub const FILE_IDENTIFIER: [u8; 4] = *b"TFL3";

/// Values one tensor may hold, and all tensors together: absurd shapes become errors here
/// instead of allocation failures later.
const MAX_TENSOR_ELEMENTS: usize = 1 << 28;
const MAX_TOTAL_ELEMENTS: usize = 1 << 30;
const MAX_RANK: usize = 8;
const MAX_METADATA_BYTES: usize = 1 << 24;

pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// -1 marks a dimension the model may be run with at other sizes (the batch).
    pub shape_signature: Vec<i32>,
    pub quantization: Option<Quantization>,
    /// The values of a constant tensor (weights, shapes).
    pub data: Option<Data>,
}

impl TensorSpec {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}
/// What an operator is: one of TensorFlow Lite's builtins, or a custom operator by name.
#[derive(Debug, Clone, PartialEq)]
pub enum OpCode {
    Builtin(BuiltinOperator),
    Custom(String),
}

impl OpCode {
    /// TensorFlow Lite's name: CONV_2D, or `custom "Name"`.
    pub fn name(&self) -> String {
        match self {
            OpCode::Builtin(op) => super::describe::operator_name(*op),
            OpCode::Custom(name) => format!("custom \"{name}\""),
        }
    }
}

pub struct OpSpec {
    pub code: OpCode,
    pub version: i32,
    /// The builtin options, owned; each op checks its own kind.
    pub options: Option<BuiltinOptions>,
    /// `None` for an omitted optional input (index -1, e.g. no bias).
    pub inputs: Vec<Option<usize>>,
    pub outputs: Vec<usize>,
}

pub struct Signature {
    pub key: String,
    pub inputs: Vec<(String, usize)>,
    pub outputs: Vec<(String, usize)>,
}

/// A model's one subgraph, checked.
pub struct Graph {
    pub description: String,
    pub tensors: Vec<TensorSpec>,
    pub ops: Vec<OpSpec>,
    pub inputs: Vec<usize>,
    pub outputs: Vec<usize>,
    pub signatures: Vec<Signature>,
    /// Named byte strings the model carries (`Model.metadata`).
    pub metadata: Vec<(String, Vec<u8>)>,
}

/// Parses and checks `bytes`; the error says what is wrong, without the file's name.
pub fn parse(bytes: &[u8]) -> Result<Graph, String> {
    if bytes.len() < 8 {
        return Err(format!(
            "{} bytes is too short for a TensorFlow Lite model (truncated?)",
            bytes.len()
        ));
    }
    if bytes[4..8] != FILE_IDENTIFIER {
        return Err(format!(
            "not a TensorFlow Lite model: the file identifier is {:?}, expected \"TFL3\"",
            String::from_utf8_lossy(&bytes[4..8])
        ));
    }
    let fb = |e: planus::Error| format!("corrupt flatbuffer ({e})");
    let model = ModelRef::read_as_root(bytes).map_err(fb)?;
    let version = model.version().map_err(fb)?;
    if version != SCHEMA_VERSION {
        return Err(format!(
            "schema version {version} is not supported; petal reads version {SCHEMA_VERSION}"
        ));
    }
    let codes = model
        .operator_codes()
        .map_err(fb)?
        .map(|codes| {
            codes
                .iter()
                .enumerate()
                .map(|(i, code)| {
                    operator_code(code.map_err(fb)?).map_err(|e| format!("operator code {i}: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    let subgraphs = model
        .subgraphs()
        .map_err(fb)?
        .ok_or("the model has no subgraph")?;
    if subgraphs.len() != 1 {
        return Err(format!(
            "the model has {} subgraphs; petal runs models with exactly one",
            subgraphs.len()
        ));
    }
    let subgraph = subgraphs
        .get(0)
        .ok_or("the model has no subgraph")?
        .map_err(fb)?;
    let buffers = model.buffers().map_err(fb)?;
    let buffer_bytes = |index: u32| -> Result<&[u8], String> {
        let buffer = buffers
            .and_then(|b| b.get(index as usize))
            .ok_or_else(|| format!("buffer {index} does not exist"))?
            .map_err(fb)?;
        let (offset, size) = (buffer.offset().map_err(fb)?, buffer.size().map_err(fb)?);
        if offset > 1 {
            // Data kept outside the flatbuffer, at an offset from the start of the file.
            let range = usize::try_from(offset)
                .ok()
                .zip(usize::try_from(size).ok())
                .and_then(|(start, len)| Some(start..start.checked_add(len)?))
                .filter(|r| r.end <= bytes.len())
                .ok_or_else(|| {
                    format!(
                        "buffer {index} points at bytes {offset}..{offset}+{size}, past the end of the {}-byte file",
                        bytes.len()
                    )
                })?;
            return Ok(&bytes[range]);
        }
        Ok(buffer.data().map_err(fb)?.unwrap_or_default())
    };

    let mut total = 0usize;
    let tensors = subgraph
        .tensors()
        .map_err(fb)?
        .map(|tensors| {
            tensors
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let t = t.map_err(fb)?;
                    let name = t.name().map_err(fb)?.unwrap_or("").to_owned();
                    let spec = tensor(t, &buffer_bytes)
                        .map_err(|e| format!("tensor {i} (\"{name}\"): {e}"))?;
                    total = total.saturating_add(spec.elements());
                    if total > MAX_TOTAL_ELEMENTS {
                        return Err(format!(
                            "the tensors hold more than {MAX_TOTAL_ELEMENTS} values in all, more than petal handles"
                        ));
                    }
                    Ok(spec)
                })
                .collect::<Result<Vec<_>, String>>()
        })
        .transpose()?
        .unwrap_or_default();
    let tensor_index = |what: &str, i: i64| -> Result<usize, String> {
        usize::try_from(i)
            .ok()
            .filter(|&i| i < tensors.len())
            .ok_or_else(|| {
                format!(
                    "{what} refers to tensor {i}, but the subgraph has {} tensors",
                    tensors.len()
                )
            })
    };
    let index_list = |what: &str, list: Option<planus::Vector<'_, i32>>| {
        list.map(|l| {
            l.iter()
                .map(|i| tensor_index(what, i as i64))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .map(Option::unwrap_or_default)
    };
    let inputs = index_list("the subgraph's input list", subgraph.inputs().map_err(fb)?)?;
    let outputs = index_list(
        "the subgraph's output list",
        subgraph.outputs().map_err(fb)?,
    )?;

    let ops = subgraph
        .operators()
        .map_err(fb)?
        .map(|ops| {
            ops.iter()
                .enumerate()
                .map(|(n, op)| {
                    let op = op.map_err(fb)?;
                    let code_index = op.opcode_index().map_err(fb)?;
                    let (code, version) =
                        codes.get(code_index as usize).cloned().ok_or_else(|| {
                            format!(
                            "operator {n}: operator code {code_index} does not exist ({} codes)",
                            codes.len()
                        )
                        })?;
                    let what = format!("operator {n} ({})", code.name());
                    let options = op
                        .builtin_options()
                        .map_err(fb)?
                        .map(BuiltinOptions::try_from)
                        .transpose()
                        .map_err(|e| format!("{what}: corrupt options ({e})"))?;
                    let inputs = op
                        .inputs()
                        .map_err(fb)?
                        .map(|l| {
                            l.iter()
                                .map(|i| match i {
                                    -1 => Ok(None),
                                    i => tensor_index(&what, i as i64).map(Some),
                                })
                                .collect::<Result<Vec<_>, _>>()
                        })
                        .transpose()?
                        .unwrap_or_default();
                    let outputs = index_list(&what, op.outputs().map_err(fb)?)?;
                    Ok(OpSpec {
                        code,
                        version,
                        options,
                        inputs,
                        outputs,
                    })
                })
                .collect::<Result<Vec<_>, String>>()
        })
        .transpose()?
        .unwrap_or_default();

    let signatures = model
        .signature_defs()
        .map_err(fb)?
        .map(|defs| {
            defs.iter()
                .map(|def| {
                    let def = def.map_err(fb)?;
                    let key = def.signature_key().map_err(fb)?.unwrap_or("").to_owned();
                    if def.subgraph_index().map_err(fb)? != 0 {
                        return Err(format!(
                            "signature \"{key}\" refers to a subgraph other than the first"
                        ));
                    }
                    let maps = |list: Option<
                        planus::Vector<'_, planus::Result<schema::TensorMapRef<'_>>>,
                    >| {
                        list.map(|l| {
                            l.iter()
                                .map(|m| {
                                    let m = m.map_err(fb)?;
                                    let name = m.name().map_err(fb)?.unwrap_or("").to_owned();
                                    let index = tensor_index(
                                        &format!("signature \"{key}\" entry \"{name}\""),
                                        m.tensor_index().map_err(fb)? as i64,
                                    )?;
                                    Ok((name, index))
                                })
                                .collect::<Result<Vec<_>, String>>()
                        })
                        .transpose()
                        .map(Option::unwrap_or_default)
                    };
                    Ok(Signature {
                        inputs: maps(def.inputs().map_err(fb)?)?,
                        outputs: maps(def.outputs().map_err(fb)?)?,
                        key,
                    })
                })
                .collect::<Result<Vec<_>, String>>()
        })
        .transpose()?
        .unwrap_or_default();

    let mut metadata_bytes = 0usize;
    let metadata = model
        .metadata()
        .map_err(fb)?
        .map(|list| {
            list.iter()
                .map(|m| {
                    let m = m.map_err(fb)?;
                    let name = m.name().map_err(fb)?.unwrap_or("").to_owned();
                    let data = buffer_bytes(m.buffer().map_err(fb)?)
                        .map_err(|e| format!("metadata \"{name}\": {e}"))?;
                    metadata_bytes = metadata_bytes.saturating_add(data.len());
                    if metadata_bytes > MAX_METADATA_BYTES {
                        return Err(format!(
                            "the metadata holds more than {MAX_METADATA_BYTES} bytes, more than petal reads"
                        ));
                    }
                    Ok((name, data.to_vec()))
                })
                .collect::<Result<Vec<_>, String>>()
        })
        .transpose()?
        .unwrap_or_default();
    // Files older than signatures (TensorFlow 1's) are run by their graph's inputs and outputs,
    // named by their tensors' names.
    let signatures = match signatures.is_empty() {
        true => {
            let named =
                |list: &[usize]| list.iter().map(|&t| (tensors[t].name.clone(), t)).collect();
            vec![Signature {
                key: DEFAULT_SIGNATURE.to_owned(),
                inputs: named(&inputs),
                outputs: named(&outputs),
            }]
        }
        false => signatures,
    };

    let graph = Graph {
        metadata,
        description: model.description().map_err(fb)?.unwrap_or("").to_owned(),
        tensors,
        ops,
        inputs,
        outputs,
        signatures,
    };
    check_dataflow(&graph)?;
    Ok(graph)
}

/// The signature a file without any gets: its graph's inputs and outputs.
pub const DEFAULT_SIGNATURE: &str = "serving_default";
fn tensor<'a>(
    t: schema::TensorRef<'a>,
    buffer_bytes: &impl Fn(u32) -> Result<&'a [u8], String>,
) -> Result<TensorSpec, String> {
    let fb = |e: planus::Error| format!("corrupt flatbuffer ({e})");
    let dtype = dtype(t.type_().map_err(fb)?)?;
    if t.sparsity().map_err(fb)?.is_some() {
        return Err("sparse tensors are not supported".into());
    }
    if t.is_variable().map_err(fb)? {
        return Err("variable tensors are not supported".into());
    }
    let raw_shape: Vec<i32> = t
        .shape()
        .map_err(fb)?
        .map(|s| s.iter().collect())
        .unwrap_or_default();
    if raw_shape.len() > MAX_RANK {
        return Err(format!(
            "rank {} is more than petal handles ({MAX_RANK})",
            raw_shape.len()
        ));
    }
    let shape = raw_shape
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| format!("shape {raw_shape:?} has a negative dimension"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let elements = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_TENSOR_ELEMENTS)
        .ok_or_else(|| {
            format!("shape {shape:?} is larger than petal handles ({MAX_TENSOR_ELEMENTS} values)")
        })?;
    let shape_signature: Vec<i32> = match t.shape_signature().map_err(fb)? {
        Some(s) => s.iter().collect(),
        None => raw_shape.clone(),
    };
    let signature_fits = shape_signature.len() == shape.len()
        && shape_signature
            .iter()
            .zip(&raw_shape)
            .all(|(&s, &d)| s == d || s == -1);
    if !signature_fits {
        return Err(format!(
            "shape_signature {shape_signature:?} does not fit shape {shape:?}"
        ));
    }
    let quantization = quantization(t.quantization().map_err(fb)?, &shape)?;
    let bytes = buffer_bytes(t.buffer().map_err(fb)?)?;
    let data = if bytes.is_empty() {
        None
    } else {
        let needed = elements * dtype.size();
        if bytes.len() != needed {
            return Err(format!(
                "its buffer holds {} bytes but shape {shape:?} of {} needs {needed}",
                bytes.len(),
                dtype.name(),
            ));
        }
        Some(Data::from_le_bytes(dtype, bytes))
    };
    Ok(TensorSpec {
        name: t.name().map_err(fb)?.unwrap_or("").to_owned(),
        dtype,
        shape,
        shape_signature,
        quantization,
        data,
    })
}

fn dtype(t: TensorType) -> Result<DType, String> {
    Ok(match t {
        TensorType::Float32 => DType::F32,
        TensorType::Float16 => DType::F16,
        TensorType::Int8 => DType::I8,
        TensorType::Uint8 => DType::U8,
        TensorType::Int16 => DType::I16,
        TensorType::Int32 => DType::I32,
        TensorType::Int64 => DType::I64,
        TensorType::Bool => DType::Bool,
        other => {
            return Err(format!(
                "type {} is not supported; petal holds FLOAT32, FLOAT16, INT8, UINT8, INT16, \
                 INT32, INT64 and BOOL tensors",
                super::describe::type_name(other)
            ))
        }
    })
}

/// A tensor's quantization, checked: as many zero points as scales, finite scales, and per
/// channel one scale for each slice along an axis the tensor has.
fn quantization(
    q: Option<schema::QuantizationParametersRef<'_>>,
    shape: &[usize],
) -> Result<Option<Quantization>, String> {
    let fb = |e: planus::Error| format!("corrupt flatbuffer ({e})");
    let Some(q) = q else { return Ok(None) };
    if q.details().map_err(fb)?.is_some() {
        return Err("custom quantization details are not supported".into());
    }
    let scales: Vec<f32> = q
        .scale()
        .map_err(fb)?
        .map_or(Vec::new(), |s| s.iter().collect());
    let zero_points: Vec<i64> = q
        .zero_point()
        .map_err(fb)?
        .map_or(Vec::new(), |z| z.iter().collect());
    if scales.is_empty() && zero_points.is_empty() {
        return Ok(None);
    }
    if scales.len() != zero_points.len() {
        return Err(format!(
            "its quantization has {} scales but {} zero points",
            scales.len(),
            zero_points.len()
        ));
    }
    if let Some(bad) = scales.iter().find(|s| !s.is_finite() || **s < 0.0) {
        return Err(format!(
            "its quantization scale {bad} is not a finite, non-negative number"
        ));
    }
    if let Some(bad) = zero_points.iter().find(|z| i32::try_from(**z).is_err()) {
        return Err(format!("its quantization zero point {bad} is out of range"));
    }
    let axis = q.quantized_dimension().map_err(fb)?;
    let axis =
        usize::try_from(axis).map_err(|_| format!("quantized_dimension {axis} is negative"))?;
    if scales.len() > 1 && shape.get(axis) != Some(&scales.len()) {
        return Err(format!(
            "its {} per-channel scales do not match dimension {axis} of shape {shape:?}",
            scales.len()
        ));
    }
    Ok(Some(Quantization {
        scales,
        zero_points,
        axis,
    }))
}

/// The op code and version: files keep small codes in the old 8-bit field and new ones in the
/// 32-bit field, and TensorFlow Lite takes the larger of the two.
fn operator_code(code: schema::OperatorCodeRef<'_>) -> Result<(OpCode, i32), String> {
    let fb = |e: planus::Error| format!("corrupt flatbuffer ({e})");
    let version = code.version().map_err(fb)?;
    if let Some(custom) = code.custom_code().map_err(fb)? {
        return Ok((OpCode::Custom(custom.to_owned()), version));
    }
    let deprecated = code.deprecated_builtin_code().map_err(fb)? as i32;
    let builtin = code.builtin_code().map_err(fb)?;
    let op = if deprecated > builtin as i32 {
        BuiltinOperator::try_from(deprecated)
            .map_err(|_| format!("unknown operator code {deprecated}"))?
    } else {
        builtin
    };
    Ok((OpCode::Builtin(op), version))
}

/// Every tensor an op reads must be a constant, a subgraph input or the output of an earlier op,
/// and every tensor is written once at most: then running the ops in order is well defined.
fn check_dataflow(graph: &Graph) -> Result<(), String> {
    let name = |t: usize| &graph.tensors[t].name;
    let mut ready: Vec<bool> = graph.tensors.iter().map(|t| t.data.is_some()).collect();
    for &i in &graph.inputs {
        if ready[i] {
            return Err(format!(
                "subgraph input tensor {i} (\"{}\") is a constant or listed twice",
                name(i)
            ));
        }
        ready[i] = true;
    }
    for (n, op) in graph.ops.iter().enumerate() {
        for &i in op.inputs.iter().flatten() {
            if !ready[i] {
                return Err(format!(
                    "operator {n} ({}) reads tensor {i} (\"{}\") before anything writes it",
                    op.code.name(),
                    name(i)
                ));
            }
        }
        for &o in &op.outputs {
            if ready[o] {
                return Err(format!(
                    "operator {n} ({}) writes tensor {o} (\"{}\"), which is a constant, an input or already written",
                    op.code.name(),
                    name(o)
                ));
            }
            ready[o] = true;
        }
    }
    let signature_tensors = graph
        .signatures
        .iter()
        .flat_map(|s| s.inputs.iter().chain(&s.outputs).map(|(_, t)| *t));
    for t in graph.outputs.iter().copied().chain(signature_tensors) {
        if !ready[t] {
            return Err(format!(
                "tensor {t} (\"{}\") is a model output that nothing writes",
                name(t)
            ));
        }
    }
    let mut is_input = vec![false; graph.tensors.len()];
    graph.inputs.iter().for_each(|&i| is_input[i] = true);
    for s in &graph.signatures {
        if let Some((n, t)) = s.inputs.iter().find(|(_, t)| !is_input[*t]) {
            return Err(format!(
                "signature \"{}\" input \"{n}\" is tensor {t}, which is not an input of the subgraph",
                s.key
            ));
        }
    }
    Ok(())
}
