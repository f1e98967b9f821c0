//! Batches of one epoch, produced ahead of the consumer: a producer thread decodes each batch's
//! images on rayon's workers while the consumer works on the previous batch, and a bounded queue
//! caps how many finished batches wait in memory.

use super::dataset::Dataset;
use crossbeam_channel::Receiver;
use rayon::prelude::*;
use std::thread::JoinHandle;

/// Images as `[len, height, width, channels]` float32 in 0..=255, with their integer labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<i32>,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    /// Positions of these images in the dataset (see [`Dataset::file_path`]).
    pub indices: Vec<usize>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The `i`-th image of the batch, `height × width × channels` values.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.height * self.width * self.channels;
        &self.images[i * n..(i + 1) * n]
    }
}

/// An epoch's batches in order; unusable images are left out (their batch is shorter).
pub struct Batches {
    queue: Option<Receiver<Batch>>,
    producer: Option<JoinHandle<()>>,
    remaining: usize,
}

impl Batches {
    pub(crate) fn spawn(dataset: Dataset, order: Vec<usize>, depth: usize) -> Self {
        let batch_size = dataset.batch_size();
        let remaining = order.len().div_ceil(batch_size);
        let (tx, rx) = crossbeam_channel::bounded(depth);
        let producer = std::thread::spawn(move || {
            for chunk in order.chunks(batch_size) {
                let batch = assemble(&dataset, chunk);
                if batch.is_empty() {
                    continue;
                }
                if tx.send(batch).is_err() {
                    return; // the consumer stopped early
                }
            }
        });
        Batches {
            queue: Some(rx),
            producer: Some(producer),
            remaining,
        }
    }
}

fn assemble(dataset: &Dataset, chunk: &[usize]) -> Batch {
    let (height, width, channels) = dataset.image_shape();
    let loaded: Vec<_> = chunk.par_iter().map(|&i| (i, dataset.load(i))).collect();
    let n = loaded.iter().filter(|(_, px)| px.is_some()).count();
    let mut batch = Batch {
        images: Vec::with_capacity(n * height * width * channels),
        labels: Vec::with_capacity(n),
        height,
        width,
        channels,
        indices: Vec::with_capacity(n),
    };
    for (i, pixels) in loaded {
        if let Some(pixels) = pixels {
            batch.images.extend(pixels.iter().map(|&v| v as f32));
            batch.labels.push(dataset.label(i));
            batch.indices.push(i);
        }
    }
    batch
}

impl Iterator for Batches {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let batch = self.queue.as_ref()?.recv().ok();
        self.remaining = self.remaining.saturating_sub(1);
        batch
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        // Closing the queue first makes a producer blocked on a full queue stop.
        drop(self.queue.take());
        if let Some(producer) = self.producer.take() {
            let _ = producer.join();
        }
    }
}
