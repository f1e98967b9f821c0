use crate::fsutil::write_atomically;
use crate::{Error, Result};
use image::RgbImage;
use std::path::Path;

/// Encodes `image` as PNG and writes it atomically; returns the PNG's bytes (the tutorial's
/// report embeds them).
pub fn save_png(image: &RgbImage, path: &Path) -> Result<Vec<u8>> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| {
            Error::InvalidArgument(format!("cannot encode {} as PNG: {e}", path.display()))
        })?;
    write_atomically(path, bytes.get_ref())?;
    Ok(bytes.into_inner())
}
