//! `petal summary`, `petal predict` and `petal evaluate`.

use super::dataset_args::DatasetArgs;
use clap::Args;
use petal::data::load_img::load_img;
use petal::data::{CacheMode, Subset};
use petal::nn::model_file::{self, SavedModel};
use petal::nn::train::{argmax, evaluate};
use petal::nn::{presets, Mode, Sequential, Shape};
use petal::{Error, Result};
use std::path::PathBuf;

#[derive(Args)]
pub struct SummaryArgs {
    /// A model file written by `petal train`.
    #[arg(required_unless_present = "preset")]
    pub model: Option<PathBuf>,
    /// Show a built-in model instead (for 180×180 RGB images and 5 classes).
    #[arg(long)]
    pub preset: Option<String>,
}

pub fn summary(args: SummaryArgs) -> Result<()> {
    let model = match (&args.model, &args.preset) {
        (Some(path), _) => model_file::load(path)?.model,
        (None, Some(name)) => Sequential::new(&presets::preset(name, 180, 180, 5)?, 0)?,
        (None, None) => unreachable!("clap requires one of them"),
    };
    print!("{}", model.summary("sequential"));
    Ok(())
}

#[derive(Args)]
pub struct PredictArgs {
    /// A model file written by `petal train`, or a TensorFlow Lite file (.tflite).
    pub model: PathBuf,
    /// Images to classify.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// One JSON object per image instead of sentences.
    #[arg(long)]
    pub json: bool,
    /// Refuse photos with more pixels than this.
    #[arg(long, default_value_t = petal::data::decode::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
    /// For a .tflite model: the range its input takes pixels in, `0,255` (a model with its own
    /// rescaling, as petal's and MobileNetV3's), `-1,1` (MobileNet V1/V2's preprocess_input) or
    /// `0,1`. Default: the normalization in the model's metadata, else 0,255.
    #[arg(long, value_parser = super::tflite::parse_input_range, allow_hyphen_values = true)]
    pub input_range: Option<(f32, f32)>,
    /// For a .tflite model: class names, one per line (default: those the model carries, a
    /// labels file packed in it, or class_0, class_1, …).
    #[arg(long)]
    pub labels: Option<PathBuf>,
}

/// What `petal predict` runs: a native model or a TensorFlow Lite file.
enum Classifier {
    Native {
        model: Sequential,
        probabilities_out: bool,
    },
    TfLite(Box<petal::tflite::ImageClassifier>),
}

impl Classifier {
    /// Probabilities of each class for one image.
    fn probabilities(&mut self, x: Vec<f32>) -> Result<Vec<f32>> {
        match self {
            Classifier::Native {
                model,
                probabilities_out,
            } => {
                let mut scores = model.forward(&x, 1, Mode::Infer).to_vec();
                if !*probabilities_out {
                    petal::nn::activation::softmax_in_place(&mut scores);
                }
                Ok(scores)
            }
            Classifier::TfLite(classifier) => classifier.probabilities(x),
        }
    }
}

pub fn predict(args: PredictArgs) -> Result<()> {
    let (mut classifier, class_names, (height, width, channels)) =
        if petal::tflite::is_tflite(&args.model) {
            let classifier = petal::tflite::ImageClassifier::open(
                &args.model,
                args.labels.as_deref(),
                args.input_range,
            )?;
            if classifier.numbered_classes {
                eprintln!(
                    "note: {} carries no class names (petal export writes them); numbering the \
                     classes (--labels names them)",
                    args.model.display()
                );
            }
            let (names, input) = (classifier.class_names.clone(), classifier.input);
            (Classifier::TfLite(Box::new(classifier)), names, input)
        } else {
            if args.input_range.is_some() || args.labels.is_some() {
                return Err(Error::InvalidArgument(
                    "--input-range and --labels are for .tflite models; petal's own model files \
                     carry their rescaling and class names"
                        .into(),
                ));
            }
            let SavedModel { model, class_names } = model_file::load(&args.model)?;
            let (height, width, channels) = model.image_input()?;
            let probabilities_out = model.outputs_probabilities();
            let classifier = Classifier::Native {
                model,
                probabilities_out,
            };
            (classifier, class_names, (height, width, channels))
        };
    let mut failures = 0;
    for path in &args.images {
        let image = match load_img(path, (height, width, channels), args.max_pixels) {
            Ok(image) => image,
            Err(e) => {
                eprintln!("error: {e}");
                failures += 1;
                continue;
            }
        };
        if image.was_resized(height, width) && !args.json {
            let (w, h) = image.original;
            eprintln!(
                "note: {} is {w}×{h}; resized to {width}×{height} as Keras's load_img(target_size=…) does",
                path.display(),
            );
        }
        let x = image.pixels;
        let scores = classifier.probabilities(x)?;
        let best = argmax(&scores);
        if args.json {
            let probabilities: serde_json::Map<String, serde_json::Value> = class_names
                .iter()
                .cloned()
                .zip(scores.iter().map(|&p| serde_json::json!(p)))
                .collect();
            let line = serde_json::json!({
                "image": path.display().to_string(),
                "class": class_names[best],
                "confidence": scores[best],
                "probabilities": probabilities,
            });
            println!("{line}");
        } else {
            let prefix = if args.images.len() > 1 {
                format!("{}: ", path.display())
            } else {
                String::new()
            };
            println!(
                "{prefix}This image most likely belongs to {} with a {:.2} percent confidence.",
                class_names[best],
                100.0 * scores[best]
            );
        }
    }
    if failures > 0 {
        return Err(Error::InvalidArgument(format!(
            "{failures} of {} images could not be read",
            args.images.len()
        )));
    }
    Ok(())
}

