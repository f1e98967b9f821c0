//! A `.tflite` image classifier as `petal predict` and `petal evaluate` run it: photos resized
//! to its input, scaled as its metadata (or the caller) says, quantized when its input is, and
//! its scores read back as real numbers with the class names the file carries.

use super::{DType, Interpreter, Quantization, Tensor, CLASS_NAMES_METADATA};
use crate::data::{Dataset, ImageU8};
use crate::nn::train::{argmax, Evaluation};
use crate::{Error, Result};
use rayon::prelude::*;
use std::io::Read;
use std::path::Path;

/// Images [`ImageClassifier::evaluate`] decodes at once.
const DECODE_AHEAD: usize = 32;

pub fn class_names(interpreter: &Interpreter) -> Option<Vec<String>> {
    serde_json::from_slice(interpreter.metadata(CLASS_NAMES_METADATA)?).ok()
}

/// Whether `path` holds a TensorFlow Lite model (its file identifier, whatever the extension).
pub fn is_tflite(path: &Path) -> bool {
    let mut head = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|_| head[4..8] == *b"TFL3")
}

/// Class names from a labels file: one per line, blank lines at the end ignored.
fn read_labels(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text
        .trim_end()
        .lines()
        .map(|l| l.trim().to_owned())
        .collect())
}

/// The labels file TensorFlow Lite's metadata writer packs into a model (the file is then
/// also a zip archive): the member the metadata names, else the first `.txt` one, if it has
/// `classes` lines.
fn packed_labels(model: &Path, named: Option<&str>, classes: usize) -> Option<Vec<String>> {
    let bytes = std::fs::read(model).ok()?;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).ok()?;
    for i in 0..archive.len() {
        let mut member = archive.by_index(i).ok()?;
        let wanted = member
            .name()
            .is_ok_and(|n| named.map_or(n.ends_with(".txt"), |named| n == named));
        if !wanted || member.size() > 1 << 20 {
            continue;
        }
        let mut text = String::new();
        member.read_to_string(&mut text).ok()?;
        let names: Vec<String> = text
            .trim_end()
            .lines()
            .map(|l| l.trim().to_owned())
            .collect();
        if names.len() == classes {
            return Some(names);
        }
    }
    None
}

/// A `.tflite` image classifier: the first signature, one image in, class scores out.
pub struct ImageClassifier {
    interpreter: Interpreter,
    /// Maps 0‥255 pixels to the model's input: (x − mean) / std, per channel or for all.
    mean: Vec<f32>,
    std: Vec<f32>,
    signature: String,
    input_name: String,
    /// How the input stores values: its type and quantization (pixels are quantized to it).
    input_type: (DType, Option<Quantization>),
    /// Height, width, channels.
    pub input: (usize, usize, usize),
    /// From `labels`, the file, or numbers (`class_0`, …) when neither names them.
    pub class_names: Vec<String>,
    /// Whether the classes are only numbered.
    pub numbered_classes: bool,
    /// Whether the model ends in SOFTMAX (its outputs are probabilities already).
    probabilities: bool,
}

impl ImageClassifier {
    /// `input_range` (the range 0‥255 pixels map to) overrides what the model's metadata says;
    /// without either, pixels go in as they are.
    pub fn open(
        path: &Path,
        labels: Option<&Path>,
        input_range: Option<(f32, f32)>,
    ) -> Result<Self> {
        let interpreter = Interpreter::from_file(path)?;
        let metadata = interpreter
            .metadata(super::metadata::METADATA_NAME)
            .map(super::metadata::read)
            .unwrap_or_default();
        let error = |reason: &str| Error::TfLite {
            origin: path.display().to_string(),
            reason: reason.into(),
        };
        let signature = interpreter
            .signature_list()
            .into_iter()
            .next()
            .ok_or_else(|| error("the model has no signature to run"))?;
        let (input, output) = match (&signature.inputs[..], &signature.outputs[..]) {
            ([input], [output]) => (input.clone(), output.clone()),
            _ => {
                return Err(error(
                    "petal predict needs a signature with one input and one output",
                ))
            }
        };
        let &[_, h, w, c] = &input.shape[..] else {
            return Err(error(
                "the model's input is not an image (batch, height, width, channels)",
            ));
        };
        if input
            .shape_signature
            .get(1..3)
            .is_some_and(|hw| hw.contains(&-1))
        {
            return Err(error(
                "the model takes images of any height and width, so petal predict cannot tell \
                 what size to resize photos to; resize them yourself and use petal tflite run",
            ));
        }
        let classes = output.shape.last().copied().unwrap_or(0);
        let named = match labels {
            Some(file) => {
                let names = read_labels(file)?;
                if names.len() != classes {
                    return Err(Error::InvalidArgument(format!(
                        "{} has {} labels, but the model has {classes} classes",
                        file.display(),
                        names.len()
                    )));
                }
                Some(names)
            }
            None => class_names(&interpreter)
                .filter(|names| names.len() == classes)
                .or_else(|| packed_labels(path, metadata.labels_file.as_deref(), classes)),
        };
        let numbered_classes = named.is_none();
        let class_names =
            named.unwrap_or_else(|| (0..classes).map(|i| format!("class_{i}")).collect());
        let (mean, std) = match (input_range, metadata.normalization) {
            // x · (high − low) / 255 + low = (x − mean) / std.
            (Some((low, high)), _) => {
                let std = 255.0 / (high - low);
                (vec![-low * std], vec![std])
            }
            (None, Some((mean, std))) => {
                let fits = |v: &[f32]| v.len() == 1 || v.len() == c;
                if !fits(&mean) || !fits(&std) || std.contains(&0.0) {
                    return Err(error(&format!(
                        "its metadata normalizes with mean {mean:?} and std {std:?}, which do not fit {c} channels"
                    )));
                }
                (mean, std)
            }
            (None, None) => (vec![0.0], vec![1.0]),
        };
        let image = Tensor::from_real(
            vec![1, h, w, c],
            &[],
            input.dtype,
            input.quantization.as_ref(),
        );
        if image.is_none() {
            return Err(error(&format!(
                "petal predict feeds images to FLOAT32, UINT8 and quantized INT8 inputs; this \
                 one is {}{} (petal tflite run takes any)",
                input.dtype,
                if input.quantization.is_some() {
                    " quantized per channel"
                } else {
                    ""
                }
            )));
        }
        Ok(ImageClassifier {
            mean,
            std,
            probabilities: ends_in_softmax(interpreter.op_names()),
            interpreter,
            signature: signature.key,
            input_name: input.name,
            input_type: (input.dtype, input.quantization),
            input: (h, w, c),
            class_names,
            numbered_classes,
        })
    }

