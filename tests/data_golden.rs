//! petal against what Keras and TensorFlow produce on the tutorial's flower photos.

mod common;

use common::{flowers, golden_dir, golden_split};
use petal::data::decode::{decode_file, DEFAULT_MAX_PIXELS};
use petal::data::resize::{resize, Window};
use petal::data::{ColorMode, ImageDatasetBuilder, Interpolation, Subset};

fn as_strings(files: &[std::path::PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn split_matches_keras_for_several_seeds_and_fractions() {
    let Some(dir) = flowers() else { return };
    for (seed, split) in [(123, "0.2"), (42, "0.1"), (7, "0.35")] {
        let (keras_training, keras_validation) = golden_split(seed, split);
        let builder = ImageDatasetBuilder::new(&dir)
            .seed(seed)
            .validation_split(split.parse().unwrap());
        let index = builder.index().unwrap();
        assert_eq!(index.len(), 3670);
        let training = builder.samples(&index, Some(Subset::Training)).unwrap();
        let validation = builder.samples(&index, Some(Subset::Validation)).unwrap();
        assert_eq!(
            as_strings(&training.files),
            keras_training,
            "seed {seed} split {split}"
        );
        assert_eq!(
            as_strings(&validation.files),
            keras_validation,
            "seed {seed} split {split}"
        );
        // Labels travel with their files.
        for (file, &label) in validation.files.iter().zip(&validation.labels) {
            let class = file.iter().next().unwrap().to_str().unwrap();
            assert_eq!(index.class_names[label as usize], class);
        }
    }
}

#[test]
fn both_subsets_are_the_keras_lists() {
    let Some(flowers) = flowers() else { return };
    let (keras_training, keras_validation) = golden_split(123, "0.2");
    let (training, validation) = ImageDatasetBuilder::new(flowers)
        .seed(123)
        .validation_split(0.2)
        .build_both()
        .unwrap();
    assert_eq!(as_strings(training.files()), keras_training);
    assert_eq!(as_strings(validation.files()), keras_validation);
    assert_eq!(training.num_batches(), 92);
    assert_eq!(validation.num_batches(), 23);
}

/// Golden PNGs hold TensorFlow's float pixels rounded to 8 bits, so petal's 8-bit pixels should
/// equal them, but for values within float rounding of a half.
#[test]
fn pixels_match_tensorflow() {
    let Some(dir) = flowers() else { return };
    let mut checked = 0;
    for entry in std::fs::read_dir(golden_dir().join("tf_pixels")).unwrap() {
        let golden_path = entry.unwrap().path();
        let name = golden_path
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let parts: Vec<&str> = name.split("__").collect();
        let source = dir.join(parts[0]).join(format!("{}.jpg", parts[1]));
        let interpolation: Interpolation = parts[2].parse().unwrap();
        let crop = parts.get(3) == Some(&"crop");

        let decoded = decode_file(&source, ColorMode::Rgb, DEFAULT_MAX_PIXELS).unwrap();
        let window = if crop {
            Window::centre_crop(decoded.width, decoded.height, 180, 180)
        } else {
            Window::whole(&decoded)
        };
        let ours = resize(&decoded, window, 180, 180, interpolation);
        let golden = image::open(&golden_path).unwrap().to_rgb8().into_raw();
        assert_eq!(ours.pixels.len(), golden.len());
        let diffs: Vec<i32> = ours
            .pixels
            .iter()
            .zip(&golden)
            .map(|(&a, &b)| (a as i32 - b as i32).abs())
            .collect();
        let worst = *diffs.iter().max().unwrap();
        let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
        assert!(
            worst <= 1 && mean < 0.01,
            "{name}: max {worst}, mean {mean}"
        );
        checked += 1;
    }
    assert_eq!(checked, 7);
}
