//! `model.fit` and `model.evaluate`: epochs over a dataset with Adam or SGD, Keras's metrics per
//! epoch, a clean stop on Ctrl-C or a NaN loss that keeps the last finished epoch's weights.

use super::layers::Mode;
use super::loss::{sparse_categorical_crossentropy, BatchScore};
use super::model::Sequential;
use super::optim::Optimizer;
use super::shape::Shape;
use crate::data::{ColorMode, Dataset};
use crate::{Error, Result};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// One epoch's figures, as Keras prints them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpochLog {
    /// Counted from 1.
    pub epoch: usize,
    pub loss: f64,
    pub accuracy: f64,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub seconds: f64,
    /// Training images per second (validation excluded).
    pub images_per_second: f64,
}

/// Keras's `History.history`, one entry per finished epoch.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct History {
    pub epochs: Vec<EpochLog>,
}

/// Why `fit` returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    Finished,
    /// Ctrl-C: the unfinished epoch was discarded.
    Interrupted,
    /// The loss became NaN or infinite in this epoch (counted from 1) and batch; the weights are
    /// the last finished epoch's.
    NotFinite {
        epoch: usize,
        batch: usize,
    },
}

/// Hooks for progress display.
pub trait FitObserver {
    fn epoch_started(&mut self, _epoch: usize, _epochs: usize, _batches: usize) {}
    fn batch_finished(&mut self, _batch: usize, _running: &BatchScore) {}
    fn epoch_finished(&mut self, _log: &EpochLog) {}
}

/// An observer that shows nothing.
pub struct Silent;
impl FitObserver for Silent {}

fn check_fit(model: &Sequential, dataset: &Dataset) -> Result<usize> {
    let (h, w, c) = dataset.image_shape();
    if model.input_shape() != Shape::image(h, w, c) {
        let fix = match model.image_input() {
            Ok((mh, mw, mc)) if (mh, mw) == (h, w) => format!(
                "use --color-mode {} to match",
                ColorMode::from_channels(mc).name()
            ),
            Ok((mh, mw, _)) => format!("use --image-size {mh}x{mw} to match"),
            Err(_) => "the model does not take images".into(),
        };
        return Err(Error::Model(format!(
            "the model takes {} images but the dataset yields (None, {h}, {w}, {c}): {fix}",
            model.input_shape()
        )));
    }
    let classes = dataset.class_names().len();
    match model.output_shape() {
        Shape::Vector(units) if units == classes => Ok(classes),
        shape => Err(Error::Model(format!(
            "the model outputs {shape} but the dataset has {classes} classes: its last layer needs {classes} units"
        ))),
    }
}

/// Trains `model` for `epochs`, validating after each when `validation` is given.
pub fn fit(
    model: &mut Sequential,
    optimizer: &mut Optimizer,
    train: &Dataset,
    validation: Option<&Dataset>,
    epochs: usize,
    observer: &mut dyn FitObserver,
    interrupt: &AtomicBool,
) -> Result<(History, Stop)> {
    let classes = check_fit(model, train)?;
    if let Some(val) = validation {
        check_fit(model, val)?;
    }
    model.check_memory(train.batch_size())?;
    if !weights_finite(model) {
        return Err(Error::Model(
            "the model's weights are not all finite numbers (NaN or infinite): training cannot recover them; start from a fresh model".into(),
        ));
    }
    let from_logits = !model.outputs_probabilities();
    let mut grad = vec![0f32; train.batch_size() * classes];
    let mut history = History::default();
    for epoch in 0..epochs {
        let snapshot: Vec<Vec<f32>> = model.params_mut().iter().map(|p| p.value.clone()).collect();
        let restore = |model: &mut Sequential| {
            for (p, saved) in model.params_mut().into_iter().zip(&snapshot) {
                p.value.copy_from_slice(saved);
            }
        };
        observer.epoch_started(epoch + 1, epochs, train.num_batches());
        let start = Instant::now();
        let mut running = BatchScore::default();
        for (b, batch) in train.epoch(epoch).enumerate() {
            if interrupt.load(Ordering::Relaxed) {
                restore(model);
                return Ok((history, Stop::Interrupted));
            }
            let n = batch.len();
            let outputs = model.forward(&batch.images, n, Mode::Train);
            let score = sparse_categorical_crossentropy(
                outputs,
                &batch.labels,
                classes,
                from_logits,
                Some(&mut grad),
            );
            if !score.loss_sum.is_finite() {
                restore(model);
                return Ok((
                    history,
                    Stop::NotFinite {
                        epoch: epoch + 1,
                        batch: b + 1,
                    },
                ));
            }
            model.backward(&batch.images, &grad[..n * classes], n);
            optimizer.apply(model.params_mut());
            running += score;
            observer.batch_finished(b + 1, &running);
        }
        if running.count == 0 {
            return Err(no_usable_images(train, "training"));
        }
        // A ReLU network can keep a finite loss while NaN fills weights its units no longer
        // use: check them, so that the weights kept are truly the last good ones.
        if !weights_finite(model) {
            restore(model);
            let batch = train.num_batches();
            return Ok((
                history,
                Stop::NotFinite {
                    epoch: epoch + 1,
                    batch,
                },
            ));
        }
        let train_seconds = start.elapsed().as_secs_f64();
        let val = validation.map(|v| evaluate(model, v)).transpose()?;
        let log = EpochLog {
            epoch: epoch + 1,
            loss: running.loss(),
            accuracy: running.accuracy(),
            val_loss: val.as_ref().map(|e| e.loss),
            val_accuracy: val.as_ref().map(|e| e.accuracy),
            seconds: start.elapsed().as_secs_f64(),
            images_per_second: running.count as f64 / train_seconds,
        };
        observer.epoch_finished(&log);
        history.epochs.push(log);
    }
    Ok((history, Stop::Finished))
}

