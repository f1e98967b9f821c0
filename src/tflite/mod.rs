//! TensorFlow Lite: petal's models exported as `.tflite` files that TensorFlow's runtime (LiteRT)
//! runs, and an interpreter that runs such files, petal's and TensorFlow's converter's, with the
//! native engine's kernels.

mod classifier;
mod describe;
mod export;
mod fusion;
mod interpreter;
pub mod metadata;
pub mod npy;
mod ops;
mod parse;
pub mod schema;
mod tensor;

pub use classifier::{class_names, is_tflite, ImageClassifier};
pub use describe::{describe, ModelSummary, OperatorSummary, SignatureSummary, TensorSummary};
pub use export::{
    calibrate, export, export_as, export_file, export_file_as, ActivationRanges, Calibrator, Form,
    ModelIo, CLASS_NAMES_METADATA, INPUT_NAME, OUTPUT_NAME, SIGNATURE_KEY,
};
pub use interpreter::{format_shape, Interpreter, SignatureInfo, SignatureRunner, TensorInfo};
pub use ops::registry::supported as supported_ops;
pub use tensor::{DType, Data, Quantization, Tensor};
