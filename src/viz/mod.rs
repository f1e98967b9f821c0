//! Pictures of the data as PNG files.

pub mod grid;
pub mod png;
pub mod text;

pub use grid::{image_grid, Tile};
pub use png::save_png;
