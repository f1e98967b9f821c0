//! Batches of one epoch, produced ahead of the consumer: a producer thread decodes each batch's
//! images on rayon's workers while the consumer works on the previous batch, and a bounded queue
//! caps how many finished batches wait in memory.

use super::dataset::Dataset;
use crossbeam_channel::Receiver;
use rayon::prelude::*;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Images as `[len, height, width, channels]` float32 in 0..=255, with their integer labels.
#[derive(Debug, Clone)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<i32>,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    /// Positions of these images in the dataset (see [`Dataset::file_path`]).
    pub indices: Vec<usize>,
    /// Where the image buffer goes back when the batch is dropped, to be refilled.
    recycle: Option<Arc<BufferPool>>,
}

impl Drop for Batch {
    fn drop(&mut self) {
        if let Some(pool) = self.recycle.take() {
            pool.give_back(std::mem::take(&mut self.images));
        }
    }
}

/// Image buffers of finished batches, reused so that an epoch does not allocate (and page-fault
/// in) a fresh 12 MB buffer per batch.
#[derive(Debug, Default)]
struct BufferPool {
    free: Mutex<Vec<Vec<f32>>>,
    capacity: usize,
}

impl BufferPool {
    fn take(&self, len: usize) -> Vec<f32> {
        let mut buffer = self
            .free
            .lock()
            .ok()
            .and_then(|mut f| f.pop())
            .unwrap_or_default();
        buffer.resize(len, 0.0);
        buffer
    }

    fn give_back(&self, buffer: Vec<f32>) {
        if let Ok(mut free) = self.free.lock() {
            if free.len() < self.capacity {
                free.push(buffer);
            }
        }
    }
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
        // Queued batches, the one being filled and one held by the consumer.
        let pool = Arc::new(BufferPool {
            free: Mutex::default(),
            capacity: depth + 2,
        });
        // Batches are assembled (and decoded, on a first epoch) on threads of their own. On the
        // training threads' pool a worker would first finish every image load queued on it
        // before taking the convolution job the model is waiting for.
        let loaders = rayon::ThreadPoolBuilder::new()
            .num_threads(rayon::current_num_threads())
            .thread_name(|i| format!("petal-loader-{i}"))
            .build()
            .ok();
        let producer = std::thread::spawn(move || {
            for chunk in order.chunks(batch_size) {
                let batch = match &loaders {
                    Some(loaders) => loaders.install(|| assemble(&dataset, chunk, &pool)),
                    None => assemble(&dataset, chunk, &pool),
                };
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

/// Loads and converts the chunk's images on the worker threads, each into its slot of the batch.
fn assemble(dataset: &Dataset, chunk: &[usize], pool: &Arc<BufferPool>) -> Batch {
    let (height, width, channels) = dataset.image_shape();
    let size = height * width * channels;
    let mut images = pool.take(chunk.len() * size);
    let loaded: Vec<bool> = images
        .par_chunks_mut(size)
        .zip(chunk.par_iter())
        .map(|(slot, &i)| match dataset.load(i) {
            Some(pixels) => {
                for (v, &p) in slot.iter_mut().zip(pixels.iter()) {
                    *v = p as f32;
                }
                true
            }
            None => false,
        })
        .collect();
    let mut batch = Batch {
        images,
        height,
        width,
        channels,
        labels: Vec::with_capacity(chunk.len()),
        indices: Vec::with_capacity(chunk.len()),
        recycle: Some(pool.clone()),
    };
    let mut kept = 0;
    for (slot, (&i, ok)) in chunk.iter().zip(loaded).enumerate() {
        if ok {
            if kept != slot {
                batch
                    .images
                    .copy_within(slot * size..(slot + 1) * size, kept * size);
            }
            batch.labels.push(dataset.label(i));
            batch.indices.push(i);
            kept += 1;
        }
    }
    batch.images.truncate(kept * size);
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