fn weights_finite(model: &Sequential) -> bool {
    let params = model.named_params();
    params
        .iter()
        .all(|(_, p)| p.value.iter().all(|v| v.is_finite()))
}

/// Loss, accuracy and the confusion matrix of a model on a dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// The images that could be decoded and were scored.
    pub images: usize,
    pub loss: f64,
    pub accuracy: f64,
    pub class_names: Vec<String>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

impl Evaluation {
    /// Of the images predicted as class `c`, the share that are `c`.
    pub fn precision(&self, c: usize) -> f64 {
        let predicted: usize = self.confusion.iter().map(|row| row[c]).sum();
        self.confusion[c][c] as f64 / predicted.max(1) as f64
    }

    /// Of the images of class `c`, the share predicted as `c`.
    pub fn recall(&self, c: usize) -> f64 {
        let actual: usize = self.confusion[c].iter().sum();
        self.confusion[c][c] as f64 / actual.max(1) as f64
    }
}

pub fn evaluate(model: &mut Sequential, dataset: &Dataset) -> Result<Evaluation> {
    let classes = check_fit(model, dataset)?;
    model.check_memory(dataset.batch_size())?;
    let from_logits = !model.outputs_probabilities();
    let mut total = BatchScore::default();
    let mut confusion = vec![vec![0usize; classes]; classes];
    for batch in dataset.epoch(0) {
        let outputs = model.forward(&batch.images, batch.len(), Mode::Infer);
        total +=
            sparse_categorical_crossentropy(outputs, &batch.labels, classes, from_logits, None);
        for (row, &label) in outputs.chunks_exact(classes).zip(&batch.labels) {
            confusion[label as usize][argmax(row)] += 1;
        }
    }
    if total.count == 0 {
        return Err(no_usable_images(dataset, "evaluated"));
    }
    Ok(Evaluation {
        images: total.count,
        loss: total.loss(),
        accuracy: total.accuracy(),
        class_names: dataset.class_names().to_vec(),
        confusion,
    })
}

/// Every image of `dataset` failed to decode: training or scoring on nothing is an error.
fn no_usable_images(dataset: &Dataset, what: &str) -> Error {
    let example = dataset
        .bad_files()
        .first()
        .map(|p| format!(" (such as {})", p.display()))
        .unwrap_or_default();
    Error::InvalidArgument(format!(
        "none of the {} {what} images could be used{example}: the warnings above say why; fix or replace them, or raise --max-pixels if they are too large",
        dataset.len()
    ))
}

pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{CacheMode, ImageDatasetBuilder};
    use crate::nn::model::ModelConfig;
    use crate::nn::optim::OptimizerConfig;

    #[test]
    fn weights_that_overflow_are_never_kept() {
        let dir = tempfile::tempdir().unwrap();
        for (class, shade) in [("a", 40u8), ("b", 200)] {
            std::fs::create_dir_all(dir.path().join(class)).unwrap();
            for i in 0..6u8 {
                let img = image::RgbImage::from_pixel(8, 8, image::Rgb([shade + i, 9, 9]));
                img.save(dir.path().join(class).join(format!("{i}.png")))
                    .unwrap();
            }
        }
        let data = ImageDatasetBuilder::new(dir.path())
            .image_size(8, 8)
            .batch_size(4)
            .seed(1)
            .cache(CacheMode::Memory)
            .build()
            .unwrap();
        let config = ModelConfig::from_json(
            r#"{"input_shape": [8, 8, 3], "layers": [{"type": "Flatten"},
                {"type": "Dense", "units": 16, "activation": "relu"}, {"type": "Dense", "units": 2}]}"#,
        )
        .unwrap();
        let mut model = Sequential::new(&config, 3).unwrap();
        // Past what `with_learning_rate` accepts: the weights overflow within an epoch.
        let absurd = OptimizerConfig::Sgd {
            learning_rate: 1e30,
            momentum: 0.0,
        };
        let never = AtomicBool::new(false);
        let train = |model: &mut Sequential, optimizer: OptimizerConfig, epochs: usize| {
            let mut optimizer = Optimizer::new(optimizer);
            fit(
                model,
                &mut optimizer,
                &data,
                None,
                epochs,
                &mut Silent,
                &never,
            )
        };
        let (history, stop) = train(&mut model, absurd, 3).unwrap();
        assert!(matches!(stop, Stop::NotFinite { .. }), "{stop:?}");
        let kept = history.epochs.len();
        assert!(
            weights_finite(&model),
            "non-finite weights kept after {kept} epochs"
        );

        // Weights already broken (a unit's NaN that ReLU hides from the loss) are refused, not
        // trained on and saved again.
        model.params_mut()[0].value[5] = f32::NAN;
        let err = train(&mut model, OptimizerConfig::sgd(), 1);
        assert!(err.is_err_and(|e| e.to_string().contains("not all finite")));
    }
}
