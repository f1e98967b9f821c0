//! `petal bench …`: speed measurements quoted in the README.

use super::dataset_args::DatasetArgs;
use super::progress;
use clap::Subcommand;
use petal::data::CacheMode;
use petal::nn::optim::{Optimizer, OptimizerConfig};
use petal::nn::simd::Level;
use petal::nn::{presets, LayerTime, Mode, Sequential};
use petal::tflite::{Interpreter, Tensor};
use petal::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Images per second of reading, decoding and resizing a folder (no cache), as one epoch.
    Data {
        #[command(flatten)]
        data: DatasetArgs,
        /// Epochs to time; the figure is the best one's.
        #[arg(long, default_value_t = 1)]
        epochs: usize,
    },
    /// Images per second of full training steps (forward, backward, Adam) on random data. With
    /// several presets, rounds alternate between them and each is compared with the first.
    Train {
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// Timed steps per round (after two warm-up steps).
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Model preset; repeat to compare, e.g. --preset tutorial --preset tutorial-augmented.
        #[arg(long = "preset", default_value = "tutorial")]
        presets: Vec<String>,
        /// Rounds per preset; the figure is the best round's.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Also print each layer's forward and backward milliseconds per step.
        #[arg(long)]
        layers: bool,
    },
    /// Inference latency at batch size 1 and throughput at batch size 32, tutorial model; or,
    /// with --tflite, the batch-1 latency of petal's TensorFlow Lite interpreter on a file.
    Infer {
        /// Timed runs per measurement.
        #[arg(long, default_value_t = 50)]
        runs: usize,
        /// Time petal's TensorFlow Lite interpreter on this .tflite file instead, at batch size 1
        /// (any model: its first signature, on inputs of the declared types and shapes).
        #[arg(long)]
        tflite: Option<PathBuf>,
        /// Also print each layer's milliseconds per batch-1 run (with --tflite: each operator's,
        /// in graph order, then the totals by kind).
        #[arg(long)]
        layers: bool,
    },
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Data { data, epochs } => bench_data(&data, epochs.max(1)),
        BenchCommand::Train {
            batch_size,
            steps,
            presets,
            rounds,
            layers,
        } => {
            let plan = TrainPlan {
                batch: batch_size.max(1),
                steps: steps.max(1),
                rounds: rounds.max(1),
                layers,
            };
            bench_train(&presets, plan)
        }
        BenchCommand::Infer {
            runs,
            tflite,
            layers,
        } => match tflite {
            Some(path) => bench_tflite(&path, runs.max(1), layers),
            None => bench_infer(runs.max(1), layers),
        },
    }
}

fn tutorial_model() -> Result<Sequential> {
    Sequential::new(&presets::preset("tutorial", 180, 180, 5)?, 123)
}

/// Pixel-like values that do not repeat, so no kernel sees a special case.
fn random_images(batch: usize) -> Vec<f32> {
    (0..batch * 180 * 180 * 3)
        .map(|i| ((i as u64 * 2_654_435_761) % 256) as f32)
        .collect()
}

struct TrainPlan {
    batch: usize,
    steps: usize,
    rounds: usize,
    layers: bool,
}

/// A model, its optimiser and one batch, ready to take training steps.
struct Trainer {
    model: Sequential,
    adam: Optimizer,
    images: Vec<f32>,
    labels: Vec<i32>,
    grad: Vec<f32>,
}

impl Trainer {
    fn new(preset: &str, batch: usize) -> Result<Self> {
        let mut trainer = Trainer {
            model: Sequential::new(&presets::preset(preset, 180, 180, 5)?, 123)?,
            adam: Optimizer::new(OptimizerConfig::adam()),
            images: random_images(batch),
            labels: (0..batch as i32).map(|i| i % 5).collect(),
            grad: vec![0f32; batch * 5],
        };
        trainer.steps(2);
        Ok(trainer)
    }

    /// Seconds that `steps` training steps take.
    fn steps(&mut self, steps: usize) -> f64 {
        let batch = self.labels.len();
        let start = Instant::now();
        for _ in 0..steps {
            let out = self.model.forward(&self.images, batch, Mode::Train);
            let grad = Some(&mut self.grad[..]);
            petal::nn::loss::sparse_categorical_crossentropy(out, &self.labels, 5, true, grad);
            self.model.backward(&self.images, &self.grad, batch);
            self.adam.apply(self.model.params_mut());
        }
        start.elapsed().as_secs_f64()
    }
}

fn bench_train(names: &[String], plan: TrainPlan) -> Result<()> {
    let mut trainers = names
        .iter()
        .map(|name| Trainer::new(name, plan.batch))
        .collect::<Result<Vec<_>>>()?;
    for trainer in &mut trainers {
        trainer.model.set_profiling(plan.layers);
    }
    let mut best = vec![f64::INFINITY; names.len()];
    for _ in 0..plan.rounds {
        for (trainer, best) in trainers.iter_mut().zip(&mut best) {
            *best = best.min(trainer.steps(plan.steps));
        }
    }
    let rate = |seconds: f64| (plan.batch * plan.steps) as f64 / seconds;
    for (name, &seconds) in names.iter().zip(&best) {
        let ratio = match names.len() {
            1 => String::new(),
            _ => format!(", {:.2}× {}", rate(seconds) / rate(best[0]), names[0]),
        };
        println!(
            "petal bench train: {name} model, batch {}, {} steps in {seconds:.2} s: {:.1} images/s ({:.1} ms/step, {} threads, {}{ratio})",
            plan.batch,
            plan.steps,
            rate(seconds),
            seconds * 1e3 / plan.steps as f64,
            rayon::current_num_threads(),
            simd_levels()
        );
    }
    for (name, trainer) in names.iter().zip(&trainers) {
        if let Some(times) = trainer.model.layer_times() {
            print_layer_times(name, &trainer.model, times, plan.steps * plan.rounds);
        }
    }
    Ok(())
}

