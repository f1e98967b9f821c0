//! `petal bench …`: speed measurements quoted in the README.

use super::dataset_args::DatasetArgs;
use super::progress;
use clap::Subcommand;
use petal::data::CacheMode;
use petal::Result;
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
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Data { data, epochs } => bench_data(&data, epochs.max(1)),
    }
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
