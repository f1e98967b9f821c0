//! `petal tutorial`: the Keras tutorial top to bottom in one command, each step's result printed
//! as it goes, everything kept in `--out` with `results.json` and `report.html`.

use super::train::fit_printing;
use clap::Args;
use petal::data::decode::DEFAULT_MAX_PIXELS;
use petal::data::fetch::{fetch, petal_home, Fetch};
use petal::data::load_img::load_img;
use petal::data::{CacheMode, Dataset, ImageDatasetBuilder};
use petal::nn::activation::softmax_in_place;
use petal::nn::optim::{Optimizer, OptimizerConfig};
use petal::nn::train::{argmax, evaluate, History};
use petal::nn::{model_file, presets, Mode, Sequential};
use petal::report::results::{
    DataFacts, EvaluationFacts, ModelRun, PhotoPrediction, QuantizedForm, StepTime, TfliteCheck,
};
use petal::report::{render_report, Pictures, TutorialResults};
use petal::tflite::{
    calibrate, export_file, export_file_as, Form, ImageClassifier, Interpreter, ModelIo,
    SignatureInfo, Tensor,
};
use petal::viz::{augmentation_previews, first_images, history_plot, image_grid, save_png, Tile};
use petal::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub struct TutorialArgs {
    /// The flower photos folder; without it, flower_photos is fetched into petal's cache.
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value = "runs/tutorial")]
    pub out: PathBuf,
    /// Every step with one epoch per model: a smoke run of a few minutes.
    #[arg(long)]
    pub quick: bool,
    /// The photo to classify at the end, a path or a URL (default: the tutorial's sunflower).
    #[arg(long)]
    pub photo: Option<String>,
}

const SEED: u32 = 123;

pub fn run(args: TutorialArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    let mut tutorial = Tutorial {
        out: args.out.clone(),
        results: TutorialResults::default(),
        pictures: Pictures::default(),
        started: Instant::now(),
    };
    let outcome = tutorial.run_steps(&args);
    if let Err(e) = &outcome {
        tutorial.results.notes.push(format!("The run stopped: {e}"));
    }
    tutorial.save()?;
    outcome?;
    println!(
        "\nThe tutorial took {:.0} s. Everything is in {}: the two models, the PNG pictures, results.json and report.html.",
        tutorial.results.total_seconds,
        args.out.display()
    );
    Ok(())
}

struct Tutorial {
    out: PathBuf,
    results: TutorialResults,
    pictures: Pictures,
    started: Instant,
}

/// The training and validation sets, shared by both models.
struct Split {
    train: Dataset,
    val: Dataset,
}

impl Tutorial {
    fn run_steps(&mut self, args: &TutorialArgs) -> Result<()> {
        let (base_epochs, augmented_epochs) = if args.quick { (1, 1) } else { (10, 15) };
        let directory = self.step("get the data", |_| data_directory(args.data.as_deref()))?;
        let split = self.step("explore and load the data", |t| t.load(&directory))?;
        // The last steps' photo is found now, so that a missing one stops the run before the
        // long training steps, not after them.
        let photo = self.photo(args.photo.as_deref(), &split.val)?;
        self.step("visualize the data", |t| t.samples(&split))?;
        let base = presets::preset("tutorial", 180, 180, split.train.class_names().len())?;
        self.step("train the tutorial model", |t| {
            t.train("tutorial model", "tutorial", &base, &split, base_epochs)
        })?;
        let augmented = presets::preset(
            "tutorial-augmented",
            180,
            180,
            split.train.class_names().len(),
        )?;
        self.step("data augmentation", |t| {
            t.augmentation_preview(&split, &augmented)
        })?;
        let mut model = self.step("train the augmented model", |t| {
            t.train(
                "augmented model",
                "tutorial-augmented",
                &augmented,
                &split,
                augmented_epochs,
            )
        })?;
        self.step("evaluate on the validation set", |t| {
            t.evaluate(&mut model, &split.val)
        })?;
        let photo = self.step("predict on new data", |t| {
            t.predict(&mut model, &split, &photo)
        })?;
        self.step("convert to TensorFlow Lite and run it", |t| {
            t.tflite(&model, split.train.class_names(), &photo)
        })?;
        let calibration_images = if args.quick { 32 } else { 200 };
        self.step("quantize for devices", |t| {
            t.quantize(&model, &split, calibration_images)
        })?;
        Ok(())
    }

    /// Runs one step, timing it, and rewrites the report so far.
    fn step<T>(&mut self, name: &str, work: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if super::interrupt::requested() {
            return Err(Error::Interrupted(format!(
                "stopped before \"{name}\"; the steps before it are in the report"
            )));
        }
        println!("\n── {name} ──");
        let start = Instant::now();
        let value = work(self)?;
        self.results.steps.push(StepTime {
            step: name.to_owned(),
            seconds: start.elapsed().as_secs_f64(),
        });
        self.save()?;
        Ok(value)
    }

