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

use super::{Build, Layer, LayerConfig, Mode};
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
pub struct RandomLayer {
    name: String,
    size: ImageSize,
    seed: Option<u32>,
    rng: RandomState,
    augmentation: Box<dyn Augmentation>,
}

impl RandomLayer {
    /// Any of Keras's random augmentation layers, from its config.
    pub(crate) fn from_config(config: &LayerConfig, b: Build) -> Result<Self, String> {
        let sampling = |fill_mode, fill_value, interpolation| Sampling {
            fill_mode,
            fill_value,
            interpolation,
        };
        let (augmentation, seed): (Box<dyn Augmentation>, _) = match *config {
            LayerConfig::RandomFlip { mode, seed, .. } => (Box::new(Flip { mode }), seed),
            LayerConfig::RandomRotation {
                factor,
                fill_mode,
                interpolation,
                fill_value,
                seed,
                ..
            } => {
                let sampling = sampling(fill_mode, fill_value, interpolation);
                (Box::new(Rotation::new(factor, sampling)?), seed)
            }
            LayerConfig::RandomZoom {
                height_factor,
                width_factor,
                fill_mode,
                interpolation,
                fill_value,
                seed,
                ..
            } => {
                let sampling = sampling(fill_mode, fill_value, interpolation);
                let zoom = Zoom::new(height_factor, width_factor, sampling)?;
                (Box::new(zoom), seed)
            }
            LayerConfig::RandomTranslation {
                height_factor,
                width_factor,
                fill_mode,
                interpolation,
                fill_value,
                seed,
                ..
            } => {
                let sampling = sampling(fill_mode, fill_value, interpolation);
                let translation = Translation::new(height_factor, width_factor, sampling)?;
                (Box::new(translation), seed)
            }
            LayerConfig::RandomContrast {
                factor,
                value_range,
                seed,
                ..
            } => (Box::new(Contrast::new(factor, value_range)?), seed),
            LayerConfig::RandomBrightness {
                factor,
                value_range,
                seed,
                ..
            } => (Box::new(Brightness::new(factor, value_range)?), seed),
            _ => return Err(Build::not_for("random augmentation", config)),
        };
        RandomLayer::new(b.name, b.input, augmentation, seed, b.seed)
    }

