//! Writing a [`Sequential`] model as a `.tflite` file: the inference graph only, one subgraph
//! with batch dimension 1 that runtimes may resize (`shape_signature` -1), and a
//! `serving_default` signature as TensorFlow's converter writes it; in float32 or in one of the
//! converter's three quantized forms ([`Form`]).

mod calibration;
mod dynamic_range;
mod float16;
pub(super) mod graph;
mod int8;
mod scales;
mod sequential;

pub use calibration::{calibrate, ActivationRanges, Calibrator};
pub use int8::ModelIo;

use crate::fsutil::write_atomically;
use crate::nn::Sequential;
use crate::tflite::Interpreter;
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

/// How an export stores the model, as TensorFlow's converter options name them.
#[derive(Debug, Clone)]
pub enum Form {
    Float32,
    /// `supported_types = [tf.float16]`: float16 constants, float32 arithmetic.
    Float16,
    /// `optimizations = [Optimize.DEFAULT]` alone: int8 weights, float activations.
    DynamicRange,
    /// A `representative_dataset` too: integer arithmetic throughout, with the activation
    /// ranges a [`Calibrator`] observed and the input and output type `io`.
    Int8 {
        ranges: ActivationRanges,
        io: ModelIo,
    },
}

impl Form {
    /// The name `petal export --quantize` takes.
    pub fn name(&self) -> &'static str {
        match self {
            Form::Float32 => "float32",
            Form::Float16 => "float16",
            Form::DynamicRange => "dynamic",
            Form::Int8 { .. } => "int8",
        }
    }
}

/// The float32 `.tflite` file of `model`'s inference graph, with `class_names` in its metadata.
pub fn export(model: &Sequential, class_names: &[String]) -> Result<Vec<u8>> {
    export_as(model, class_names, &Form::Float32)
}

/// The `.tflite` file of `model` in `form`, with `class_names` in its metadata.
pub fn export_as(model: &Sequential, class_names: &[String], form: &Form) -> Result<Vec<u8>> {
    let error = |reason: String| Error::TfLite {
        origin: "TFLite export".into(),
        reason,
    };
    let mut graph = sequential::build_graph(model).map_err(error)?;
    match form {
        Form::Float32 => {}
        Form::Float16 => float16::convert(&mut graph),
        Form::DynamicRange => dynamic_range::convert(&mut graph),
        Form::Int8 { ranges, io } => {
            if !ranges.covers(&graph) {
                return Err(error(
                    "the activation ranges were calibrated on another model".into(),
                ));
            }
            int8::convert(&mut graph, ranges, *io).map_err(error)?;
        }
    }
    let names = serde_json::to_string(class_names).expect("strings serialise");
    graph.push_metadata(CLASS_NAMES_METADATA, names.into_bytes());
    let bytes = graph.serialise();
    // Loading checks every offset, shape and quantization parameter as strictly as LiteRT:
    // a file petal's own interpreter refuses is never written.
    Interpreter::from_bytes(&bytes, "the exported model").map_err(|e| {
        error(format!(
            "petal made a {} file its own interpreter refuses ({e}); please report this",
            form.name()
        ))
    })?;
    Ok(bytes)
}

/// Writes [`export`]'s bytes to `path` (see [`write_atomically`]) and returns how many.
pub fn export_file(model: &Sequential, class_names: &[String], path: &Path) -> Result<usize> {
    export_file_as(model, class_names, &Form::Float32, path)
}

/// Writes [`export_as`]'s bytes to `path` (see [`write_atomically`]) and returns how many.
pub fn export_file_as(
    model: &Sequential,
    class_names: &[String],
    form: &Form,
    path: &Path,
) -> Result<usize> {
    let bytes = export_as(model, class_names, form).map_err(|e| match e {
        Error::TfLite { reason, .. } => Error::TfLite {
            origin: path.display().to_string(),
            reason,
        },
        other => other,
    })?;
    write_atomically(path, &bytes)?;
    Ok(bytes.len())
}
