//! Keras's random augmentation layers (RandomFlip, RandomRotation, RandomZoom,
//! RandomTranslation, RandomContrast, RandomBrightness). In training each draws fresh
//! parameters for every image; at inference each is the identity.
//!
//! A run of consecutive geometric layers composes into one affine map per image and resamples
//! the image once (see [`augment_batch`]), instead of once per layer.

mod affine;
mod factor;
mod random_brightness;
mod random_contrast;
mod random_flip;
mod random_rotation;
mod random_translation;
mod random_zoom;
mod resample;

pub use affine::Affine;
pub use random_brightness::Brightness;
pub use random_contrast::Contrast;
pub use random_flip::Flip;
pub use random_rotation::Rotation;
pub use random_translation::Translation;
pub use random_zoom::Zoom;
pub use resample::{affine_transform, ImageSize, Sampling};

use super::{Layer, LayerConfig, Mode};
use crate::data::numpy_rng::RandomState;
use crate::nn::shape::Shape;
use rayon::prelude::*;

/// One image's draw of one augmentation layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transform {
    /// Moves pixels: output pixel p shows the input at `map(p)`. `sampling` is `None` when
    /// every map lands on pixel centres inside the image (flips), so any sampling will do.
    Geometric {
        map: Affine,
        sampling: Option<Sampling>,
    },
    /// Changes values: `clamp(x · scale + channel_mean · mean_weight + shift, range)`.
    Values {
        scale: f32,
        mean_weight: f32,
        shift: f32,
        range: [f32; 2],
    },
}

/// What one augmentation layer draws and how it describes itself.
pub trait Augmentation: Send {
    fn config(&self, name: String, seed: Option<u32>) -> LayerConfig;
    fn draw(&self, rng: &mut RandomState, size: ImageSize) -> Transform;
}

/// A Keras random augmentation layer: an [`Augmentation`] with its own seeded generator.
pub struct RandomLayer<A> {
    name: String,
    size: ImageSize,
    seed: Option<u32>,
    rng: RandomState,
    augmentation: A,
}

impl<A: Augmentation> RandomLayer<A> {
    /// Builds the layer for image input; `fallback_seed` seeds it when the config has no seed.
    pub fn new(
        name: String,
        input: Shape,
        augmentation: A,
        seed: Option<u32>,
        fallback_seed: u32,
    ) -> Result<Self, String> {
        let Shape::Image {
            height,
            width,
            channels,
        } = input
        else {
            return Err(format!(
                "augmentation needs image input (height, width, channels), got {input}"
            ));
        };
        Ok(RandomLayer {
            name,
            size: ImageSize {
                height,
                width,
                channels,
            },
            seed,
            rng: RandomState::new(seed.unwrap_or(fallback_seed)),
            augmentation,
        })
    }
}

impl<A: Augmentation> Layer for RandomLayer<A> {
    fn name(&self) -> &str {
        &self.name
    }

    fn config(&self) -> LayerConfig {
        self.augmentation.config(self.name.clone(), self.seed)
    }

    fn output_shape(&self) -> Shape {
        Shape::image(self.size.height, self.size.width, self.size.channels)
    }

    fn forward(&mut self, x: &[f32], y: &mut [f32], batch: usize, mode: Mode) {
        match mode {
            Mode::Train => {
                let draws: Vec<Vec<Transform>> = (0..batch)
                    .map(|_| vec![self.augmentation.draw(&mut self.rng, self.size)])
                    .collect();
                augment_batch(&draws, self.size, x, y)
            }
            Mode::Infer => {
                let n = batch * self.size.values();
                y[..n].copy_from_slice(&x[..n]);
            }
        }
    }

    /// Never called: Sequential admits augmentation only before the first layer with weights,
    /// so no gradient flows back to it.
    fn backward(&mut self, _: &[f32], _: &[f32], _: &mut [f32], _: Option<&mut [f32]>, _: usize) {}

    fn draw_transform(&mut self) -> Option<Transform> {
        Some(self.augmentation.draw(&mut self.rng, self.size))
    }
}

/// Applies to each image of `x` its draws (one per layer of a run of augmentation layers, in
/// layer order), consecutive geometric ones that sample alike fused into one resampling pass.
/// The draws are made beforehand, on one thread, so a seed fixes the result whatever the
/// number of threads.
pub fn augment_batch(draws: &[Vec<Transform>], size: ImageSize, x: &[f32], y: &mut [f32]) {
    let batch = draws.len();
    let n = size.values();
    y[..batch * n]
        .par_chunks_mut(n)
        .zip(x[..batch * n].par_chunks(n))
        .zip(draws.par_iter())
        .for_each_init(
            || vec![0.0; n],
            |scratch, ((out, image), transforms)| {
                apply(&fuse(transforms), image, out, scratch, size);
            },
        );
}

/// Merges consecutive geometric transforms that sample alike into one map.
fn fuse(transforms: &[Transform]) -> Vec<Transform> {
    let mut stages: Vec<Transform> = Vec::with_capacity(transforms.len());
    for t in transforms {
        if let (
            Some(Transform::Geometric {
                map: outer,
                sampling: a,
            }),
            Transform::Geometric {
                map: inner,
                sampling: b,
            },
        ) = (stages.last_mut(), t)
        {
            if a.is_none() || b.is_none() || a == b {
                *outer = outer.after(inner);
                *a = a.or(*b);
                continue;
            }
        }
        stages.push(*t);
    }
    stages
}

fn apply(
    stages: &[Transform],
    image: &[f32],
    out: &mut [f32],
    scratch: &mut [f32],
    size: ImageSize,
) {
    out.copy_from_slice(image);
    for stage in stages {
        match *stage {
            Transform::Geometric { map, .. } if map.is_identity() => {}
            Transform::Geometric { map, sampling } => {
                scratch.copy_from_slice(out);
                let sampling = sampling.unwrap_or(Sampling::EXACT);
                affine_transform(scratch, out, size, &map, &sampling);
            }
            Transform::Values {
                scale,
                mean_weight,
                shift,
                range: [low, high],
            } => {
                let means = if mean_weight == 0.0 {
                    vec![0.0; size.channels]
                } else {
                    channel_means(out, size.channels)
                };
                for pixel in out.chunks_exact_mut(size.channels) {
                    for (v, mean) in pixel.iter_mut().zip(&means) {
                        *v = (*v * scale + mean * mean_weight + shift).clamp(low, high);
                    }
                }
            }
        }
    }
}

fn channel_means(image: &[f32], channels: usize) -> Vec<f32> {
    let mut sums = vec![0.0f64; channels];
    for pixel in image.chunks_exact(channels) {
        for (s, &v) in sums.iter_mut().zip(pixel) {
            *s += f64::from(v);
        }
    }
    let pixels = (image.len() / channels).max(1) as f64;
    sums.iter().map(|s| (s / pixels) as f32).collect()
}
