//! TensorFlow Lite: petal's models exported as `.tflite` files that TensorFlow's runtime (LiteRT)
//! runs, and an interpreter that runs such files, petal's and TensorFlow's converter's, with the
//! native engine's kernels.

mod describe;
mod export;
mod interpreter;
pub mod metadata;
pub mod npy;
mod ops;
mod parse;
pub mod schema;
mod tensor;

pub use describe::{describe, ModelSummary, OperatorSummary, SignatureSummary, TensorSummary};
pub use export::{
    export, export_file, CLASS_NAMES_METADATA, INPUT_NAME, OUTPUT_NAME, SIGNATURE_KEY,
};
pub use interpreter::{format_shape, Interpreter, SignatureInfo, SignatureRunner, TensorInfo};
pub use ops::registry::supported as supported_ops;
pub use tensor::{DType, Data, Quantization, Tensor};