    fn save(&mut self) -> Result<()> {
        self.results.total_seconds = self.started.elapsed().as_secs_f64();
        let json = serde_json::to_string_pretty(&self.results).expect("results serialise");
        petal::fsutil::write_atomically(&self.out.join("results.json"), json.as_bytes())?;
        let page = render_report(&self.results, &self.pictures);
        petal::fsutil::write_atomically(&self.out.join("report.html"), page.as_bytes())
    }

    fn load(&mut self, directory: &Path) -> Result<Split> {
        let builder = ImageDatasetBuilder::new(directory)
            .validation_split(0.2)
            .seed(SEED)
            .image_size(180, 180)
            .batch_size(32)
            .cache(CacheMode::Memory)
            .prefetch(1);
        let index = builder.index()?;
        let counts = index.class_counts();
        println!(
            "Found {} files belonging to {} classes.",
            index.len(),
            index.class_names.len()
        );
        let per_class: Vec<String> = index
            .class_names
            .iter()
            .zip(&counts)
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        println!("  {}", per_class.join(" · "));
        let disk = self.out.join("image-cache");
        let builder = super::dataset_args::cache_within_memory(builder, index.len(), disk);
        let (train, val) = builder.build_both()?;
        println!("Using {} files for training.", train.len());
        println!("Using {} files for validation.", val.len());
        self.results.data = Some(DataFacts {
            directory: directory.display().to_string(),
            files: index.len(),
            class_names: index.class_names.clone(),
            class_counts: counts,
            training: train.len(),
            validation: val.len(),
        });
        Ok(Split { train, val })
    }

    fn samples(&mut self, split: &Split) -> Result<()> {
        let path = self.out.join("samples.png");
        let png = save_png(&image_grid(&first_images(&split.train, 9), 3), &path)?;
        self.pictures.samples = Some(png);
        println!("Wrote {}.", path.display());
        Ok(())
    }

    fn train(
        &mut self,
        name: &str,
        preset: &str,
        config: &petal::nn::ModelConfig,
        split: &Split,
        epochs: usize,
    ) -> Result<Sequential> {
        let mut model = Sequential::new(config, SEED)?;
        let summary = model.summary(if preset == "tutorial" {
            "sequential"
        } else {
            "sequential_1"
        });
        print!("{summary}");
        let mut adam = Optimizer::new(OptimizerConfig::adam());
        let start = Instant::now();
        let (history, stop) =
            fit_printing(&mut model, &mut adam, &split.train, &split.val, epochs)?;
        let seconds = start.elapsed().as_secs_f64();
        if history.epochs.is_empty() {
            return super::train::stop_outcome(stop, &history).map(|()| model);
        }
        let stem = preset.replace('-', "_");
        let file = self.out.join(format!("model_{stem}.safetensors"));
        model_file::save(&file, &model, split.train.class_names())?;
        let curves = self.out.join(format!("history_{stem}.png"));
        let png = save_png(&history_plot(&history), &curves)?;
        self.pictures.curves.push(png);
        self.results.models.push(model_run(
            name, preset, &model, summary, &history, seconds, &file,
        ));
        println!("Saved {} and {}.", file.display(), curves.display());
        super::train::stop_outcome(stop, &history)?;
        Ok(model)
    }

    fn augmentation_preview(
        &mut self,
        split: &Split,
        config: &petal::nn::ModelConfig,
    ) -> Result<()> {
        let Some(first) = first_images(&split.train, 1).pop() else {
            return Err(Error::InvalidArgument(
                "no training image can be decoded".into(),
            ));
        };
        let tiles: Vec<Tile> = augmentation_previews(&first.image, config, 9, SEED)?
            .into_iter()
            .map(|image| Tile {
                image,
                title: first.title.clone(),
            })
            .collect();
        let path = self.out.join("augmented.png");
        let png = save_png(&image_grid(&tiles, 3), &path)?;
        self.pictures.augmentation = Some(png);
        println!("Wrote {}.", path.display());
        Ok(())
    }

    fn evaluate(&mut self, model: &mut Sequential, val: &Dataset) -> Result<()> {
        let e = evaluate(model, val)?;
        println!(
            "augmented model on {} validation images: loss {:.4}, accuracy {:.4}",
            val.len(),
            e.loss,
            e.accuracy
        );
        self.results.evaluation = Some(EvaluationFacts {
            model: "augmented model".into(),
            loss: e.loss,
            accuracy: e.accuracy,
            class_names: e.class_names,
            confusion: e.confusion,
        });
        Ok(())
    }

