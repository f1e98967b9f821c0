use serde::{Deserialize, Serialize};

/// The shape of one sample as it flows between layers (the batch dimension is implicit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    /// Height × width × channels, channels last.
    Image {
        height: usize,
        width: usize,
        channels: usize,
    },
    Vector(usize),
}

impl Shape {
    pub fn image(height: usize, width: usize, channels: usize) -> Self {
        Shape::Image {
            height,
            width,
            channels,
        }
    }

    /// (height, width, channels) of an image shape.
    pub fn as_image(&self) -> Option<(usize, usize, usize)> {
        match *self {
            Shape::Image {
                height,
                width,
                channels,
            } => Some((height, width, channels)),
            Shape::Vector(_) => None,
        }
    }

    /// Values per sample.
    pub fn size(&self) -> usize {
        match *self {
            Shape::Image {
                height,
                width,
                channels,
            } => height * width * channels,
            Shape::Vector(n) => n,
        }
    }
}

/// Keras's way of printing a batch shape: `(None, 180, 180, 3)`.
impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Shape::Image {
                height,
                width,
                channels,
            } => write!(f, "(None, {height}, {width}, {channels})"),
            Shape::Vector(n) => write!(f, "(None, {n})"),
        }
    }
}
