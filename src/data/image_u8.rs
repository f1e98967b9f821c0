/// An 8-bit image, rows of pixels with interleaved channels (height × width × channels).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageU8 {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub pixels: Vec<u8>,
}

impl ImageU8 {
    pub fn new(width: usize, height: usize, channels: usize, pixels: Vec<u8>) -> Self {
        assert_eq!(
            pixels.len(),
            width * height * channels,
            "pixel buffer does not match shape"
        );
        ImageU8 {
            width,
            height,
            channels,
            pixels,
        }
    }
}