    /// Builds the layer for image input; `fallback_seed` seeds it when the config has no seed.
    pub fn new(
        name: String,
        input: Shape,
        augmentation: Box<dyn Augmentation>,
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

    /// One image's transform, so that a run of augmentation layers is applied in one pass.
    pub(crate) fn draw_transform(&mut self) -> Transform {
        self.augmentation.draw(&mut self.rng, self.size)
    }
}

impl Layer for RandomLayer {
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
        .for_each_init(Vec::new, |scratch, ((out, image), transforms)| {
            apply(&fuse(transforms), image, out, scratch, size);
        });
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

/// Runs `image` through `stages` into `out`; `scratch` holds an intermediate image when a
/// resampling follows another stage.
fn apply(
    stages: &[Transform],
    image: &[f32],
    out: &mut [f32],
    scratch: &mut Vec<f32>,
    size: ImageSize,
) {
    let mut started = false;
    for stage in stages {
        match *stage {
            Transform::Geometric { map, .. } if map.is_identity() => {}
            Transform::Geometric { map, sampling } => {
                let source: &[f32] = match started {
                    true => {
                        scratch.clear();
                        scratch.extend_from_slice(out);
                        scratch
                    }
                    false => image,
                };
                let sampling = sampling.unwrap_or(Sampling::EXACT);
                affine_transform(source, out, size, &map, &sampling);
                started = true;
            }
            Transform::Values {
                scale,
                mean_weight,
                shift,
                range: [low, high],
            } => {
                if !started {
                    out.copy_from_slice(image);
                    started = true;
                }
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
    if !started {
        out.copy_from_slice(image);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ModelConfig;
    use crate::nn::Sequential;

    fn model(layers: &str, shape: [usize; 3]) -> Sequential {
        let json = format!(r#"{{"input_shape": {shape:?}, "layers": [{layers}]}}"#);
        Sequential::new(&ModelConfig::from_json(&json).unwrap(), 5).unwrap()
    }

    fn ramp(n: usize) -> Vec<f32> {
        (0..n).map(|v| v as f32).collect()
    }

    /// A 2×3 one-channel image [[0 1 2] [3 4 5]], `batch` times.
    fn small_batch(batch: usize) -> Vec<f32> {
        (0..batch).flat_map(|_| ramp(6)).collect()
    }

    fn images(values: &[f32], n: usize) -> Vec<Vec<f32>> {
        values.chunks(n).map(<[f32]>::to_vec).collect()
    }

    #[test]
    fn flips_are_exact_and_happen_about_half_the_time() {
        let horizontal = [2.0, 1.0, 0.0, 5.0, 4.0, 3.0];
        let vertical = [3.0, 4.0, 5.0, 0.0, 1.0, 2.0];
        let both = [5.0, 4.0, 3.0, 2.0, 1.0, 0.0];
        for (mode, flipped) in [
            ("horizontal", horizontal),
            ("vertical", vertical),
            ("horizontal_and_vertical", both),
        ] {
            let mut m = model(
                &format!(r#"{{"type": "RandomFlip", "mode": "{mode}"}}"#),
                [2, 3, 1],
            );
            let out = images(m.forward(&small_batch(200), 200, Mode::Train), 6);
            let flips = out.iter().filter(|o| o[..] == flipped).count();
            let kept = out.iter().filter(|o| o[..] == ramp(6)[..]).count();
            assert_eq!(flips + kept, 200, "{mode}: only exact flips or copies");
            assert!(
                (70..=130).contains(&flips),
                "{mode}: {flips} of 200 flipped"
            );
        }
    }

    #[test]
    fn rotation_by_a_quarter_turn_with_pinned_factor() {
        // factor (0.25, 0.25): exactly 90°. Square image: a pure permutation of the pixels.
        let mut m = model(
            r#"{"type": "RandomRotation", "factor": [0.25, 0.25], "interpolation": "nearest"}"#,
            [3, 3, 1],
        );
        let out = m.forward(&ramp(9), 1, Mode::Train).to_vec();
        // Output (x, y) reads input (cx - (y - cy), cy + (x - cx)) = (2 - y, x).
        assert_eq!(out, [2.0, 5.0, 8.0, 1.0, 4.0, 7.0, 0.0, 3.0, 6.0]);
    }

    #[test]
    fn zooming_out_a_checkerboard_doubles_its_frequency() {
        // 8×8 board of 2×2 squares; zoom factor 1 (height_factor 1.0) halves everything.
        let board: Vec<f32> = (0..64)
            .map(|i| (((i / 8) / 2 + (i % 8) / 2) % 2) as f32)
            .collect();
        let mut m = model(
            r#"{"type": "RandomZoom", "height_factor": [1.0, 1.0], "interpolation": "nearest", "fill_mode": "constant", "fill_value": -1}"#,
            [8, 8, 1],
        );
        let out = m.forward(&board, 1, Mode::Train).to_vec();
        // Output x reads input 2x - 3.5: the centre half holds the whole board at 1×1 squares.
        let centre: Vec<f32> = (2..6)
            .flat_map(|y| (2..6).map(move |x| (x, y)))
            .map(|(x, y)| out[y * 8 + x])
            .collect();
        let expected: Vec<f32> = (0..16).map(|i| ((i / 4 + i % 4) % 2) as f32).collect();
        assert_eq!(centre, expected);
        assert_eq!(out[0], -1.0, "beyond the board: the fill value");
    }

    #[test]
    fn same_seed_same_augmentations_and_each_image_its_own() {
        let layers = r#"{"type": "RandomFlip", "seed": 3},
            {"type": "RandomRotation", "factor": 0.2, "seed": 4},
            {"type": "RandomZoom", "height_factor": 0.3, "seed": 5},
            {"type": "RandomContrast", "factor": 0.5, "seed": 6}"#;
        let batch: Vec<f32> = (0..4).flat_map(|_| ramp(48)).collect();
        let mut a = model(layers, [4, 4, 3]);
        let mut b = model(layers, [4, 4, 3]);
        let first = a.forward(&batch, 4, Mode::Train).to_vec();
        assert_eq!(first, b.forward(&batch, 4, Mode::Train));
        let per_image = images(&first, 48);
        assert!(
            per_image.windows(2).any(|w| w[0] != w[1]),
            "images drew alike"
        );
        assert_ne!(
            first,
            a.forward(&batch, 4, Mode::Train),
            "a new draw per call"
        );
        assert_eq!(
            a.forward(&batch, 4, Mode::Infer),
            &batch[..],
            "identity at inference"
        );
    }

    #[test]
    fn fused_geometric_run_matches_layer_by_layer_inside_the_image() {
        let rotation = r#"{"type": "RandomRotation", "factor": [0.05, 0.05]}"#;
        let zoom = r#"{"type": "RandomZoom", "height_factor": [-0.2, -0.2]}"#;
        let size = 24;
        let smooth: Vec<f32> = (0..size * size)
            .map(|i| ((i / size) as f32 * 0.3).sin() * 50.0 + (i % size) as f32 * 2.0)
            .collect();
        let fused = model(&format!("{rotation}, {zoom}"), [size, size, 1])
            .forward(&smooth, 1, Mode::Train)
            .to_vec();
        let rotated = model(rotation, [size, size, 1])
            .forward(&smooth, 1, Mode::Train)
            .to_vec();
        let image = model(zoom, [size, size, 1])
            .forward(&rotated, 1, Mode::Train)
            .to_vec();
        // Away from the borders only the resampling differs (one pass against two).
        for y in 6..18 {
            for x in 6..18 {
                let (a, b) = (fused[y * size + x], image[y * size + x]);
                assert!(
                    (a - b).abs() < 3.0,
                    "({x}, {y}): fused {a}, layer by layer {b}"
                );
            }
        }
    }

    #[test]
    fn contrast_and_brightness_follow_keras_formulas() {
        // Pinned contrast is not possible with Keras's factor rule, so check the transform.
        let stage = Transform::Values {
            scale: 1.5,
            mean_weight: -0.5,
            shift: 0.0,
            range: [0.0, 255.0],
        };
        let image = [10.0, 200.0, 30.0, 250.0]; // two pixels, two channels: means 20 and 225
        let mut out = [0.0; 4];
        let size = ImageSize {
            height: 1,
            width: 2,
            channels: 2,
        };
        apply(&fuse(&[stage]), &image, &mut out, &mut Vec::new(), size);
        assert_eq!(out, [5.0, 187.5, 35.0, 255.0]); // (x - mean) · 1.5 + mean, clipped
        let mut m = model(
            r#"{"type": "RandomBrightness", "factor": [0.2, 0.2], "value_range": [0, 100]}"#,
            [1, 2, 2],
        );
        assert_eq!(
            m.forward(&image, 1, Mode::Train),
            [30.0, 100.0, 50.0, 100.0]
        );
    }

    #[test]
    fn bad_arguments_name_the_layer_and_the_argument() {
        for (layer, words) in [
            (r#"{"type": "RandomRotation", "factor": 1.5}"#, "`factor`"),
            (
                r#"{"type": "RandomZoom", "height_factor": -1.0}"#,
                "`height_factor`",
            ),
            (
                r#"{"type": "RandomZoom", "height_factor": 0.1, "width_factor": [0.1, 2]}"#,
                "`width_factor`",
            ),
            (
                r#"{"type": "RandomTranslation", "height_factor": 0.1, "width_factor": -1.2}"#,
                "`width_factor`",
            ),
            (r#"{"type": "RandomContrast", "factor": 1.5}"#, "`factor`"),
            (
                r#"{"type": "RandomBrightness", "factor": 0.1, "value_range": [1, 1]}"#,
                "`value_range`",
            ),
            (
                r#"{"type": "RandomRotation", "factor": 0.1, "fill_mode": "mirror"}"#,
                "mirror",
            ),
            (
                r#"{"type": "RandomZoom", "height_factor": 0.1, "interpolation": "bicubic"}"#,
                "bicubic",
            ),
            (r#"{"type": "RandomFlip", "mode": "diagonal"}"#, "diagonal"),
        ] {
            let json = format!(r#"{{"input_shape": [4, 4, 3], "layers": [{layer}]}}"#);
            let err = ModelConfig::from_json(&json)
                .and_then(|c| Sequential::new(&c, 1).map(|_| ()))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("layer 1") && err.contains(words),
                "{layer}: {err}"
            );
        }
    }

    #[test]
    fn augmentation_after_weights_is_refused() {
        let json = r#"{"input_shape": [4, 4, 1], "layers": [
            {"type": "Conv2D", "filters": 2, "kernel_size": 3, "padding": "same"},
            {"type": "RandomFlip"}]}"#;
        let err = Sequential::new(&ModelConfig::from_json(json).unwrap(), 1)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("layer 2") && err.contains("before \"conv2d\""),
            "{err}"
        );
    }
}
