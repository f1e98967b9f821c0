//! Keras's `load_img(path, target_size=…)` + `img_to_array`: one photo as a model's input.

use super::decode::{decode_file, ColorMode, DEFAULT_MAX_PIXELS};
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
/// does by default; `channels` picks grayscale (1), RGB (3) or RGBA (4).
pub fn load_img(path: &Path, height: usize, width: usize, channels: usize) -> Result<LoadedImage> {
    let mode = match channels {
        1 => ColorMode::Grayscale,
        4 => ColorMode::Rgba,
        _ => ColorMode::Rgb,
    };
    let image = decode_file(path, mode, DEFAULT_MAX_PIXELS)?;
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
