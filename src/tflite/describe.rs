//! What a `.tflite` file holds, read without running it: every tensor's type, shape and
//! quantization, every operator with its version, the signatures and metadata, and whether
//! petal's interpreter runs it (and if not, why). `petal tflite info` prints this for any valid
//! file, so a user sees what a converter made before asking petal to run it.

use super::schema::{self, BuiltinOperator, ModelRef, TensorType};
use super::tensor::Quantization;
use planus::ReadAsRoot;

#[derive(Debug, Clone, PartialEq)]
pub struct TensorSummary {
    pub name: String,
    /// TensorFlow Lite's name of the type: FLOAT32, FLOAT16, INT8, UINT8, INT32, …
    pub dtype: String,
    pub shape: Vec<i32>,
    pub quantization: Option<Quantization>,
    /// Bytes of constant data (weights), 0 for activations.
    pub constant_bytes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OperatorSummary {
    pub name: String,
    pub version: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SignatureSummary {
    pub key: String,
    pub inputs: Vec<(String, usize)>,
    pub outputs: Vec<(String, usize)>,
}

/// The main (first) subgraph of a model, and what surrounds it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSummary {
    pub description: String,
    pub subgraphs: usize,
    pub tensors: Vec<TensorSummary>,
    /// The operators in execution order.
    pub operators: Vec<OperatorSummary>,
    pub inputs: Vec<usize>,
    pub outputs: Vec<usize>,
    pub signatures: Vec<SignatureSummary>,
    pub metadata: Vec<String>,
    /// `Err` with the first thing petal's interpreter cannot run.
    pub runnable: Result<(), String>,
}

/// Reads the summary of `bytes`; an error only for a file that is not a valid model.
pub fn describe(bytes: &[u8]) -> Result<ModelSummary, String> {
    if bytes.len() < 8 || bytes[4..8] != super::parse::FILE_IDENTIFIER {
        return Err("not a TensorFlow Lite model (no \"TFL3\" file identifier)".into());
    }
    let fb = |e: planus::Error| format!("corrupt flatbuffer ({e})");
    let model = ModelRef::read_as_root(bytes).map_err(fb)?;
    let subgraphs = model
        .subgraphs()
        .map_err(fb)?
        .ok_or("the model has no subgraph")?;
    let main = subgraphs
        .get(0)
        .ok_or("the model has no subgraph")?
        .map_err(fb)?;
    let buffer_size = |index: u32| -> Result<usize, String> {
        let Some(buffer) = model
            .buffers()
            .map_err(fb)?
            .and_then(|b| b.get(index as usize))
        else {
            return Ok(0);
        };
        let buffer = buffer.map_err(fb)?;
        Ok(match buffer.offset().map_err(fb)? {
            offset if offset > 1 => buffer.size().map_err(fb)? as usize,
            _ => buffer.data().map_err(fb)?.map_or(0, |d| d.len()),
        })
    };
    let mut tensors = Vec::new();
    for t in main.tensors().map_err(fb)?.into_iter().flatten() {
        let t = t.map_err(fb)?;
        tensors.push(TensorSummary {
            name: t.name().map_err(fb)?.unwrap_or("").to_owned(),
            dtype: type_name(t.type_().map_err(fb)?),
            shape: t
                .shape()
                .map_err(fb)?
                .map_or(Vec::new(), |s| s.iter().collect()),
            quantization: quantization(t.quantization().map_err(fb)?).map_err(fb)?,
            constant_bytes: buffer_size(t.buffer().map_err(fb)?)?,
        });
    }
    let codes: Vec<OperatorSummary> = model
        .operator_codes()
        .map_err(fb)?
        .into_iter()
        .flatten()
        .map(|code| operator(code.map_err(fb)?).map_err(fb))
        .collect::<Result<_, _>>()?;
    let mut operators = Vec::new();
    for op in main.operators().map_err(fb)?.into_iter().flatten() {
        let index = op.map_err(fb)?.opcode_index().map_err(fb)? as usize;
        operators.push(codes.get(index).cloned().ok_or_else(|| {
            format!("an operator refers to operator code {index}, which does not exist")
        })?);
    }
    let indices = |v: Option<planus::Vector<'_, i32>>| -> Vec<usize> {
        v.map_or(Vec::new(), |v| {
            v.iter().map(|i| i.max(0) as usize).collect()
        })
    };
    Ok(ModelSummary {
        description: model.description().map_err(fb)?.unwrap_or("").to_owned(),
        subgraphs: subgraphs.len(),
        tensors,
        operators,
        inputs: indices(main.inputs().map_err(fb)?),
        outputs: indices(main.outputs().map_err(fb)?),
        signatures: signatures(&model).map_err(fb)?,
        metadata: model
            .metadata()
            .map_err(fb)?
            .into_iter()
            .flatten()
            .map(|m| Ok(m?.name()?.unwrap_or("").to_owned()))
            .collect::<Result<_, planus::Error>>()
            .map_err(fb)?,
        runnable: super::Interpreter::from_bytes(bytes, "")
            .map(|_| ())
            .map_err(|e| match e {
                crate::Error::TfLite { reason, .. } => reason,
                other => other.to_string(),
            }),
    })
}

