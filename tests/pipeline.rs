//! The dataset pipeline on small generated image folders.

mod common;

use common::{make_dataset, write_image};
use petal::data::{CacheMode, Dataset, ImageDatasetBuilder, Subset};
use std::collections::HashMap;
use std::path::PathBuf;

fn epoch_images(dataset: &Dataset, epoch: usize) -> HashMap<usize, Vec<f32>> {
    let mut seen = HashMap::new();
    for batch in dataset.epoch(epoch) {
        for (k, &i) in batch.indices.iter().enumerate() {
            seen.insert(i, batch.image(k).to_vec());
        }
    }
    seen
}

#[test]
fn batches_have_keras_shapes_and_a_partial_last_batch() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(dir.path(), &["cats", "dogs"], 5);
    let dataset = ImageDatasetBuilder::new(dir.path())
        .image_size(6, 8)
        .batch_size(4)
        .seed(1)
        .build()
        .unwrap();
    assert_eq!(dataset.class_names(), ["cats", "dogs"]);
    let batches: Vec<_> = dataset.epoch(0).collect();
    assert_eq!(
        batches.iter().map(|b| b.len()).collect::<Vec<_>>(),
        [4, 4, 2]
    );
    for batch in &batches {
        assert_eq!((batch.height, batch.width, batch.channels), (6, 8, 3));
        assert_eq!(batch.images.len(), batch.len() * 6 * 8 * 3);
        assert!(batch
            .images
            .iter()
            .all(|&v| (0.0..=255.0).contains(&v) && v.fract() == 0.0));
        for (k, &i) in batch.indices.iter().enumerate() {
            let class = if dataset.files()[i].starts_with("cats") {
                0
            } else {
                1
            };
            assert_eq!(batch.labels[k], class);
        }
    }
}

#[test]
fn epochs_reshuffle_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(dir.path(), &["a", "b"], 10);
    let build = || {
        ImageDatasetBuilder::new(dir.path())
            .seed(7)
            .build()
            .unwrap()
    };
    let (first, second) = (build(), build());
    assert_eq!(first.epoch_order(0), second.epoch_order(0));
    assert_eq!(first.epoch_order(3), second.epoch_order(3));
    assert_ne!(first.epoch_order(0), first.epoch_order(1));
    let unshuffled = ImageDatasetBuilder::new(dir.path())
        .shuffle(false)
        .build()
        .unwrap();
    assert_eq!(unshuffled.epoch_order(5), (0..20).collect::<Vec<_>>());
    assert_eq!(unshuffled.files()[0], PathBuf::from("a/img00.png"));
}

#[test]
fn cached_and_uncached_pixels_agree() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(dir.path(), &["a", "b"], 4);
    let base = ImageDatasetBuilder::new(dir.path())
        .image_size(5, 5)
        .seed(3);
    let uncached = base.clone().build().unwrap();
    let memory = base.clone().cache(CacheMode::Memory).build().unwrap();
    let reference = epoch_images(&uncached, 0);
    assert_eq!(epoch_images(&memory, 0), reference);
    assert_eq!(epoch_images(&memory, 1), reference);
}

#[test]
fn disk_cache_is_reused_across_runs_and_rebuilt_when_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_dataset(&data, &["a", "b"], 3);
    let cache = CacheMode::Disk(dir.path().join("cache/flowers"));
    let builder = ImageDatasetBuilder::new(&data)
        .image_size(4, 4)
        .seed(3)
        .cache(cache);
    let reference = epoch_images(&builder.build().unwrap(), 0);

    // Same size and modification time, different pixels: only the cache can give the old ones.
    let victim = data.join("a/img00.png");
    let modified = std::fs::metadata(&victim).unwrap().modified().unwrap();
    let len = std::fs::metadata(&victim).unwrap().len();
    write_image(&victim, 12, 10, 250);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .unwrap();
    file.set_len(len).unwrap();
    file.set_modified(modified).unwrap();
    drop(file);
    assert_eq!(epoch_images(&builder.build().unwrap(), 0), reference);

    // A new modification time invalidates the cache: the (now truncated) file is reported.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .unwrap();
    file.set_modified(std::time::SystemTime::now()).unwrap();
    drop(file);
    let rebuilt = builder.build().unwrap();
    let images = epoch_images(&rebuilt, 0);
    assert_eq!(images.len() + rebuilt.bad_files().len(), 6);
}

#[test]
fn bad_images_are_skipped_counted_and_reported_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(dir.path(), &["a", "b"], 3);
    std::fs::write(dir.path().join("a/zero.png"), b"").unwrap();
    std::fs::write(dir.path().join("b/fake.jpg"), b"this is text, not a JPEG").unwrap();
    let dataset = ImageDatasetBuilder::new(dir.path())
        .batch_size(3)
        .seed(1)
        .build()
        .unwrap();
    assert_eq!(dataset.len(), 8);
    let total: usize = dataset.epoch(0).map(|b| b.len()).sum();
    assert_eq!(total, 6);
    let mut bad = dataset.bad_files();
    bad.sort();
    assert_eq!(
        bad,
        [dir.path().join("a/zero.png"), dir.path().join("b/fake.jpg")]
    );
    let errors = dataset.verify(&|| {});
    assert_eq!(errors.len(), 2);
    assert!(errors
        .iter()
        .any(|e| e.to_string().contains("zero.png") && e.to_string().contains("empty")));
    // Later epochs skip them silently and still yield the rest.
    assert_eq!(dataset.epoch(1).map(|b| b.len()).sum::<usize>(), 6);
}

#[test]
fn stopping_early_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(dir.path(), &["a"], 20);
    let dataset = ImageDatasetBuilder::new(dir.path())
        .batch_size(1)
        .prefetch(1)
        .seed(2)
        .build()
        .unwrap();
    let mut batches = dataset.epoch(0);
    assert_eq!(batches.next().unwrap().len(), 1);
    drop(batches);
}

#[test]
fn builder_arguments_are_checked_like_keras() {
    let dir = tempfile::tempdir().unwrap();
    make_dataset(dir.path(), &["a", "b"], 5);
    let b = ImageDatasetBuilder::new(dir.path());
    let message = |r: petal::Result<Dataset>| r.err().expect("should be refused").to_string();
    assert!(message(
        b.clone()
            .validation_split(0.2)
            .build_subset(Subset::Training)
    )
    .contains("seed"));
    assert!(message(b.clone().seed(1).build_subset(Subset::Training)).contains("validation_split"));
    assert!(message(
        b.clone()
            .seed(1)
            .validation_split(1.5)
            .build_subset(Subset::Validation)
    )
    .contains("between 0 and 1"));
    assert!(message(b.clone().batch_size(0).build()).contains("batch_size"));
    assert!(message(b.clone().image_size(0, 3).build()).contains("image_size"));
    let (train, val) = b.seed(1).validation_split(0.2).build_both().unwrap();
    assert_eq!((train.len(), val.len()), (8, 2));
    assert_eq!(
        val.epoch_order(0),
        val.epoch_order(1),
        "validation is not reshuffled"
    );
}