    /// Class probabilities for one image of `input`'s size (NHWC pixel values).
    pub fn probabilities(&mut self, pixels: Vec<f32>) -> Result<Vec<f32>> {
        let mut scores = self.scores(pixels)?;
        if !self.probabilities {
            crate::nn::activation::softmax_in_place(&mut scores);
        }
        Ok(scores)
    }

    /// The model's raw outputs for one image.
    pub fn scores(&mut self, mut pixels: Vec<f32>) -> Result<Vec<f32>> {
        let (h, w, c) = self.input;
        if self.mean != [0.0] || self.std != [1.0] {
            for (i, p) in pixels.iter_mut().enumerate() {
                let (mean, std) = (
                    self.mean[i % c % self.mean.len()],
                    self.std[i % c % self.std.len()],
                );
                *p = (*p - mean) / std;
            }
        }
        let (dtype, quantization) = &self.input_type;
        let image = Tensor::from_real(vec![1, h, w, c], &pixels, *dtype, quantization.as_ref())
            .expect("a type checked at open");
        let mut runner = self.interpreter.signature_runner(&self.signature)?;
        let outputs = runner.run(&[(&self.input_name, &image)])?;
        let (_, output) = outputs
            .into_iter()
            .next()
            .expect("one output, checked at open");
        // Quantized outputs as the real numbers they stand for.
        output.to_real().ok_or_else(|| Error::TfLite {
            origin: self.signature.clone(),
            reason: format!(
                "the output is {} without quantization, not scores petal predict can read (petal \
                 tflite run gives it as it is)",
                output.dtype()
            ),
        })
    }
}

/// Whether the model's last computing op is SOFTMAX (a quantized model may convert its output
/// after it).
fn ends_in_softmax(ops: &[String]) -> bool {
    ops.iter()
        .rev()
        .find(|op| !matches!(op.as_str(), "QUANTIZE" | "DEQUANTIZE"))
        .is_some_and(|op| op == "SOFTMAX")
}

impl ImageClassifier {
    /// Loss (cross-entropy of the probabilities), accuracy and confusion matrix over every
    /// usable image of `dataset`, one image at a time as on a device; unusable files are
    /// skipped with a warning, as in training.
    pub fn evaluate(&mut self, dataset: &Dataset) -> Result<Evaluation> {
        let classes = self.class_names.len();
        if dataset.class_names().len() != classes {
            return Err(Error::Model(format!(
                "the model has {classes} classes but the folder has {}",
                dataset.class_names().len()
            )));
        }
        let mut confusion = vec![vec![0usize; classes]; classes];
        let (mut images, mut loss, mut correct) = (0usize, 0.0f64, 0usize);
        let order: Vec<usize> = (0..dataset.len()).collect();
        for chunk in order.chunks(DECODE_AHEAD) {
            // Decoding on every core while the interpreter waits is most of the speed here.
            let decoded: Vec<(usize, ImageU8)> = chunk
                .par_iter()
                .filter_map(|&i| Some((i, dataset.image(i)?)))
                .collect();
            for (i, image) in decoded {
                let pixels = image.pixels.iter().map(|&p| f32::from(p)).collect();
                let probabilities = self.probabilities(pixels)?;
                let label = dataset.label(i) as usize;
                let predicted = argmax(&probabilities);
                // Keras clips probabilities to [ε, 1 − ε] before the logarithm.
                let p = f64::from(probabilities[label]).clamp(1e-7, 1.0 - 1e-7);
                loss -= p.ln();
                correct += usize::from(predicted == label);
                confusion[label][predicted] += 1;
                images += 1;
            }
        }
        if images == 0 {
            return Err(Error::InvalidArgument(format!(
                "none of the {} images could be used: the warnings above say why",
                dataset.len()
            )));
        }
        Ok(Evaluation {
            images,
            loss: loss / images as f64,
            accuracy: correct as f64 / images as f64,
            class_names: dataset.class_names().to_vec(),
            confusion,
        })
    }
}
