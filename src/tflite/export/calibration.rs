//! Calibration for the int8 form: the float model run on representative images in petal's
//! interpreter, every activation's running minimum and maximum recorded, as TensorFlow's
//! calibrator does with a `representative_dataset`.

use super::graph::Graph;
use super::sequential::build_graph;
use crate::data::{Dataset, ImageU8};
use crate::nn::Sequential;
use crate::tflite::{Interpreter, Tensor, INPUT_NAME};
use crate::{Error, Result};
use rayon::prelude::*;

/// The range every activation of a model's float graph took over the calibration images.
#[derive(Debug, Clone)]
pub struct ActivationRanges {
    /// By tensor index of the float graph; `None` for constants.
    ranges: Vec<Option<(f32, f32)>>,
    /// The float graph's tensor shapes, to tell its model from another.
    shapes: Vec<Option<Vec<i32>>>,
    images: usize,
}

impl ActivationRanges {
    pub(super) fn get(&self, tensor: usize) -> Option<(f32, f32)> {
        self.ranges.get(tensor).copied().flatten()
    }

    /// How many images the ranges were observed over.
    pub fn images(&self) -> usize {
        self.images
    }

    pub(super) fn covers(&self, g: &Graph) -> bool {
        self.shapes.iter().eq(g.tensors.iter().map(|t| &t.shape))
    }
}

/// Runs a model's float graph on calibration images and records its activations' ranges.
pub struct Calibrator {
    interpreter: Interpreter,
    ranges: Vec<Option<(f32, f32)>>,
    names: Vec<String>,
    shapes: Vec<Option<Vec<i32>>>,
    image_shape: [usize; 3],
    images: usize,
}

impl Calibrator {
    pub fn new(model: &Sequential) -> Result<Self> {
        let graph = build_graph(model).map_err(|reason| Error::TfLite {
            origin: "TFLite calibration".into(),
            reason,
        })?;
        let ranges = graph
            .tensors
            .iter()
            .map(|t| (t.buffer == 0).then_some((f32::INFINITY, f32::NEG_INFINITY)))
            .collect();
        let names = (0..graph.tensors.len() as i32)
            .map(|t| graph.name(t).to_owned())
            .collect();
        let shapes = graph.tensors.iter().map(|t| t.shape.clone()).collect();
        let mut interpreter = Interpreter::from_bytes(&graph.serialise(), "the float model")?;
        interpreter.preserve_all_tensors(true);
        let (height, width, channels) = model.image_input()?;
        Ok(Self {
            interpreter,
            ranges,
            names,
            shapes,
            image_shape: [height, width, channels],
            images: 0,
        })
    }

    /// Height, width and channels of the images [`Calibrator::observe`] takes.
    pub fn image_shape(&self) -> [usize; 3] {
        self.image_shape
    }

    /// Runs a batch of images (NHWC float32 pixels, as the model takes them) and widens every
    /// activation's range to their values.
    pub fn observe(&mut self, pixels: &[f32]) -> Result<()> {
        let per_image: usize = self.image_shape.iter().product();
        if pixels.is_empty() || !pixels.len().is_multiple_of(per_image) {
            return Err(Error::InvalidArgument(format!(
                "calibration images must be {:?} each; got {} values",
                self.image_shape,
                pixels.len()
            )));
        }
        let n = pixels.len() / per_image;
        let [h, w, c] = self.image_shape;
        let batch = Tensor::f32(vec![n, h, w, c], pixels.to_vec());
        self.interpreter
            .signature_runner(super::SIGNATURE_KEY)?
            .run(&[(INPUT_NAME, &batch)])?;
        for (index, range) in self.ranges.iter_mut().enumerate() {
            let (Some((lo, hi)), Some(values)) = (
                range.as_mut(),
                self.interpreter.tensor(index).and_then(Tensor::as_f32),
            ) else {
                continue;
            };
            for &v in values {
                *lo = lo.min(v);
                *hi = hi.max(v);
            }
        }
        self.images += n;
        Ok(())
    }

    /// The ranges seen; an error if no image was observed or an activation was not finite.
    pub fn finish(self) -> Result<ActivationRanges> {
        if self.images == 0 {
            return Err(Error::InvalidArgument(
                "calibration needs at least one image".into(),
            ));
        }
        let blown = self
            .ranges
            .iter()
            .position(|r| r.is_some_and(|(lo, hi)| !lo.is_finite() || !hi.is_finite()));
        if let Some(index) = blown {
            let name = &self.names[index];
            return Err(Error::Model(format!(
                "activation \"{name}\" was not finite on the calibration images: the model overflows float32 and cannot be quantized"
            )));
        }
        Ok(ActivationRanges {
            ranges: self.ranges,
            shapes: self.shapes,
            images: self.images,
        })
    }
}

/// Images decoded and run together: enough to keep both cores busy, few enough that every
/// preserved activation of the batch stays small.
const CALIBRATION_BATCH: usize = 16;

/// Calibrates `model` on the first `count` usable images of `dataset` (its seeded order, so the
/// same images every time), calling `on_image` after each. Unusable files are skipped with a
/// warning; fewer images than asked give ranges over those there are
/// ([`ActivationRanges::images`] says how many), none at all an error.
pub fn calibrate(
    model: &Sequential,
    dataset: &Dataset,
    count: usize,
    on_image: &mut dyn FnMut(),
) -> Result<ActivationRanges> {
    let mut calibrator = Calibrator::new(model)?;
    let [h, w, c] = calibrator.image_shape();
    if dataset.image_shape() != (h, w, c) {
        return Err(Error::InvalidArgument(format!(
            "the calibration images are {:?} (height, width, channels) but the model takes ({h}, {w}, {c})",
            dataset.image_shape()
        )));
    }
    let mut next = 0;
    while calibrator.images < count && next < dataset.len() {
        let wanted = (count - calibrator.images).min(CALIBRATION_BATCH);
        let end = (next + wanted).min(dataset.len());
        let images: Vec<ImageU8> = (next..end)
            .into_par_iter()
            .filter_map(|i| dataset.image(i))
            .collect();
        next = end;
        if images.is_empty() {
            continue;
        }
        let pixels: Vec<f32> = images
            .iter()
            .flat_map(|image| image.pixels.iter().map(|&p| f32::from(p)))
            .collect();
        calibrator.observe(&pixels)?;
        images.iter().for_each(|_| on_image());
    }
    if calibrator.images == 0 {
        return Err(Error::InvalidArgument(format!(
            "no usable calibration image among the {} files of {}: the warnings above say why; calibrate on the kind of images the model was trained on",
            dataset.len(),
            dataset.directory().display()
        )));
    }
    calibrator.finish()
}
