//! petal: the Keras image-classification tutorial as a Rust library and one binary.
//!
//! - [`data`]: index a class-per-folder image directory, split it exactly as Keras's
//!   `image_dataset_from_directory` does, decode, resize, cache, shuffle, batch and prefetch.
//! - [`viz`]: PNG pictures of the data (sample grids with titles).

pub mod data;
mod error;
pub mod fsutil;
pub mod nn;
pub mod report;
pub mod tflite;
pub mod viz;

pub use error::{Error, ImageError, ImageErrorKind, Result};
