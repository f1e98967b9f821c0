//! Keras's `load_img(path, target_size=…)` + `img_to_array`: one photo as a model's input.

use super::decode::{decode_file, ColorMode};
use super::resize::{resize, Interpolation, Window};
use crate::Result;
use std::path::Path;

/// A photo ready for a model: `height × width × channels` floats in 0..=255.
pub struct LoadedImage {
    pub pixels: Vec<f32>,
    /// The photo's own width and height, before resizing.
    pub original: (usize, usize),
}

impl LoadedImage {
    pub fn was_resized(&self, height: usize, width: usize) -> bool {
        self.original != (width, height)
    }
}

/// Decodes `path` and resizes it to `height × width` with nearest-neighbour, as `load_img`
/// does by default; `channels` picks grayscale (1), RGB (3) or RGBA (4). A photo of more than
/// `max_pixels` is refused before decoding.
pub fn load_img(
    path: &Path,
    (height, width, channels): (usize, usize, usize),
    max_pixels: u64,
) -> Result<LoadedImage> {
    let image = decode_file(path, ColorMode::from_channels(channels), max_pixels)?;
    let resized = resize(
        &image,
        Window::whole(&image),
        height,
        width,
        Interpolation::Nearest,
    );
    Ok(LoadedImage {
        pixels: resized.pixels.iter().map(|&v| f32::from(v)).collect(),
        original: (image.width, image.height),
    })
}
