//! `petal export` (a native model to a `.tflite` file), `petal tflite info`, and what
//! `petal predict` and `petal bench infer` need to run `.tflite` files.

use clap::{Args, Subcommand};
use petal::nn::model_file;
use petal::tflite::{self, Interpreter, ModelSummary, Tensor, TensorSummary};
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

/// "name TYPE [shape]", with the quantization where the tensor has one.
fn tensor_line(name: &str, t: &TensorSummary) -> String {
    let shape: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
    let mut line = format!("{name} {} [{}]", t.dtype, shape.join(","));
    if let Some(q) = &t.quantization {
        line += &match (&q.scales[..], &q.zero_points[..]) {
            ([scale], [zero] | [zero, ..]) => format!(" (scale {scale}, zero point {zero})"),
            ([scale], []) => format!(" (scale {scale})"),
            (scales, _) => format!(
                " ({} per-channel scales along axis {})",
                scales.len(),
                q.axis
            ),
        };
    }
    line
}

fn signature_tensors(summary: &ModelSummary, list: &[(String, usize)]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|(name, i)| match summary.tensors.get(*i) {
            Some(t) => tensor_line(name, t),
            None => format!("{name} (tensor {i}, which does not exist)"),
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// Counts of each distinct item, in order of first appearance: "A ×2, B ×1".
fn counted<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for item in items {
        match counts.iter_mut().find(|(name, _)| *name == item) {
            Some((_, n)) => *n += 1,
            None => counts.push((item, 1)),
        }
    }
    let counts: Vec<String> = counts
        .iter()
        .map(|(item, n)| format!("{item} ×{n}"))
        .collect();
    counts.join(", ")
}

/// Describes any valid `.tflite` file, whether or not petal's interpreter runs it.
fn info(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let summary = tflite::describe(&bytes).map_err(|reason| Error::TfLite {
        origin: path.display().to_string(),
        reason,
    })?;
    println!("{}: {} bytes", path.display(), bytes.len());
    if !summary.description.is_empty() {
        println!("description: {}", summary.description);
    }
    if summary.signatures.is_empty() {
        println!("signatures: none");
    }
    for s in &summary.signatures {
        println!(
            "signatures: {}  inputs: {}  outputs: {}",
            s.key,
            signature_tensors(&summary, &s.inputs),
            signature_tensors(&summary, &s.outputs)
        );
    }
    let operators: Vec<String> = summary
        .operators
        .iter()
        .map(|o| format!("{} v{}", o.name, o.version))
        .collect();
    println!(
        "operators: {} ({})",
        operators.len(),
        counted(operators.iter().map(String::as_str))
    );
    let constant: usize = summary.tensors.iter().map(|t| t.constant_bytes).sum();
    println!(
        "tensors: {} ({}), constant data: {constant} bytes",
        summary.tensors.len(),
        counted(summary.tensors.iter().map(|t| t.dtype.as_str()))
    );
    for (i, t) in summary.tensors.iter().enumerate() {
        let role = if t.constant_bytes > 0 { "constant" } else { "" };
        println!("  {i:>4} {} {role}", tensor_line(&t.name, t));
    }
    if summary.subgraphs > 1 {
        println!("subgraphs: {} (the first is described)", summary.subgraphs);
    }
    if !summary.metadata.is_empty() {
        println!("metadata: {}", summary.metadata.join(", "));
    }
    match &summary.runnable {
        Ok(()) => {
            println!("petal's interpreter runs this model");
            let interpreter = Interpreter::from_bytes(&bytes, &path.display().to_string())?;
            if let Some(names) = class_names(&interpreter) {
                println!("class names: {}", names.join(", "));
            }
        }
        Err(reason) => println!("petal's interpreter cannot run this model yet: {reason}"),
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
