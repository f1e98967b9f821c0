//! `petal train`: the tutorial's "compile, summary, train, visualise training results" steps.

use super::dataset_args::DatasetArgs;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use petal::data::{CacheMode, Dataset};
use petal::nn::loss::BatchScore;
use petal::nn::optim::{Optimizer, OptimizerConfig};
use petal::nn::train::{fit, EpochLog, FitObserver, History, Stop};
use petal::nn::{model_file, presets, ModelConfig, Sequential};
use petal::viz::{history_plot, save_png};
use petal::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DatasetArgs,
    /// A built-in model: "tutorial" (the tutorial's first CNN).
    #[arg(long, conflicts_with = "model")]
    pub preset: Option<String>,
    /// A model description file (JSON: input_shape and layers with Keras's arguments).
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// adam or sgd.
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    /// Defaults to Keras's: 0.001 for Adam, 0.01 for SGD.
    #[arg(long, allow_negative_numbers = true)]
    pub learning_rate: Option<f32>,
    /// Seed of the weights' initialisation.
    #[arg(long, default_value_t = 123)]
    pub init_seed: u32,
    /// Keep decoded images in memory (the tutorial's .cache()), on disk at DIR/…, or not at all.
    #[arg(long, default_value = "memory")]
    pub cache: String,
    /// Decode every image before training and stop if any cannot be used.
    #[arg(long)]
    pub strict: bool,
    /// Folder for model.safetensors, history.json and history.png.
    #[arg(long, default_value = "runs/train")]
    pub out: PathBuf,
}

pub fn run(mut args: TrainArgs) -> Result<()> {
    if args.epochs == 0 {
        return Err(Error::InvalidArgument(
            "--epochs must be at least 1: a run of no epoch trains and saves nothing".into(),
        ));
    }
    args.data.validation_split.get_or_insert(0.2);
    args.data.seed.get_or_insert(123);
    let cache = match args.cache.as_str() {
        "memory" => CacheMode::Memory,
        "none" => CacheMode::None,
        "disk" => CacheMode::Disk(args.out.join("image-cache")),
        other => {
            return Err(Error::InvalidArgument(format!(
                "--cache must be memory, disk or none, not {other:?}"
            )))
        }
    };
    // One batch ahead is enough: a training step takes far longer than loading a batch, even
    // decoding in the first epoch, and each queued batch costs 12 MB at 180×180.
    // Where the run's files go is checked now, not after the last epoch.
    petal::fsutil::check_writable_folder(&args.out)?;
    let builder = args.data.builder(cache).prefetch(1);
    let index = builder.index()?;
    println!(
        "Found {} files belonging to {} classes.",
        index.len(),
        index.class_names.len()
    );
    if let [only] = index.class_names.as_slice() {
        eprintln!(
            "warning: only one class ({only}): every image is labelled {only:?}, so accuracy will be 1.0 whatever the model learns; add a subfolder for each other class"
        );
    }
    let disk = args.out.join("image-cache");
    let builder = super::dataset_args::cache_within_memory(builder, index.len(), disk);
    let (train, val) = builder.build_both()?;
    println!("Using {} files for training.", train.len());
    println!("Using {} files for validation.", val.len());
    if args.strict {
        strict_check(&[&train, &val])?;
    }

    let config = choose_model(args.preset.as_deref(), args.model.as_deref(), &train)?;
    let mut model = Sequential::new(&config, args.init_seed)?;
    // The Ctrl-C handler goes in before anything training-related is printed: a press right
    // after the summary must stop gracefully, not kill the process.
    super::interrupt::flag();
    print!("{}", model.summary("sequential"));
    let optimizer = match args.optimizer.as_str() {
        "adam" => OptimizerConfig::adam(),
        "sgd" => OptimizerConfig::sgd(),
        other => {
            return Err(Error::InvalidArgument(format!(
                "--optimizer must be adam or sgd, not {other:?}"
            )))
        }
    };
    let optimizer = match args.learning_rate {
        Some(lr) => optimizer.with_learning_rate(lr)?,
        None => optimizer,
    };
    let mut optimizer = Optimizer::new(optimizer);

    let (history, stop) = fit_printing(&mut model, &mut optimizer, &train, &val, args.epochs)?;
    if !history.epochs.is_empty() {
        save_run(&args.out, &model, train.class_names(), &history)?;
    }
    stop_outcome(stop, &history)
}

/// `fit` with a progress bar and a Keras line per epoch; Ctrl-C stops after the current step.
pub fn fit_printing(
    model: &mut Sequential,
    optimizer: &mut Optimizer,
    train: &Dataset,
    val: &Dataset,
    epochs: usize,
) -> Result<(History, Stop)> {
    let mut observer = EpochProgress::default();
    let outcome = fit(
        model,
        optimizer,
        train,
        Some(val),
        epochs,
        &mut observer,
        super::interrupt::flag(),
    )?;
    observer.finish();
    let skipped = train.bad_files().len() + val.bad_files().len();
    if skipped > 0 {
        eprintln!("{skipped} unusable images were skipped (see the warnings above).");
    }
    Ok(outcome)
}

