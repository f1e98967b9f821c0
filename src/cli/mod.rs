//! The `petal` command line: argument parsing and printing only; the work is in the library.

mod bench;
mod data;
mod dataset_args;
mod interrupt;
mod model;
mod progress;
mod tflite;
mod train;
mod tutorial;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "petal",
    version,
    about = "The Keras image-classification tutorial, as one fast binary"
)]
struct Cli {
    /// Worker threads for decoding and computing (default: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole Keras tutorial: data, both models, augmentation, prediction, report.
    Tutorial(tutorial::TutorialArgs),
    /// Look at a folder of images: classes, counts, split, sample pictures.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Train a model on a folder of images (the tutorial's model by default).
    Train(train::TrainArgs),
    /// Print a model's layers, output shapes and parameter counts.
    Summary(model::SummaryArgs),
    /// Classify images with a trained model.
    Predict(model::PredictArgs),
    /// Loss, accuracy, per-class precision and recall, and the confusion matrix on a folder.
    Evaluate(model::EvaluateArgs),
    /// Write a trained model as a TensorFlow Lite file (.tflite).
    Export(tflite::ExportArgs),
    /// Look into TensorFlow Lite files.
    #[command(subcommand)]
    Tflite(tflite::TfliteCommand),
    /// Measure petal's speed.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// More worker threads than this only cost memory and start-up time (each has its own buffers).
const MAX_THREADS: usize = 1024;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = petal::nn::simd::Level::from_env() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    if let Some(threads) = cli.threads {
        if threads == 0 || threads > MAX_THREADS {
            eprintln!(
                "error: --threads {threads}: give 1 to {MAX_THREADS} (default: one per core, {})",
                std::thread::available_parallelism().map_or(1, |n| n.get())
            );
            return ExitCode::FAILURE;
        }
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
        {
            eprintln!("error: cannot start {threads} threads: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Command::Tutorial(args) => tutorial::run(args),
        Command::Data(cmd) => data::run(cmd),
        Command::Train(args) => train::run(args),
        Command::Summary(args) => model::summary(args),
        Command::Predict(args) => model::predict(args),
        Command::Evaluate(args) => model::evaluate_command(args),
        Command::Export(args) => tflite::export(args),
        Command::Tflite(cmd) => tflite::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ petal::Error::Interrupted(_)) => {
            eprintln!("{e}");
            ExitCode::from(130) // what shells report for Ctrl-C
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
