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
    /// The TensorFlow Lite operators petal's interpreter runs.
    Ops,
    /// Runs a model on raw tensors: .npy files in, one .npy file per output in --out.
    Run(RunArgs),
}

#[derive(Args)]
pub struct RunArgs {
    /// The .tflite model.
    pub model: PathBuf,
    /// An input as NumPy .npy, `NAME=FILE.npy` or just `FILE.npy` for the signature's inputs in
    /// order. Its type must be the input's (e.g. float32).
    #[arg(long = "input", required = true)]
    pub inputs: Vec<String>,
    /// The signature to run (default: the model's first).
    #[arg(long)]
    pub signature: Option<String>,
    /// The folder for the outputs, written as <output name>.npy.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(cmd: TfliteCommand) -> Result<()> {
    match cmd {
        TfliteCommand::Info { file } => info(&file),
        TfliteCommand::Ops => {
            for op in tflite::supported_ops() {
                println!("{op}");
            }
            Ok(())
        }
        TfliteCommand::Run(args) => run_model(&args),
    }
}

fn run_model(args: &RunArgs) -> Result<()> {
    let mut interpreter = Interpreter::from_file(&args.model)?;
    let origin = args.model.display().to_string();
    let model_error = |reason: String| Error::TfLite {
        origin: origin.clone(),
        reason,
    };
    let signatures = interpreter.signature_list();
    let signature = match &args.signature {
        Some(key) => signatures.iter().find(|s| &s.key == key),
        None => signatures.first(),
    }
    .ok_or_else(|| {
        let keys: Vec<&str> = signatures.iter().map(|s| s.key.as_str()).collect();
        model_error(format!(
            "no signature {}; the model has {keys:?}",
            args.signature.as_deref().unwrap_or("at all")
        ))
    })?;
    let mut inputs: Vec<(String, Tensor)> = Vec::new();
    for (position, given) in args.inputs.iter().enumerate() {
        let (name, file) = match given.split_once('=') {
            Some((name, file)) if !name.is_empty() => (name.to_owned(), PathBuf::from(file)),
            _ => {
                let input = signature.inputs.get(position).ok_or_else(|| {
                    model_error(format!(
                        "{} inputs given, but signature \"{}\" takes {}",
                        args.inputs.len(),
                        signature.key,
                        signature.inputs.len()
                    ))
                })?;
                (input.name.clone(), PathBuf::from(given))
            }
        };
        let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
        let tensor = tflite::npy::from_bytes(&bytes).map_err(|reason| Error::TfLite {
            origin: file.display().to_string(),
            reason,
        })?;
        inputs.push((name, tensor));
    }
    let named: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let key = signature.key.clone();
    let outputs = interpreter.signature_runner(&key)?.run(&named)?;
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    for (name, tensor) in &outputs {
        let path = args.out.join(format!("{}.npy", file_stem(name)));
        petal::fsutil::write_atomically(&path, &tflite::npy::to_bytes(tensor))?;
        println!(
            "{name}: {} {} -> {}",
            tensor.dtype(),
            tflite::format_shape(&tensor.shape),
            path.display()
        );
    }
    Ok(())
}

/// A tensor name as a file name: characters other than letters, digits, `-`, `_` and `.`
/// (TensorFlow's names have `/` and `:`) become `_`.
fn file_stem(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '_',
        })
        .collect();
    match stem.trim_start_matches('.') {
        "" => "output".into(),
        _ => stem,
    }
}

/// Values of `dtype` that do not repeat, so no kernel sees a special case; within 0‥255 so an
/// image model sees pixel-like values.
pub fn pseudo_random(shape: &[usize], dtype: tflite::DType) -> Tensor {
    let len = shape.iter().product::<usize>();
    let mut data = dtype.zeros(len);
    let value = |i: usize| (i as u64 * 2_654_435_761) % 256;
    match &mut data {
        tflite::Data::F32(v) => v
            .iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = value(i) as f32),
        tflite::Data::U8(v) => v
            .iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = value(i) as u8),
        tflite::Data::I8(v) => v
            .iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = (value(i) as i64 - 128) as i8),
        _ => {}
    }
    Tensor::new(shape.to_vec(), data)
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

/// `--input-range`: "low,high".
pub fn parse_input_range(text: &str) -> std::result::Result<(f32, f32), String> {
    let parsed = text.split_once(',').and_then(|(lo, hi)| {
        Some((
            lo.trim().parse::<f32>().ok()?,
            hi.trim().parse::<f32>().ok()?,
        ))
    });
    match parsed {
        Some((lo, hi)) if lo.is_finite() && hi.is_finite() && lo < hi => Ok((lo, hi)),
        _ => Err(format!(
            "{text:?} is not a range like 0,255 or -1,1 (two numbers, low first)"
        )),
    }
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
pub struct TfLiteClassifier {
    interpreter: Interpreter,
    /// Maps 0‥255 pixels to the model's input: (x − mean) / std, per channel or for all.
    mean: Vec<f32>,
    std: Vec<f32>,
    signature: String,
    input_name: String,
    /// How the input stores values: its type and quantization (pixels are quantized to it).
    input_type: (tflite::DType, Option<tflite::Quantization>),
    /// Height, width, channels.
    pub input: (usize, usize, usize),
    pub class_names: Vec<String>,
    /// Whether the model ends in SOFTMAX (its outputs are probabilities already).
    probabilities: bool,
}

impl TfLiteClassifier {
    /// `input_range` (the range 0‥255 pixels map to) overrides what the model's metadata says;
    /// without either, pixels go in as they are.
    pub fn open(
        path: &Path,
        labels: Option<&Path>,
        input_range: Option<(f32, f32)>,
    ) -> Result<Self> {
        let interpreter = Interpreter::from_file(path)?;
        let metadata = interpreter
            .metadata(tflite::metadata::METADATA_NAME)
            .map(tflite::metadata::read)
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
        let class_names = match labels {
            Some(file) => {
                let names = read_labels(file)?;
                if names.len() != classes {
                    return Err(Error::InvalidArgument(format!(
                        "{} has {} labels, but the model has {classes} classes",
                        file.display(),
                        names.len()
                    )));
                }
                names
            }
            None => class_names(&interpreter)
                .filter(|names| names.len() == classes)
                .or_else(|| packed_labels(path, metadata.labels_file.as_deref(), classes))
                .unwrap_or_else(|| {
                    eprintln!(
                        "note: {} carries no class names (petal export writes them); numbering \
                         the classes (--labels names them)",
                        path.display()
                    );
                    (0..classes).map(|i| format!("class_{i}")).collect()
                }),
        };
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
        Ok(TfLiteClassifier {
            mean,
            std,
            probabilities: ends_in_softmax(interpreter.op_names()),
            interpreter,
            signature: signature.key,
            input_name: input.name,
            input_type: (input.dtype, input.quantization),
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