/// Why training ended, as the command's result: an error unless every epoch ran. A run with
/// no finished epoch saved nothing (the caller checks), so a model already there is kept.
pub fn stop_outcome(stop: Stop, history: &History) -> Result<()> {
    let finished = history.epochs.len();
    match stop {
        Stop::Finished => Ok(()),
        Stop::Interrupted if finished == 0 => Err(Error::Interrupted(
            "no epoch finished, so nothing was saved (a model already in the output folder is kept)".into(),
        )),
        Stop::Interrupted => Err(Error::Interrupted(format!(
            "saved the {finished} finished epoch{}",
            if finished == 1 { "" } else { "s" }
        ))),
        Stop::NotFinite { epoch, batch } => {
            let kept = match finished {
                0 => "nothing was saved (a model already in the output folder is kept)".to_string(),
                n => format!("saved the weights of epoch {n}, the last whose weights were finite"),
            };
            Err(Error::Model(format!(
                "the loss or the weights became NaN or infinite at epoch {epoch}, batch {batch}; {kept}. Try a lower --learning-rate"
            )))
        }
    }
}

fn strict_check(datasets: &[&Dataset]) -> Result<()> {
    let total: usize = datasets.iter().map(|d| d.len()).sum();
    let bar = super::progress::bar(total, "images decoded");
    let errors: Vec<_> = datasets
        .iter()
        .flat_map(|d| d.verify(&|| bar.inc(1)))
        .collect();
    bar.finish_and_clear();
    match errors.first() {
        None => Ok(()),
        Some(first) => Err(Error::BadImages {
            count: errors.len(),
            total,
            first: Box::new(first.clone()),
        }),
    }
}

/// A model description from a file, else a preset (the tutorial's by default) sized for `data`.
pub fn choose_model(
    preset: Option<&str>,
    model: Option<&Path>,
    data: &Dataset,
) -> Result<ModelConfig> {
    let (h, w, _) = data.image_shape();
    let classes = data.class_names().len();
    match (preset, model) {
        (_, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            ModelConfig::from_json(&text).map_err(|e| Error::ModelFile {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        }
        (Some(name), None) => presets::preset(name, h, w, classes),
        (None, None) => presets::preset("tutorial", h, w, classes),
    }
}

fn save_run(
    out: &Path,
    model: &Sequential,
    class_names: &[String],
    history: &History,
) -> Result<()> {
    let model_path = out.join("model.safetensors");
    model_file::save(&model_path, model, class_names)?;
    let json = serde_json::to_string_pretty(history).expect("histories serialise");
    petal::fsutil::write_atomically(&out.join("history.json"), json.as_bytes())?;
    save_png(&history_plot(history), &out.join("history.png"))?;
    println!(
        "Saved {}, history.json and history.png in {}.",
        model_path.display(),
        out.display()
    );
    Ok(())
}

/// A Keras-like progress bar per epoch and its summary line.
#[derive(Default)]
struct EpochProgress {
    bar: Option<ProgressBar>,
    epochs: usize,
}

impl EpochProgress {
    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl FitObserver for EpochProgress {
    fn epoch_started(&mut self, epoch: usize, epochs: usize, batches: usize) {
        self.epochs = epochs;
        let bar = ProgressBar::new(batches as u64);
        if let Ok(style) = ProgressStyle::with_template(&format!(
            "Epoch {epoch}/{epochs}  {{pos}}/{{len}} {{bar:30}} {{elapsed}} (ETA {{eta}})  {{msg}}"
        )) {
            bar.set_style(style);
        }
        self.bar = Some(bar);
    }

    fn batch_finished(&mut self, _batch: usize, running: &BatchScore) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "loss: {:.4}  accuracy: {:.4}",
                running.loss(),
                running.accuracy()
            ));
            bar.inc(1);
        }
    }

    fn epoch_finished(&mut self, log: &EpochLog) {
        let batches = self.bar.as_ref().map_or(0, |b| b.length().unwrap_or(0));
        self.finish();
        let validation = match (log.val_loss, log.val_accuracy) {
            (Some(l), Some(a)) => format!("  val_loss: {l:.4}  val_accuracy: {a:.4}"),
            _ => String::new(),
        };
        println!(
            "Epoch {}/{}  {batches}/{batches}  {:.0}s  {:.0} images/s  loss: {:.4}  accuracy: {:.4}{validation}",
            log.epoch, self.epochs, log.seconds, log.images_per_second, log.loss, log.accuracy
        );
    }
}
