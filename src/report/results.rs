//! Every figure of a tutorial run, as `results.json` holds it.

use crate::nn::train::EpochLog;
use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct TutorialResults {
    pub data: Option<DataFacts>,
    /// The tutorial model, then the augmented one.
    pub models: Vec<ModelRun>,
    pub evaluation: Option<EvaluationFacts>,
    pub prediction: Option<PhotoPrediction>,
    pub tflite: Option<TfliteCheck>,
    /// The augmented model as float32, float16, dynamic-range and int8 `.tflite` files.
    pub quantization: Vec<QuantizedForm>,
    pub steps: Vec<StepTime>,
    pub total_seconds: f64,
    /// What went differently from the tutorial (a fallback photo, a failed step…).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DataFacts {
    pub directory: String,
    pub files: usize,
    pub class_names: Vec<String>,
    pub class_counts: Vec<usize>,
    pub training: usize,
    pub validation: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelRun {
    pub name: String,
    pub preset: String,
    pub parameters: usize,
    /// Keras's `model.summary()` table.
    pub summary: String,
    pub epochs: Vec<EpochLog>,
    pub final_accuracy: f64,
    pub final_val_accuracy: f64,
    pub best_val_accuracy: f64,
    pub seconds: f64,
    /// Training images per second over the whole run.
    pub images_per_second: f64,
    pub file: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvaluationFacts {
    pub model: String,
    pub loss: f64,
    pub accuracy: f64,
    pub class_names: Vec<String>,
    /// `confusion[true][predicted]` counts on the validation set.
    pub confusion: Vec<Vec<usize>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhotoPrediction {
    pub photo: String,
    pub model: String,
    pub class: String,
    pub confidence: f64,
    pub logits: Vec<f32>,
    pub class_names: Vec<String>,
    pub probabilities: Vec<f32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TfliteCheck {
    pub file: String,
    pub bytes: u64,
    pub signatures: String,
    pub class: String,
    pub confidence: f64,
    pub max_abs_logit_difference: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuantizedForm {
    /// float32, float16, dynamic or int8.
    pub form: String,
    pub file: String,
    pub bytes: u64,
    /// Through petal's interpreter, one image at a time.
    pub validation_accuracy: f64,
    /// Median batch-1 latency in petal's interpreter.
    pub latency_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepTime {
    pub step: String,
    pub seconds: f64,
}
