//! petal: the Keras image-classification tutorial as a Rust library and one binary.
//!
//! - [`data`]: fetch a data set, index a class-per-folder image directory, split it exactly as
//!   Keras's `image_dataset_from_directory` does, decode, resize, cache, shuffle, batch and
//!   prefetch.
//! - [`nn`]: Keras's `Sequential` with its layers (augmentation included), training with Adam,
//!   evaluation, model files.
//! - [`tflite`]: TensorFlow Lite export and interpreter.
//! - [`viz`]: PNG pictures (sample grids, augmentation previews, training curves).
//! - [`report`]: the tutorial's `results.json` and self-contained HTML report.

mod cache_aligned;
pub mod data;
mod error;
pub mod fsutil;
pub mod nn;
pub mod report;
mod split_mix;
pub mod sysmem;
pub mod tflite;
pub mod viz;

pub use cache_aligned::CacheAligned;
pub use error::{Error, ImageError, ImageErrorKind, Result};