fn print_layer_times(name: &str, model: &Sequential, times: &[LayerTime], steps: usize) {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3 / steps as f64;
    let total: f64 = times.iter().map(|t| ms(t.forward) + ms(t.backward)).sum();
    println!("{name} model, milliseconds per step ({total:.1} in all):");
    println!(
        "{:<24} {:>9} {:>9} {:>7}",
        "layer", "forward", "backward", "share"
    );
    for (layer, time) in model.layers().iter().zip(times) {
        let (f, b) = (ms(time.forward), ms(time.backward));
        println!(
            "{:<24} {f:>9.2} {b:>9.2} {:>6.1}%",
            layer.name(),
            100.0 * (f + b) / total
        );
    }
}

/// Milliseconds of each of `runs` calls of `f`, after three warm-up calls, sorted.
fn latencies(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs + 3 {
        let start = Instant::now();
        f()?;
        if i >= 3 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}

fn bench_infer(runs: usize, layers: bool) -> Result<()> {
    let mut model = tutorial_model()?;
    let one = random_images(1);
    let latencies = latencies(runs, || {
        model.forward(&one, 1, Mode::Infer);
        Ok(())
    })?;
    if layers {
        model.set_profiling(true);
        for _ in 0..runs {
            model.forward(&one, 1, Mode::Infer);
        }
        print_layer_times(
            "tutorial (batch 1)",
            &model,
            model.layer_times().unwrap_or(&[]),
            runs,
        );
        model.set_profiling(false);
    }
    let batch = random_images(32);
    model.forward(&batch, 32, Mode::Infer);
    let rounds = runs.div_ceil(10).max(3);
    let start = Instant::now();
    for _ in 0..rounds {
        model.forward(&batch, 32, Mode::Infer);
    }
    let throughput = (32 * rounds) as f64 / start.elapsed().as_secs_f64();
    println!(
        "petal bench infer: tutorial model, batch 1: {:.2} ms median ({:.2} ms best); batch 32: {throughput:.0} images/s ({} threads, {})",
        latencies[latencies.len() / 2],
        latencies[0],
        rayon::current_num_threads(),
        simd_levels()
    );
    Ok(())
}

/// The instruction sets the run used: petal's kernels follow `PETAL_SIMD`; the `gemm` crate
/// (im2col convolutions, Dense at batch > 1) picks its own.
fn simd_levels() -> String {
    let gemm = petal::nn::kernels::gemm::instruction_set();
    format!("SIMD {}, gemm {gemm}", Level::selected())
}

fn bench_tflite(path: &Path, runs: usize, per_op: bool) -> Result<()> {
    let mut interpreter = Interpreter::from_file(path)?;
    let signature = interpreter
        .signature_list()
        .into_iter()
        .next()
        .ok_or_else(|| Error::TfLite {
            origin: path.display().to_string(),
            reason: "the model has no signature to run".into(),
        })?;
    let inputs: Vec<(String, Tensor)> = signature
        .inputs
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                super::tflite::pseudo_random(&t.shape, t.dtype),
            )
        })
        .collect();
    let named: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut runner = interpreter.signature_runner(&signature.key)?;
    let latencies = latencies(runs, || runner.run(&named).map(|_| ()))?;
    if per_op {
        interpreter.profile(true);
        let mut runner = interpreter.signature_runner(&signature.key)?;
        for _ in 0..runs {
            runner.run(&named)?;
        }
        let mut by_kind: Vec<(&str, f64, usize)> = Vec::new();
        let times: Vec<(&str, f64)> = (interpreter.op_times().into_iter())
            .map(|(name, time)| (name, time.as_secs_f64() * 1e3 / runs as f64))
            .collect();
        println!("operator                        ms per run");
        for (i, (name, ms)) in times.iter().enumerate() {
            println!("  {i:<4} {name:<24} {ms:.4}");
        }
        println!("by kind:");
        for (name, ms) in times {
            match by_kind.iter_mut().find(|(n, _, _)| *n == name) {
                Some(entry) => {
                    entry.1 += ms;
                    entry.2 += 1;
                }
                None => by_kind.push((name, ms, 1)),
            };
        }
        by_kind.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (name, ms, count) in by_kind {
            println!("  {name:<20} ×{count:<3} {ms:.3} ms per run");
        }
    }
    println!(
        "petal bench infer: {} in petal's TFLite interpreter, batch 1: {:.2} ms median ({:.2} ms best) ({} threads)",
        path.display(),
        latencies[latencies.len() / 2],
        latencies[0],
        rayon::current_num_threads()
    );
    Ok(())
}

fn bench_data(args: &DatasetArgs, epochs: usize) -> Result<()> {
    let dataset = args.builder(CacheMode::None).shuffle(false).build()?;
    let (h, w, _) = dataset.image_shape();
    let mut best = f64::INFINITY;
    let mut images = 0;
    for epoch in 0..epochs {
        let bar = progress::bar(dataset.num_batches(), "batches");
        let start = Instant::now();
        images = 0;
        for batch in dataset.epoch(epoch) {
            images += batch.len();
            bar.inc(1);
        }
        best = best.min(start.elapsed().as_secs_f64());
        bar.finish_and_clear();
    }
    println!(
        "petal bench data: {images} images read, decoded and resized to {h}×{w} in {best:.2} s: {:.0} images/s ({} threads)",
        images as f64 / best,
        rayon::current_num_threads()
    );
    Ok(())
}
