//! Pictures of the data as PNG files.

pub mod augmentation;
pub mod grid;
pub mod plot;
pub mod png;
pub mod text;

pub use augmentation::augmentation_previews;
pub use grid::{first_images, image_grid, Tile};
pub use plot::history_plot;
pub use png::save_png;
