//! `petal export` (a native model to a `.tflite` file), `petal tflite info`, and what
//! `petal predict` and `petal bench infer` need to run `.tflite` files.

use clap::{Args, Subcommand};
use petal::nn::model_file;
use petal::tflite::{self, format_shape, Interpreter, Tensor, TensorInfo};
use petal::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct ExportArgs {
    /// A model file written by `petal train`.
    pub model: PathBuf,
    /// Where to write the TensorFlow Lite model.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn export(args: ExportArgs) -> Result<()> {
    petal::fsutil::refuse_output_over_input(&args.out, &[&args.model])?;
    let saved = model_file::load(&args.model)?;
    let bytes = tflite::export_file(&saved.model, &saved.class_names, &args.out)?;
    println!("Wrote {} ({bytes} bytes).", args.out.display());
    Ok(())
}

#[derive(Subcommand)]
pub enum TfliteCommand {
    /// Signatures, operators, tensors and sizes of a .tflite file.
    Info { file: PathBuf },
}

pub fn run(cmd: TfliteCommand) -> Result<()> {
    match cmd {
        TfliteCommand::Info { file } => info(&file),
    }
}

fn tensors(list: &[TensorInfo]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|t| format!("{} {} {}", t.name, t.dtype.name(), format_shape(&t.shape)))
        .collect();
    format!("[{}]", items.join(", "))
}

fn info(path: &Path) -> Result<()> {
    let interpreter = Interpreter::from_file(path)?;
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    println!("{}: {size} bytes", path.display());
    if !interpreter.description().is_empty() {
        println!("description: {}", interpreter.description());
    }
    let signatures = interpreter.signature_list();
    if signatures.is_empty() {
        println!("signatures: none");
    }
    for s in &signatures {
        println!(
            "signatures: {}  inputs: {}  outputs: {}",
            s.key,
            tensors(&s.inputs),
            tensors(&s.outputs)
        );
    }
    let ops = interpreter.op_names();
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for &op in ops {
        match counts.iter_mut().find(|(name, _)| *name == op) {
            Some((_, n)) => *n += 1,
            None => counts.push((op, 1)),
        }
    }
    let counts: Vec<String> = counts.iter().map(|(op, n)| format!("{op} ×{n}")).collect();
    println!("operators: {} ({})", ops.len(), counts.join(", "));
    println!(
        "tensors: {}, constant data: {} bytes",
        interpreter.tensor_count(),
        interpreter.constant_bytes()
    );
    if let Some(names) = class_names(&interpreter) {
        println!("class names: {}", names.join(", "));
    }
    Ok(())
}

fn class_names(interpreter: &Interpreter) -> Option<Vec<String>> {
    serde_json::from_slice(interpreter.metadata(tflite::CLASS_NAMES_METADATA)?).ok()
}

/// Whether `path` holds a TensorFlow Lite model (its file identifier, whatever the extension).
pub fn is_tflite(path: &Path) -> bool {
    let mut head = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|_| head[4..8] == *b"TFL3")
}

/// A `.tflite` image classifier: the first signature, one image in, class scores out.
pub struct TfLiteClassifier {
    interpreter: Interpreter,
    signature: String,
    input_name: String,
    /// Height, width, channels.
    pub input: (usize, usize, usize),
    pub class_names: Vec<String>,
    /// Whether the model ends in SOFTMAX (its outputs are probabilities already).
    probabilities: bool,
}

impl TfLiteClassifier {
    pub fn open(path: &Path) -> Result<Self> {
        let interpreter = Interpreter::from_file(path)?;
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
        let classes = output.shape.last().copied().unwrap_or(0);
        let class_names = class_names(&interpreter)
            .filter(|names| names.len() == classes)
            .unwrap_or_else(|| {
                eprintln!(
                    "note: {} carries no class names (petal export writes them); numbering the classes",
                    path.display()
                );
                (0..classes).map(|i| format!("class_{i}")).collect()
            });
        Ok(TfLiteClassifier {
            probabilities: interpreter.op_names().last() == Some(&"SOFTMAX"),
            interpreter,
            signature: signature.key,
            input_name: input.name,
            input: (h, w, c),
            class_names,
        })
    }

    /// Class probabilities for one image of `input`'s size (NHWC pixel values).
    pub fn probabilities(&mut self, pixels: Vec<f32>) -> Result<Vec<f32>> {
        let mut scores = self.scores(pixels)?;
        if !self.probabilities {
            petal::nn::activation::softmax_in_place(&mut scores);
        }
        Ok(scores)
    }

    /// The model's raw outputs for one image.
    pub fn scores(&mut self, pixels: Vec<f32>) -> Result<Vec<f32>> {
        let (h, w, c) = self.input;
        let image = Tensor::f32(vec![1, h, w, c], pixels);
        let mut runner = self.interpreter.signature_runner(&self.signature)?;
        let outputs = runner.run(&[(&self.input_name, &image)])?;
        let (_, output) = outputs
            .into_iter()
            .next()
            .expect("one output, checked at open");
        Ok(output.as_f32().map(<[f32]>::to_vec).unwrap_or_default())
    }
}
