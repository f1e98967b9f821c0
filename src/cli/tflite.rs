//! `petal export` (a native model to a `.tflite` file), `petal tflite info`, and what
//! `petal predict` and `petal bench infer` need to run `.tflite` files.

use clap::{Args, Subcommand};
use petal::data::{ColorMode, ImageDatasetBuilder, Subset};
use petal::nn::model_file;
use petal::tflite::{self, Form, Interpreter, ModelIo, ModelSummary, Tensor, TensorSummary};
use petal::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct ExportArgs {
    /// A model file written by `petal train`.
    pub model: PathBuf,
    /// Where to write the TensorFlow Lite model.
    #[arg(long)]
    pub out: PathBuf,
    /// float16 (half-size weights), dynamic (int8 weights, float activations) or int8 (integer
    /// arithmetic throughout, calibrated on --calibration); without it, float32.
    #[arg(long, value_parser = parse_quantize)]
    pub quantize: Option<Quantize>,
    /// The image folder (one subfolder per class) whose training split calibrates int8.
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// How many training images calibrate int8, the first of the split's seeded order.
    #[arg(long, default_value_t = 200)]
    pub calibration_count: usize,
    /// Seed of the calibration folder's shuffle and split, as Keras's seed.
    #[arg(long, default_value_t = 123)]
    pub seed: u32,
    /// Fraction of the calibration folder kept out as validation data, as in training, so that
    /// validation images never calibrate.
    #[arg(long, default_value_t = 0.2)]
    pub validation_split: f64,
    /// The int8 model's input and output type: float (quantized inside the model), int8 or uint8.
    #[arg(long, default_value = "float", value_parser = parse_io)]
    pub io: ModelIo,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Quantize {
    Float16,
    Dynamic,
    Int8,
}

fn parse_quantize(s: &str) -> std::result::Result<Quantize, String> {
    match s {
        "float16" => Ok(Quantize::Float16),
        "dynamic" => Ok(Quantize::Dynamic),
        "int8" => Ok(Quantize::Int8),
        _ => Err(format!(
            "{s:?} is not a form: give float16, dynamic or int8"
        )),
    }
}

fn parse_io(s: &str) -> std::result::Result<ModelIo, String> {
    match s {
        "float" => Ok(ModelIo::Float),
        "int8" => Ok(ModelIo::Int8),
        "uint8" => Ok(ModelIo::Uint8),
        _ => Err(format!(
            "{s:?} is not an input/output type: give float, int8 or uint8"
        )),
    }
}

pub fn export(args: ExportArgs) -> Result<()> {
    let mut inputs = vec![args.model.as_path()];
    inputs.extend(args.calibration.as_deref());
    petal::fsutil::refuse_output_over_input(&args.out, &inputs)?;
    check_export_args(&args)?;
    let saved = model_file::load(&args.model)?;
    let form = match args.quantize {
        None => Form::Float32,
        Some(Quantize::Float16) => Form::Float16,
        Some(Quantize::Dynamic) => Form::DynamicRange,
        Some(Quantize::Int8) => Form::Int8 {
            ranges: calibrate(&saved.model, &args)?,
            io: args.io,
        },
    };
    let bytes = tflite::export_file_as(&saved.model, &saved.class_names, &form, &args.out)?;
    println!(
        "Wrote {} ({bytes} bytes, {}).",
        args.out.display(),
        form.name()
    );
    Ok(())
}

fn check_export_args(args: &ExportArgs) -> Result<()> {
    let int8 = args.quantize == Some(Quantize::Int8);
    let refuse = |why: &str| Err(Error::InvalidArgument(why.into()));
    if int8 && args.calibration.is_none() {
        return refuse("--quantize int8 needs --calibration DIR: a folder of images (one subfolder per class, like the training data) to measure the activations' ranges on");
    }
    if !int8 && args.calibration.is_some() {
        return refuse("--calibration is for --quantize int8; the other forms need no images");
    }
    if !int8 && args.io != ModelIo::Float {
        return refuse(
            "--io int8|uint8 is for --quantize int8; the other forms take and give float32",
        );
    }
    if args.calibration_count == 0 {
        return refuse("--calibration-count must be at least 1");
    }
    if !(0.0..1.0).contains(&args.validation_split) {
        return refuse("--validation-split must be at least 0 and below 1");
    }
    Ok(())
}

/// The activation ranges over the first --calibration-count images of the calibration folder's
/// training split, with a progress bar.
fn calibrate(model: &petal::nn::Sequential, args: &ExportArgs) -> Result<tflite::ActivationRanges> {
    let dir = args
        .calibration
        .as_deref()
        .expect("checked: int8 has --calibration");
    let (height, width, channels) = model.image_input()?;
    let color_mode = match channels {
        1 => ColorMode::Grayscale,
        4 => ColorMode::Rgba,
        _ => ColorMode::Rgb,
    };
    let builder = ImageDatasetBuilder::new(dir)
        .image_size(height, width)
        .color_mode(color_mode)
        .seed(args.seed);
    let images = if args.validation_split > 0.0 {
        builder
            .validation_split(args.validation_split)
            .build_subset(Subset::Training)?
    } else {
        builder.build()?
    };
    let count = args.calibration_count.min(images.len());
    let part = match args.validation_split > 0.0 {
        true => format!(
            "the training split of {} (seed {})",
            dir.display(),
            args.seed
        ),
        false => format!("{} (seed {})", dir.display(), args.seed),
    };
    println!("Calibrating on {count} images of {part}.");
    let bar = super::progress::bar(count, "images");
    let ranges = tflite::calibrate(model, &images, count, &mut || bar.inc(1))?;
    bar.finish_and_clear();
    if ranges.images() < args.calibration_count {
        println!(
            "note: calibrated on {} images, fewer than the {} asked: that is all the usable training images there are.",
            ranges.images(),
            args.calibration_count
        );
    }
    Ok(ranges)
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
            if let Some(names) = tflite::class_names(&interpreter) {
                println!("class names: {}", names.join(", "));
            }
        }
        Err(reason) => println!("petal's interpreter cannot run this model yet: {reason}"),
    }
    Ok(())
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