fn quantization(
    q: Option<schema::QuantizationParametersRef<'_>>,
) -> planus::Result<Option<Quantization>> {
    let Some(q) = q else { return Ok(None) };
    let scales: Vec<f32> = q.scale()?.map_or(Vec::new(), |s| s.iter().collect());
    if scales.is_empty() {
        return Ok(None);
    }
    Ok(Some(Quantization {
        scales,
        zero_points: q.zero_point()?.map_or(Vec::new(), |z| z.iter().collect()),
        axis: q.quantized_dimension()?.max(0) as usize,
    }))
}

fn operator(code: schema::OperatorCodeRef<'_>) -> planus::Result<OperatorSummary> {
    let version = code.version()?;
    if let Some(custom) = code.custom_code()? {
        return Ok(OperatorSummary {
            name: format!("custom \"{custom}\""),
            version,
        });
    }
    // Codes up to 127 were kept in a byte; files from before the wider field use only that.
    let deprecated = code.deprecated_builtin_code()? as i32;
    let builtin = code.builtin_code()?;
    let name = if deprecated > builtin as i32 {
        BuiltinOperator::try_from(deprecated)
            .map(operator_name)
            .unwrap_or_else(|_| format!("unknown builtin {deprecated}"))
    } else {
        operator_name(builtin)
    };
    Ok(OperatorSummary { name, version })
}

fn signatures(model: &ModelRef<'_>) -> planus::Result<Vec<SignatureSummary>> {
    let map = |v: Option<planus::Vector<'_, planus::Result<schema::TensorMapRef<'_>>>>| {
        v.into_iter()
            .flatten()
            .map(|m| {
                let m = m?;
                Ok((
                    m.name()?.unwrap_or("").to_owned(),
                    m.tensor_index()? as usize,
                ))
            })
            .collect::<planus::Result<Vec<_>>>()
    };
    model
        .signature_defs()?
        .into_iter()
        .flatten()
        .map(|def| {
            let def = def?;
            Ok(SignatureSummary {
                key: def.signature_key()?.unwrap_or("").to_owned(),
                inputs: map(def.inputs()?)?,
                outputs: map(def.outputs()?)?,
            })
        })
        .collect()
}

/// TensorFlow Lite's own spelling of a type (the schema's: FLOAT32, INT8, …).
pub(crate) fn type_name(t: TensorType) -> String {
    screaming_snake(&format!("{t:?}"))
}

/// TensorFlow Lite's spelling of an operator (CONV_2D, DEPTHWISE_CONV_2D, HARD_SWISH, …).
pub(crate) fn operator_name(op: BuiltinOperator) -> String {
    screaming_snake(&format!("{op:?}"))
}

/// `DepthwiseConv2d` → `DEPTHWISE_CONV_2D`, `Float32` → `FLOAT32`: a word starts at each capital
/// after a small letter or digit, and "2d"/"3d" suffixes stand apart, as the schema spells them.
fn screaming_snake(camel: &str) -> String {
    let chars: Vec<char> = camel.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let previous = i.checked_sub(1).map(|p| chars[p]);
        let starts_word = c.is_ascii_uppercase()
            && previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit());
        let dimension_suffix = c.is_ascii_digit()
            && previous.is_some_and(|p| p.is_ascii_lowercase())
            && chars.get(i + 1) == Some(&'d');
        if starts_word || dimension_suffix {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_spelled_as_the_schema_spells_them() {
        for (op, name) in [
            (BuiltinOperator::Conv2d, "CONV_2D"),
            (BuiltinOperator::DepthwiseConv2d, "DEPTHWISE_CONV_2D"),
            (BuiltinOperator::FullyConnected, "FULLY_CONNECTED"),
            (BuiltinOperator::AveragePool2d, "AVERAGE_POOL_2D"),
            (BuiltinOperator::HardSwish, "HARD_SWISH"),
            (BuiltinOperator::Relu6, "RELU6"),
            (BuiltinOperator::Dequantize, "DEQUANTIZE"),
        ] {
            assert_eq!(operator_name(op), name);
        }
        assert_eq!(type_name(TensorType::Float16), "FLOAT16");
        assert_eq!(type_name(TensorType::Uint8), "UINT8");
    }
}
