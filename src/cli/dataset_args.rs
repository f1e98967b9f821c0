//! The dataset flags shared by every command that reads an image folder.

use clap::Args;
use petal::data::{CacheMode, ColorMode, ImageDatasetBuilder, Interpolation};
use std::path::PathBuf;

#[derive(Args, Clone)]
pub struct DatasetArgs {
    /// Folder with one subfolder of images per class.
    pub dir: PathBuf,
    /// Fraction of the files kept for validation, as Keras's validation_split.
    #[arg(long, allow_negative_numbers = true)]
    pub validation_split: Option<f64>,
    /// Seed of the shuffle (and so of the split), as Keras's seed.
    #[arg(long)]
    pub seed: Option<u32>,
    /// Keep the files in sorted order instead of shuffling them.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Height and width the images are resized to, e.g. 180x180.
    #[arg(long, default_value = "180x180", value_parser = parse_size)]
    pub image_size: (usize, usize),
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// rgb, grayscale or rgba.
    #[arg(long, default_value = "rgb")]
    pub color_mode: ColorMode,
    /// bilinear or nearest.
    #[arg(long, default_value = "bilinear")]
    pub interpolation: Interpolation,
    /// Crop the largest centred window of the target aspect ratio before resizing.
    #[arg(long)]
    pub crop_to_aspect_ratio: bool,
    /// Use only these classes, in this order (comma-separated folder names).
    #[arg(long, value_delimiter = ',')]
    pub class_names: Option<Vec<String>>,
    /// Walk into folders that are symbolic links.
    #[arg(long)]
    pub follow_links: bool,
    /// Refuse images with more pixels than this.
    #[arg(long, default_value_t = petal::data::decode::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
}

impl DatasetArgs {
    pub fn builder(&self, cache: CacheMode) -> ImageDatasetBuilder {
        let mut b = ImageDatasetBuilder::new(&self.dir)
            .image_size(self.image_size.0, self.image_size.1)
            .batch_size(self.batch_size)
            .shuffle(!self.no_shuffle)
            .color_mode(self.color_mode)
            .interpolation(self.interpolation)
            .crop_to_aspect_ratio(self.crop_to_aspect_ratio)
            .follow_links(self.follow_links)
            .max_pixels(self.max_pixels)
            .cache(cache);
        if let Some(seed) = self.seed {
            b = b.seed(seed);
        }
        if let Some(split) = self.validation_split {
            b = b.validation_split(split);
        }
        if let Some(names) = &self.class_names {
            b = b.class_names(names.clone());
        }
        b
    }
}

/// The builder with its in-memory cache moved to `disk` if it would not fit (see
/// [`ImageDatasetBuilder::cache_within_memory`]), saying so.
pub fn cache_within_memory(
    builder: ImageDatasetBuilder,
    files: usize,
    disk: PathBuf,
) -> ImageDatasetBuilder {
    let (builder, spilled) = builder.cache_within_memory(files, disk.clone());
    if let Some(bytes) = spilled {
        println!(
            "The decoded images would take {} in memory, more than half of what is available: caching them on disk in {} instead.",
            petal::sysmem::describe(bytes),
            disk.display()
        );
    }
    builder
}

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let parse = |v: &str| v.trim().parse::<usize>().ok().filter(|&n| n > 0);
    let parts: Vec<&str> = s.split(['x', 'X', ',']).collect();
    match parts.as_slice() {
        [h, w] => parse(h).zip(parse(w)),
        [side] => parse(side).map(|n| (n, n)),
        _ => None,
    }
    .ok_or_else(|| format!("{s:?} is not a size: give HEIGHTxWIDTH, e.g. 180x180"))
}
