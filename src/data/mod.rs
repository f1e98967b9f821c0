//! From a folder of class subfolders to batches of images, as Keras's
//! `image_dataset_from_directory` does — same classes, same files, same split for the same seed.

pub mod cache;
pub mod dataset;
pub mod decode;
pub mod fetch;
#[cfg(test)]
mod hostile_images;
pub mod image_u8;
pub mod index;
pub mod inspect;
mod jpeg;
pub mod load_img;
pub mod numpy_rng;
pub mod pipeline;
pub mod resize;
pub mod split;

pub use cache::CacheMode;
pub use dataset::{Dataset, ImageDatasetBuilder};
pub use decode::ColorMode;
pub use image_u8::ImageU8;
pub use index::DirectoryIndex;
pub use pipeline::{Batch, Batches};
pub use resize::Interpolation;
pub use split::{Samples, Subset};
