//! The execution plan, worked out once when the model is built: forward runs its steps in
//! order and backward the same steps reversed. A step is one layer, a Conv2D that runs the
//! 2×2 max-pool after it itself, or a run of augmentation layers resampled in one pass.

use crate::nn::layers::augment::RandomLayer;
use crate::nn::layers::{Conv2D, Layer, MaxPooling2D};
use crate::{Error, Result};
use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    Layer(usize),
    /// The Conv2D at `conv` pools its output itself and writes the MaxPooling2D's output
    /// (layer `conv + 1`); the convolution's own output is never stored.
    ConvPool {
        conv: usize,
    },
    /// Augmentation layers applied as one resampling per image (the identity at inference);
    /// only the last one's output is written.
    Augment(Range<usize>),
}

impl Step {
    /// The layers the step runs.
    pub fn layers(&self) -> Range<usize> {
        match self {
            Step::Layer(i) => *i..*i + 1,
            Step::ConvPool { conv } => *conv..*conv + 2,
            Step::Augment(run) => run.clone(),
        }
    }

    /// The step's first layer: its input is the previous layer's output (or the model's).
    pub fn first(&self) -> usize {
        self.layers().start
    }

    /// The layer whose output the step writes.
    pub fn last(&self) -> usize {
        self.layers().end - 1
    }
}

/// The steps over `layers`, with Conv2D + MaxPooling2D pairs fused when `fuse_pools` and the
/// convolution can (see [`Conv2D::pools_2x2`]). Augmentation must come before the first layer
/// with weights: petal does not back-propagate through it.
pub(super) fn plan(layers: &[Box<dyn Layer>], fuse_pools: bool) -> Result<Vec<Step>> {
    let augments = |i: usize| layers[i].config().is_augmentation();
    let first_weighted = layers.iter().position(|l| !l.params().is_empty());
    if let Some(w) = first_weighted {
        if let Some(late) = (w + 1..layers.len()).rev().find(|&j| augments(j)) {
            return Err(Error::Model(format!(
                "layer {} ({} \"{}\"): augmentation layers must come before \"{}\", the first layer with weights",
                late + 1,
                layers[late].config().kind(),
                layers[late].name(),
                layers[w].name()
            )));
        }
    }
    let mut steps = Vec::new();
    let mut i = 0;
    while i < layers.len() {
        if augments(i) {
            let end = (i..layers.len())
                .find(|&j| !augments(j))
                .unwrap_or(layers.len());
            steps.push(Step::Augment(i..end));
            i = end;
        } else if fuse_pools
            && conv(&*layers[i]).is_some_and(Conv2D::pools_2x2)
            && layers.get(i + 1).is_some_and(|l| is_2x2_pool(&**l))
        {
            steps.push(Step::ConvPool { conv: i });
            i += 2;
        } else {
            steps.push(Step::Layer(i));
            i += 1;
        }
    }
    Ok(steps)
}

/// For each layer, whether it must pass a gradient to its input: some earlier layer has
/// weights.
pub(super) fn needs_input_grad(layers: &[Box<dyn Layer>]) -> Vec<bool> {
    let mut seen_params = false;
    layers
        .iter()
        .map(|layer| {
            let needs = seen_params;
            seen_params |= !layer.params().is_empty();
            needs
        })
        .collect()
}

fn conv(layer: &dyn Layer) -> Option<&Conv2D> {
    layer.as_any().downcast_ref()
}

/// The Conv2D of a [`Step::ConvPool`].
pub(super) fn conv_mut(layer: &mut dyn Layer) -> Option<&mut Conv2D> {
    layer.as_any_mut().downcast_mut()
}

fn is_2x2_pool(layer: &dyn Layer) -> bool {
    let pool = layer.as_any().downcast_ref::<MaxPooling2D>();
    pool.is_some_and(MaxPooling2D::is_2x2)
}

/// A layer of a [`Step::Augment`].
pub(super) fn augmentation_mut(layer: &mut dyn Layer) -> Option<&mut RandomLayer> {
    layer.as_any_mut().downcast_mut()
}