    fn predict(&mut self, model: &mut Sequential, split: &Split, photo: &Path) -> Result<PathBuf> {
        let path = photo.to_path_buf();
        let (height, width, channels) = model.image_input()?;
        let image = load_img(&path, (height, width, channels), DEFAULT_MAX_PIXELS)?;
        let logits = model.forward(&image.pixels, 1, Mode::Infer).to_vec();
        let mut probabilities = logits.clone();
        softmax_in_place(&mut probabilities);
        let best = argmax(&probabilities);
        let class_names = split.train.class_names().to_vec();
        println!(
            "This image most likely belongs to {} with a {:.2} percent confidence.",
            class_names[best],
            100.0 * probabilities[best]
        );
        self.results.prediction = Some(PhotoPrediction {
            photo: path.display().to_string(),
            model: "augmented model".into(),
            class: class_names[best].clone(),
            confidence: f64::from(probabilities[best]),
            logits,
            class_names,
            probabilities,
        });
        Ok(path)
    }

    /// The tutorial's last part: convert, list the signatures, run the photo through a
    /// signature runner, and compare with the native model's logits.
    fn tflite(&mut self, model: &Sequential, class_names: &[String], photo: &Path) -> Result<()> {
        let path = self.out.join("model.tflite");
        let bytes = export_file(model, class_names, &path)? as u64;
        let mut interpreter = Interpreter::from_file(&path)?;
        let signatures = signature_text(&interpreter.signature_list());
        println!(
            "Wrote {} ({bytes} bytes). Signatures: {signatures}",
            path.display()
        );
        let mut runner = interpreter.signature_runner("serving_default")?;
        let (input, output) = match (runner.inputs().first(), runner.outputs().first()) {
            (Some(i), Some(o)) => (i.clone(), o.name.clone()),
            _ => {
                return Err(Error::Model(
                    "the exported signature has no input or output".into(),
                ))
            }
        };
        let &[_, height, width, channels] = &input.shape[..] else {
            return Err(Error::Model(format!(
                "unexpected input shape {:?}",
                input.shape
            )));
        };
        let image = load_img(photo, (height, width, channels), DEFAULT_MAX_PIXELS)?;
        let tensor = Tensor::f32(vec![1, height, width, channels], image.pixels);
        let outputs = runner.run(&[(input.name.as_str(), &tensor)])?;
        let lite = outputs
            .get(&output)
            .and_then(Tensor::as_f32)
            .ok_or_else(|| Error::Model("the TensorFlow Lite model gave no float output".into()))?
            .to_vec();
        let mut probabilities = lite.clone();
        softmax_in_place(&mut probabilities);
        let best = argmax(&probabilities);
        let native = self
            .results
            .prediction
            .as_ref()
            .map_or(&[][..], |p| &p.logits[..]);
        let difference = native
            .iter()
            .zip(&lite)
            .map(|(a, b)| f64::from((a - b).abs()))
            .fold(0.0, f64::max);
        println!(
            "TensorFlow Lite: this image most likely belongs to {} with a {:.2} percent confidence.",
            class_names[best],
            100.0 * probabilities[best]
        );
        println!("Largest difference from the native model's logits: {difference:.2e}");
        self.results.tflite = Some(TfliteCheck {
            file: path.display().to_string(),
            bytes,
            signatures,
            class: class_names[best].clone(),
            confidence: f64::from(probabilities[best]),
            max_abs_logit_difference: difference,
        });
        Ok(())
    }

    /// The model as each of TensorFlow's converter's forms: size, validation accuracy and
    /// batch-1 latency in petal's interpreter, int8 calibrated on the first training images.
    fn quantize(&mut self, model: &Sequential, split: &Split, calibration: usize) -> Result<()> {
        let class_names = split.train.class_names();
        let ranges = calibrate(model, &split.train, calibration, &mut || ())?;
        println!("Calibrated int8 on {} training images.", ranges.images());
        let forms = [
            Form::Float32,
            Form::Float16,
            Form::DynamicRange,
            Form::Int8 {
                ranges,
                io: ModelIo::Float,
            },
        ];
        println!("form      bytes       size   val accuracy   latency");
        for form in forms {
            let path = self.out.join(format!("model_{}.tflite", form.name()));
            let bytes = export_file_as(model, class_names, &form, &path)? as u64;
            let mut classifier = ImageClassifier::open(&path, None, None)?;
            let validation_accuracy = classifier.evaluate(&split.val)?.accuracy;
            let latency_ms = latency_ms(&mut classifier, &split.val)?;
            let float_bytes = self.results.quantization.first().map_or(bytes, |f| f.bytes);
            println!(
                "{:<8} {bytes:>10}  {:>5.2}×  {validation_accuracy:>12.4}  {latency_ms:>6.2} ms",
                form.name(),
                bytes as f64 / float_bytes as f64
            );
            self.results.quantization.push(QuantizedForm {
                form: form.name().into(),
                file: path.display().to_string(),
                bytes,
                validation_accuracy,
                latency_ms,
            });
        }
        Ok(())
    }

