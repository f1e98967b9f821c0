//! `image_dataset_from_directory` for Rust: a builder with Keras's arguments, giving datasets
//! that yield batches of `(images [N, H, W, C] f32 in 0..=255, labels [N] i32)`.

use super::cache::{CacheMode, ImageStore, StableHasher};
use super::decode::{decode_file, ColorMode, DEFAULT_MAX_PIXELS};
use super::image_u8::ImageU8;
use super::index::DirectoryIndex;
use super::numpy_rng::RandomState;
use super::pipeline::Batches;
use super::resize::{resize, Interpolation, Window};
use super::split::{self, Samples, Subset};
use crate::{Error, ImageError, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Arguments of Keras's `image_dataset_from_directory`, with its defaults, plus petal's cache,
/// prefetch depth and decoding limit.
#[derive(Debug, Clone)]
pub struct ImageDatasetBuilder {
    directory: PathBuf,
    class_names: Option<Vec<String>>,
    color_mode: ColorMode,
    batch_size: usize,
    image_size: (usize, usize),
    shuffle: bool,
    seed: Option<u32>,
    validation_split: Option<f64>,
    interpolation: Interpolation,
    crop_to_aspect_ratio: bool,
    follow_links: bool,
    cache: CacheMode,
    prefetch: usize,
    max_pixels: u64,
}

impl ImageDatasetBuilder {
    pub fn new(directory: impl Into<PathBuf>) -> Self {
        ImageDatasetBuilder {
            directory: directory.into(),
            class_names: None,
            color_mode: ColorMode::Rgb,
            batch_size: 32,
            image_size: (256, 256),
            shuffle: true,
            seed: None,
            validation_split: None,
            interpolation: Interpolation::Bilinear,
            crop_to_aspect_ratio: false,
            follow_links: false,
            cache: CacheMode::None,
            prefetch: 2,
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }

    /// Picks and orders the classes (a subset of the subfolder names).
    pub fn class_names(mut self, names: Vec<String>) -> Self {
        self.class_names = Some(names);
        self
    }
    pub fn color_mode(mut self, mode: ColorMode) -> Self {
        self.color_mode = mode;
        self
    }
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }
    /// Height and width every image is resized to.
    pub fn image_size(mut self, height: usize, width: usize) -> Self {
        self.image_size = (height, width);
        self
    }
    pub fn shuffle(mut self, shuffle: bool) -> Self {
        self.shuffle = shuffle;
        self
    }
    pub fn seed(mut self, seed: u32) -> Self {
        self.seed = Some(seed);
        self
    }
    pub fn validation_split(mut self, fraction: f64) -> Self {
        self.validation_split = Some(fraction);
        self
    }
    pub fn interpolation(mut self, interpolation: Interpolation) -> Self {
        self.interpolation = interpolation;
        self
    }
    pub fn crop_to_aspect_ratio(mut self, crop: bool) -> Self {
        self.crop_to_aspect_ratio = crop;
        self
    }
    pub fn follow_links(mut self, follow: bool) -> Self {
        self.follow_links = follow;
        self
    }
    pub fn cache(mut self, cache: CacheMode) -> Self {
        self.cache = cache;
        self
    }
    /// How many finished batches may wait ahead of the consumer (at least 1).
    pub fn prefetch(mut self, batches: usize) -> Self {
        self.prefetch = batches;
        self
    }
    /// Images with more pixels than this are refused unread.
    pub fn max_pixels(mut self, pixels: u64) -> Self {
        self.max_pixels = pixels;
        self
    }

    /// Bytes an in-memory cache of `files` images takes (8-bit pixels at the output size).
    pub fn memory_cache_bytes(&self, files: usize) -> u64 {
        let (h, w) = self.image_size;
        (files * h * w * self.color_mode.channels()) as u64
    }

    /// With [`CacheMode::Memory`], a cache of `files` images that would take more than half
    /// the memory available to the process moves to a disk cache in `disk` (as fast here, and
    /// not killed by the kernel mid-run); returns the bytes it would have taken when it moved.
    pub fn cache_within_memory(self, files: usize, disk: PathBuf) -> (Self, Option<u64>) {
        let room = crate::sysmem::available_bytes();
        self.cache_within(files, disk, room)
    }

    /// [`Self::cache_within_memory`] with `room` bytes available (`None`: unknown).
    fn cache_within(self, files: usize, disk: PathBuf, room: Option<u64>) -> (Self, Option<u64>) {
        let needed = self.memory_cache_bytes(files);
        let too_large = room.is_some_and(|room| needed > room / 2);
        if self.cache == CacheMode::Memory && too_large {
            (self.cache(CacheMode::Disk(disk)), Some(needed))
        } else {
            (self, None)
        }
    }

    /// Scans the directory (classes and files in Keras's order, not shuffled).
    pub fn index(&self) -> Result<DirectoryIndex> {
        DirectoryIndex::scan(
            &self.directory,
            self.class_names.as_deref(),
            self.follow_links,
        )
    }

    fn check(&self, subset: Option<Subset>) -> Result<()> {
        let invalid = |m: String| Err(Error::InvalidArgument(m));
        if self.batch_size == 0 {
            return invalid("batch_size must be at least 1".into());
        }
        if self.image_size.0 == 0 || self.image_size.1 == 0 {
            return invalid(format!(
                "image_size must be positive, not {:?}",
                self.image_size
            ));
        }
        if self.prefetch == 0 {
            return invalid("prefetch must be at least 1 batch".into());
        }
        match (self.validation_split, subset) {
            (Some(_), None) => invalid(
                "validation_split is set: ask for the training or validation subset (or both)".into(),
            ),
            (None, Some(_)) => invalid("a subset needs validation_split".into()),
            (Some(_), Some(_)) if self.shuffle && self.seed.is_none() => invalid(
                "a seed is needed with validation_split and shuffling, so that training and validation never overlap"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    fn shuffle_seed(&self) -> Option<u32> {
        self.shuffle.then(|| self.seed.unwrap_or_else(random_seed))
    }

    /// The files and labels of `subset` (or of everything) in the order Keras yields them.
    pub fn samples(&self, index: &DirectoryIndex, subset: Option<Subset>) -> Result<Samples> {
        self.check(subset)?;
        let all = split::shuffled(index, self.shuffle_seed());
        match (subset, self.validation_split) {
            (Some(subset), Some(fraction)) => {
                let (training, validation) = split::split(all, fraction)?;
                Ok(if subset == Subset::Training {
                    training
                } else {
                    validation
                })
            }
            _ => Ok(all),
        }
    }

    /// The whole directory as one dataset (no validation split).
    pub fn build(&self) -> Result<Dataset> {
        let index = self.index()?;
        let seed = self.shuffle_seed();
        let samples = self.samples(&index, None)?;
        self.dataset(&index, samples, seed, self.cache.clone())
    }

    /// The training or validation subset.
    pub fn build_subset(&self, subset: Subset) -> Result<Dataset> {
        let index = self.index()?;
        let samples = self.samples(&index, Some(subset))?;
        let cache = subset_cache(&self.cache, subset);
        self.dataset(&index, samples, self.shuffle_seed(), cache)
    }

    /// Training and validation, as Keras's `subset="both"`: the validation set is not reshuffled.
    pub fn build_both(&self) -> Result<(Dataset, Dataset)> {
        let index = self.index()?;
        let training = self.samples(&index, Some(Subset::Training))?;
        let validation = self.samples(&index, Some(Subset::Validation))?;
        let train_cache = subset_cache(&self.cache, Subset::Training);
        let val_cache = subset_cache(&self.cache, Subset::Validation);
        Ok((
            self.dataset(&index, training, self.shuffle_seed(), train_cache)?,
            self.dataset(&index, validation, None, val_cache)?,
        ))
    }

    fn dataset(
        &self,
        index: &DirectoryIndex,
        samples: Samples,
        shuffle_seed: Option<u32>,
        cache: CacheMode,
    ) -> Result<Dataset> {
        let (height, width) = self.image_size;
        let channels = self.color_mode.channels();
        let key = self.cache_key(&index.root, &samples);
        let store = ImageStore::open(&cache, samples.len(), height * width * channels, key)?;
        Ok(Dataset {
            inner: Arc::new(Inner {
                root: index.root.clone(),
                class_names: index.class_names.clone(),
                samples,
                height,
                width,
                color_mode: self.color_mode,
                interpolation: self.interpolation,
                crop_to_aspect_ratio: self.crop_to_aspect_ratio,
                batch_size: self.batch_size,
                shuffle_seed,
                prefetch: self.prefetch,
                max_pixels: self.max_pixels,
                store,
            }),
        })
    }

    /// Identifies what a disk cache holds: the files (with their sizes and modification times)
    /// and every setting that changes the pixels.
    fn cache_key(&self, root: &Path, samples: &Samples) -> u64 {
        if !matches!(self.cache, CacheMode::Disk(_)) {
            return 0;
        }
        let mut h = StableHasher::new();
        let settings = format!(
            "{:?} {:?} {:?} {} {}",
            self.image_size,
            self.color_mode,
            self.interpolation,
            self.crop_to_aspect_ratio,
            self.max_pixels
        );
        h.write(settings.as_bytes());
        for file in &samples.files {
            h.write(file.as_os_str().as_encoded_bytes());
            if let Ok(meta) = std::fs::metadata(root.join(file)) {
                h.write(&meta.len().to_le_bytes());
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
                h.write(&modified.map_or(0, |d| d.as_nanos()).to_le_bytes());
            }
        }
        h.finish()
    }
}

fn subset_cache(cache: &CacheMode, subset: Subset) -> CacheMode {
    match cache {
        CacheMode::Disk(path) => {
            let suffix = if subset == Subset::Training {
                "training"
            } else {
                "validation"
            };
            let mut name = path.as_os_str().to_owned();
            name.push(format!(".{suffix}"));
            CacheMode::Disk(PathBuf::from(name))
        }
        other => other.clone(),
    }
}

/// Keras draws `np.random.randint(1e6)` when no seed is given.
fn random_seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos % 1_000_000
}

/// A set of labelled images to iterate in batches, epoch after epoch. Cloning is cheap and
/// clones share the cache.
#[derive(Clone)]
pub struct Dataset {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    class_names: Vec<String>,
    samples: Samples,
    height: usize,
    width: usize,
    color_mode: ColorMode,
    interpolation: Interpolation,
    crop_to_aspect_ratio: bool,
    batch_size: usize,
    shuffle_seed: Option<u32>,
    prefetch: usize,
    max_pixels: u64,
    store: ImageStore,
}

impl Dataset {
    /// The folder the files were found in.
    pub fn directory(&self) -> &Path {
        &self.inner.root
    }

    /// Number of files (including any that later turn out to be unusable).
    pub fn len(&self) -> usize {
        self.inner.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.samples.is_empty()
    }

    pub fn batch_size(&self) -> usize {
        self.inner.batch_size
    }

    pub fn num_batches(&self) -> usize {
        self.len().div_ceil(self.inner.batch_size)
    }

    pub fn class_names(&self) -> &[String] {
        &self.inner.class_names
    }

    /// `(height, width, channels)` of every image.
    pub fn image_shape(&self) -> (usize, usize, usize) {
        (
            self.inner.height,
            self.inner.width,
            self.inner.color_mode.channels(),
        )
    }

    /// Paths relative to the directory, in Keras's order.
    pub fn files(&self) -> &[PathBuf] {
        &self.inner.samples.files
    }

    pub fn labels(&self) -> &[i32] {
        &self.inner.samples.labels
    }

    pub fn label(&self, i: usize) -> i32 {
        self.inner.samples.labels[i]
    }

    pub fn file_path(&self, i: usize) -> PathBuf {
        self.inner.root.join(&self.inner.samples.files[i])
    }

    /// The order of the samples in `epoch`: reshuffled every epoch, reproducibly for a seed.
    pub fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        if let Some(seed) = self.inner.shuffle_seed {
            let epoch_seed = seed ^ (epoch as u32).wrapping_mul(0x9e37_79b9);
            RandomState::new(epoch_seed).shuffle(&mut order);
        }
        order
    }

    /// The batches of `epoch` (counted from 0), decoded ahead on worker threads.
    pub fn epoch(&self, epoch: usize) -> Batches {
        Batches::spawn(self.clone(), self.epoch_order(epoch), self.inner.prefetch)
    }

    /// Sample `i` as 8-bit pixels, or `None` if its file cannot be used (warned once).
    pub fn image(&self, i: usize) -> Option<ImageU8> {
        let (h, w, c) = self.image_shape();
        self.load(i).map(|px| ImageU8::new(w, h, c, px.to_vec()))
    }

    pub(crate) fn load(&self, i: usize) -> Option<Arc<[u8]>> {
        let store = &self.inner.store;
        if store.is_bad(i) {
            return None;
        }
        if let Some(pixels) = store.get(i) {
            return Some(pixels);
        }
        match self.decode_and_store(i) {
            Ok(pixels) => Some(pixels),
            Err(e) => {
                if store.mark_bad(i) {
                    eprintln!("warning: skipping {e}");
                }
                None
            }
        }
    }

    fn decode_and_store(&self, i: usize) -> Result<Arc<[u8]>, ImageError> {
        let pixels: Arc<[u8]> = Arc::from(self.decode(i)?.pixels);
        self.inner.store.put(i, &pixels);
        Ok(pixels)
    }

    fn decode(&self, i: usize) -> Result<ImageU8, ImageError> {
        let inner = &self.inner;
        let image = decode_file(&self.file_path(i), inner.color_mode, inner.max_pixels)?;
        let window = if inner.crop_to_aspect_ratio {
            Window::centre_crop(image.width, image.height, inner.height, inner.width)
        } else {
            Window::whole(&image)
        };
        Ok(resize(
            &image,
            window,
            inner.height,
            inner.width,
            inner.interpolation,
        ))
    }

    /// Decodes every image now (filling the cache, if any) and returns the unusable ones'
    /// errors; `on_image` is called once per image, for progress.
    pub fn verify(&self, on_image: &(dyn Fn() + Sync)) -> Vec<ImageError> {
        (0..self.len())
            .into_par_iter()
            .filter_map(|i| {
                let result = if self.inner.store.is_ready(i) {
                    Ok(())
                } else {
                    self.decode_and_store(i).map(drop)
                };
                on_image();
                result.err().inspect(|_| {
                    self.inner.store.mark_bad(i);
                })
            })
            .collect()
    }

    /// Files found unusable so far, in dataset order.
    pub fn bad_files(&self) -> Vec<PathBuf> {
        (0..self.len())
            .filter(|&i| self.inner.store.is_bad(i))
            .map(|i| self.file_path(i))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_cache_too_large_for_the_room_moves_to_disk() {
        let disk = PathBuf::from("cache-dir");
        let builder = ImageDatasetBuilder::new("d")
            .image_size(100, 100)
            .cache(CacheMode::Memory);
        assert_eq!(builder.memory_cache_bytes(10), 300_000);
        let (kept, moved) = builder.cache_within(10, disk.clone(), Some(600_000));
        assert_eq!((kept.cache.clone(), moved), (CacheMode::Memory, None));
        let (spilled, moved) = kept.cache_within(10, disk.clone(), Some(599_999));
        assert_eq!(
            (spilled.cache, moved),
            (CacheMode::Disk(disk.clone()), Some(300_000))
        );
        let unknown = ImageDatasetBuilder::new("d").cache(CacheMode::Memory);
        assert_eq!(unknown.cache_within(10, disk, None).1, None);
    }
}