enum Evaluated {
    Native(Box<SavedModel>),
    TfLite(Box<petal::tflite::ImageClassifier>),
}

#[derive(Args)]
pub struct EvaluateArgs {
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DatasetArgs,
    /// training or validation (needs --validation-split and --seed); all files when absent.
    #[arg(long)]
    pub subset: Option<Subset>,
}

pub fn evaluate_command(args: EvaluateArgs) -> Result<()> {
    // A .tflite file is evaluated as a device would run it: one image at a time.
    let mut model = if petal::tflite::is_tflite(&args.model) {
        Evaluated::TfLite(Box::new(petal::tflite::ImageClassifier::open(
            &args.model,
            None,
            None,
        )?))
    } else {
        Evaluated::Native(Box::new(model_file::load(&args.model)?))
    };
    let (height, width, class_names) = match &model {
        Evaluated::Native(saved) => {
            let Shape::Image { height, width, .. } = saved.model.input_shape() else {
                return Err(Error::Model("the model does not take images".into()));
            };
            (height, width, Some(saved.class_names.clone()))
        }
        Evaluated::TfLite(classifier) => {
            let (height, width, _) = classifier.input;
            let named = !classifier.numbered_classes;
            (height, width, named.then(|| classifier.class_names.clone()))
        }
    };
    let mut data = args.data;
    data.image_size = (height, width);
    let builder = data
        .builder(CacheMode::None)
        .shuffle(data.validation_split.is_some() && !data.no_shuffle);
    let dataset = match args.subset {
        Some(subset) => builder.build_subset(subset)?,
        None => builder.build()?,
    };
    if let Some(names) = class_names.filter(|n| n != dataset.class_names()) {
        return Err(Error::Model(format!(
            "the model was trained on classes {names:?} but the folder has {:?}",
            dataset.class_names()
        )));
    }
    let class_names = dataset.class_names().to_vec();
    let result = match &mut model {
        Evaluated::Native(saved) => evaluate(&mut saved.model, &dataset)?,
        Evaluated::TfLite(classifier) => classifier.evaluate(&dataset)?,
    };
    let skipped = dataset.len() - result.images;
    let skipped = match skipped {
        0 => String::new(),
        n => format!(" ({n} unusable, skipped)"),
    };
    println!(
        "{} images{skipped}: loss {:.4}, accuracy {:.4}",
        result.images, result.loss, result.accuracy
    );
    let width = class_names
        .iter()
        .map(|n| n.len())
        .max()
        .unwrap_or(5)
        .max(9);
    println!("{:<width$}  precision  recall", "class");
    for (c, name) in class_names.iter().enumerate() {
        println!(
            "{name:<width$}  {:>9.3}  {:>6.3}",
            result.precision(c),
            result.recall(c)
        );
    }
    println!("confusion matrix (rows: true class, columns: predicted):");
    for (name, row) in class_names.iter().zip(&result.confusion) {
        let cells: Vec<String> = row.iter().map(|n| format!("{n:>5}")).collect();
        println!("{name:<width$} {}", cells.join(""));
    }
    Ok(())
}