    /// The photo to classify: a path, a URL fetched like get_file, or (by default) the
    /// tutorial's sunflower; when fetching fails, the first sunflower of the validation set.
    fn photo(&mut self, photo: Option<&str>, val: &Dataset) -> Result<PathBuf> {
        let request = match photo {
            Some(p) if !p.contains("://") => return Ok(PathBuf::from(p)),
            Some(url) => Fetch::url(url)?,
            None => Fetch::known("sunflower").expect("the tutorial's photo is known"),
        };
        match fetch(
            &request,
            &petal_home(),
            &mut super::progress::DownloadBar::new(),
        ) {
            Ok(path) => Ok(path),
            Err(e) => {
                let Some(fallback) = first_of_class(val, "sunflowers") else {
                    return Err(Error::InvalidArgument(format!(
                        "the photo to classify could not be fetched ({e}), and the data has no \"sunflowers\" class to take one from: give a photo with --photo PATH"
                    )));
                };
                let note = format!(
                    "The photo could not be fetched ({e}); used {} from the validation set instead.",
                    fallback.display()
                );
                println!("{note}");
                self.results.notes.push(note);
                Ok(fallback)
            }
        }
    }
}

/// Median milliseconds of one batch-1 run on the first usable validation image.
fn latency_ms(classifier: &mut ImageClassifier, val: &Dataset) -> Result<f64> {
    const RUNS: usize = 50;
    let image = (0..val.len())
        .find_map(|i| val.image(i))
        .ok_or_else(|| Error::InvalidArgument("no validation image can be decoded".into()))?;
    let pixels: Vec<f32> = image.pixels.iter().map(|&p| f32::from(p)).collect();
    classifier.scores(pixels.clone())?;
    let mut times: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            classifier
                .scores(pixels.clone())
                .map(|_| start.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_>>()?;
    times.sort_by(f64::total_cmp);
    Ok(times[RUNS / 2])
}

fn first_of_class(dataset: &Dataset, class: &str) -> Option<PathBuf> {
    let label = dataset.class_names().iter().position(|c| c == class)? as i32;
    let i = (0..dataset.len()).find(|&i| dataset.label(i) == label)?;
    Some(dataset.file_path(i))
}

fn data_directory(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = given {
        println!("Using the photos in {}.", dir.display());
        return Ok(dir.to_path_buf());
    }
    let request = Fetch::known("flower_photos").expect("flower_photos is known");
    let home = petal_home();
    println!(
        "Fetching flower_photos into {} (once; later runs find it there).",
        home.display()
    );
    let dir = fetch(&request, &home, &mut super::progress::DownloadBar::new())?;
    println!("{}", dir.display());
    Ok(dir)
}

/// The signature list as Python's `get_signature_list()` prints it.
fn signature_text(signatures: &[SignatureInfo]) -> String {
    let names = |tensors: &[petal::tflite::TensorInfo]| {
        let quoted: Vec<String> = tensors.iter().map(|t| format!("'{}'", t.name)).collect();
        quoted.join(", ")
    };
    let entries: Vec<String> = signatures
        .iter()
        .map(|s| {
            format!(
                "'{}': {{'inputs': [{}], 'outputs': [{}]}}",
                s.key,
                names(&s.inputs),
                names(&s.outputs)
            )
        })
        .collect();
    format!("{{{}}}", entries.join(", "))
}

fn model_run(
    name: &str,
    preset: &str,
    model: &Sequential,
    summary: String,
    history: &History,
    seconds: f64,
    file: &Path,
) -> ModelRun {
    let last = history.epochs.last();
    // Every epoch trains on the same images: the run's rate is the harmonic mean of the epochs'.
    let seconds_per_image: f64 = history
        .epochs
        .iter()
        .map(|e| 1.0 / e.images_per_second.max(1e-9))
        .sum();
    ModelRun {
        name: name.to_owned(),
        preset: preset.to_owned(),
        parameters: model.param_count(),
        summary,
        epochs: history.epochs.clone(),
        final_accuracy: last.map_or(0.0, |e| e.accuracy),
        final_val_accuracy: last.and_then(|e| e.val_accuracy).unwrap_or(0.0),
        best_val_accuracy: history
            .epochs
            .iter()
            .filter_map(|e| e.val_accuracy)
            .fold(0.0, f64::max),
        seconds,
        images_per_second: history.epochs.len() as f64 / seconds_per_image.max(1e-12),
        file: file.display().to_string(),
    }
}
