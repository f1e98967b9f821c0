//! The tutorial's augmentation preview: one image through a model's augmentation layers,
//! several times over.

use crate::data::ImageU8;
use crate::nn::{Mode, ModelConfig, Sequential};
use crate::{Error, Result};

/// `count` independent draws of the augmentation layers at the front of `model` applied to
/// `image`; `seed` seeds layers that have no seed of their own.
pub fn augmentation_previews(
    image: &ImageU8,
    model: &ModelConfig,
    count: usize,
    seed: u32,
) -> Result<Vec<ImageU8>> {
    let layers: Vec<_> = model
        .layers
        .iter()
        .take_while(|l| l.is_augmentation())
        .cloned()
        .collect();
    if layers.is_empty() {
        return Err(Error::InvalidArgument(
            "the model has no augmentation layers at its front (RandomFlip, RandomRotation, RandomZoom…): use --preset tutorial-augmented or a model description that starts with them".into(),
        ));
    }
    let config = ModelConfig {
        input_shape: [image.height, image.width, image.channels],
        layers,
    };
    let mut augmentation = Sequential::new(&config, seed)?;
    let batch: Vec<f32> = (0..count)
        .flat_map(|_| image.pixels.iter().map(|&v| f32::from(v)))
        .collect();
    let out = augmentation.forward(&batch, count, Mode::Train);
    Ok(out
        .chunks_exact(image.pixels.len())
        .map(|values| {
            let pixels = values
                .iter()
                .map(|v| v.round().clamp(0.0, 255.0) as u8)
                .collect();
            ImageU8::new(image.width, image.height, image.channels, pixels)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::presets;

    #[test]
    fn previews_differ_from_each_other_and_keep_the_size() {
        let pixels = (0..20 * 16 * 3).map(|v| (v * 7 % 256) as u8).collect();
        let image = ImageU8::new(20, 16, 3, pixels);
        let model = presets::preset("tutorial-augmented", 180, 180, 5).unwrap();
        let previews = augmentation_previews(&image, &model, 4, 1).unwrap();
        assert_eq!(previews.len(), 4);
        assert!(previews
            .iter()
            .all(|p| p.pixels.len() == image.pixels.len()));
        assert!(previews.windows(2).any(|w| w[0].pixels != w[1].pixels));
        let plain = presets::preset("tutorial", 180, 180, 5).unwrap();
        let err = augmentation_previews(&image, &plain, 4, 1).unwrap_err();
        assert!(err.to_string().contains("no augmentation layers"), "{err}");
    }
}
