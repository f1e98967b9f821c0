//! Keras's `Sequential`: layers built from their configs (each layer's `from_config`), run
//! forward and backward over a batch along a plan worked out once (`plan.rs`), with activation
//! and gradient buffers that are allocated once and reused.

mod config;
mod plan;
mod summary;
#[cfg(test)]
mod tests;

pub use config::ModelConfig;

use super::activation::Activation;
use super::layers::augment::{self, ImageSize};
use super::layers::{Build, Layer, LayerConfig, Mode, Param};
use super::shape::Shape;
use crate::sysmem::describe;
use crate::{Error, Result};
use plan::Step;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Sanity limits that turn an absurd description into an error instead of an allocation failure.
const MAX_VALUES_PER_SAMPLE: usize = 1 << 28;
const MAX_PARAMS: usize = 1 << 29;

pub struct Sequential {
    input: Shape,
    layers: Vec<Box<dyn Layer>>,
    /// Whether each layer must pass a gradient to its input (some earlier layer has weights).
    needs_input_grad: Vec<bool>,
    steps: Vec<Step>,
    /// Each layer's output, for the layers whose output a step writes.
    outputs: Vec<Vec<f32>>,
    /// Two gradient buffers used in turn (d loss / d output of a layer, and of its input), each
    /// as large as the largest layer output: backward never needs more than two at once.
    gradient: Vec<f32>,
    input_gradient: Vec<f32>,
    /// Time spent in each layer's forward and backward since profiling was turned on.
    profile: Option<Vec<LayerTime>>,
}

/// Where a layer's time goes, summed over the passes since [`Sequential::set_profiling`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LayerTime {
    pub forward: Duration,
    pub backward: Duration,
}

impl Sequential {
    /// Builds the layers with Keras's initialisers; `seed` makes the weights reproducible.
    pub fn new(config: &ModelConfig, seed: u32) -> Result<Self> {
        Self::with_param_budget(config, seed, MAX_PARAMS)
    }

    /// [`Sequential::new`] for a model of at most `budget` weights, checked layer by layer
    /// before each layer's weights are allocated: the values a model file holds bound the model
    /// it can describe, so a crafted description cannot make petal allocate gigabytes.
    pub fn with_param_budget(config: &ModelConfig, seed: u32, budget: usize) -> Result<Self> {
        let budget = budget.min(MAX_PARAMS);
        super::denormals::flush_denormals_to_zero();
        let [h, w, c] = config.input_shape;
        if h == 0 || w == 0 || c == 0 {
            return Err(Error::Model(format!(
                "input_shape {:?} has a zero dimension",
                config.input_shape
            )));
        }
        if config.layers.is_empty() {
            return Err(Error::Model("the model has no layers".into()));
        }
        if h.saturating_mul(w).saturating_mul(c) > MAX_VALUES_PER_SAMPLE {
            return Err(Error::Model(format!(
                "input_shape {:?} is too large for petal",
                config.input_shape
            )));
        }
        let input = Shape::image(h, w, c);
        let mut shape = input;
        let mut layers: Vec<Box<dyn Layer>> = Vec::new();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let mut names = std::collections::HashSet::new();
        for (i, layer) in config.layers.iter().enumerate() {
            let stem = layer.name_stem();
            let count = counts.entry(stem).or_default();
            let name = layer
                .name()
                .map(str::to_owned)
                .unwrap_or_else(|| match *count {
                    0 => stem.to_owned(),
                    n => format!("{stem}_{n}"),
                });
            *count += 1;
            let params: usize = layers
                .iter()
                .flat_map(|l| l.params())
                .map(|p| p.value.len())
                .sum();
            let built = layer
                .build(Build {
                    name: name.clone(),
                    input: shape,
                    seed: seed.wrapping_add(i as u32 * 7919),
                    room: budget - params,
                })
                .map_err(|why| {
                    Error::Model(format!(
                        "layer {} ({} \"{name}\"): {why}",
                        i + 1,
                        layer.kind()
                    ))
                })?;
            if !names.insert(name.clone()) {
                return Err(Error::Model(format!(
                    "layer {}: the name \"{name}\" is used twice",
                    i + 1
                )));
            }
            shape = built.output_shape();
            layers.push(built);
            let params: usize = layers
                .iter()
                .flat_map(|l| l.params())
                .map(|p| p.value.len())
                .sum();
            if shape.size() > MAX_VALUES_PER_SAMPLE || params > budget {
                return Err(Error::Model(format!(
                    "layer {} (\"{name}\") makes the model too large: {} values per sample, {params} parameters",
                    i + 1,
                    shape.size()
                )));
            }
        }
        let steps = plan::plan(&layers, true)?;
        let needs_input_grad = plan::needs_input_grad(&layers);
        Ok(Sequential {
            input,
            layers,
            needs_input_grad,
            steps,
            outputs: Vec::new(),
            gradient: Vec::new(),
            input_gradient: Vec::new(),
            profile: None,
        })
    }

    pub fn config(&self) -> ModelConfig {
        let Shape::Image {
            height,
            width,
            channels,
        } = self.input
        else {
            unreachable!("inputs are images")
        };
        ModelConfig {
            input_shape: [height, width, channels],
            layers: self.layers.iter().map(|l| l.config()).collect(),
        }
    }

    pub fn input_shape(&self) -> Shape {
        self.input
    }

    /// Height, width and channels of the images the model takes.
    pub fn image_input(&self) -> Result<(usize, usize, usize)> {
        self.input
            .as_image()
            .ok_or_else(|| Error::Model("the model does not take images".into()))
    }

    pub fn output_shape(&self) -> Shape {
        self.layers.last().map_or(self.input, |l| l.output_shape())
    }

    /// Whether the model ends in a softmax (outputs probabilities) rather than logits.
    pub fn outputs_probabilities(&self) -> bool {
        matches!(
            self.layers.last().map(|l| l.config()),
            Some(LayerConfig::Dense {
                activation: Activation::Softmax,
                ..
            }) | Some(LayerConfig::Conv2D {
                activation: Activation::Softmax,
                ..
            })
        )
    }

    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    pub fn param_count(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|l| l.params())
            .map(|p| p.value.len())
            .sum()
    }

    /// Every parameter with its Keras path, e.g. "conv2d/kernel".
    pub fn named_params(&self) -> Vec<(String, &Param)> {
        self.layers
            .iter()
            .flat_map(|l| {
                l.params()
                    .into_iter()
                    .map(move |p| (format!("{}/{}", l.name(), p.name), p))
            })
            .collect()
    }

    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.params_mut())
            .collect()
    }

    /// Starts (afresh) or stops timing each layer's passes, for `petal bench train --layers`.
    pub fn set_profiling(&mut self, on: bool) {
        self.profile = on.then(|| vec![LayerTime::default(); self.layers.len()]);
    }

    /// Each layer's time since profiling was turned on (a run of augmentation layers is
    /// counted on its first layer).
    pub fn layer_times(&self) -> Option<&[LayerTime]> {
        self.profile.as_deref()
    }

    /// Runs Conv2D + MaxPooling2D pairs fused (the default) or as separate layers: the plan
    /// is rebuilt, the outputs and gradients stay the same.
    pub fn fuse_pools(&mut self, on: bool) {
        self.steps = plan::plan(&self.layers, on).expect("the layers were checked when built");
    }

    /// Bytes the activation and gradient buffers take for batches of `batch` (the layers' own
    /// scratch comes on top, a fraction of it).
    pub fn activation_bytes(&self, batch: usize) -> u64 {
        let sizes = || {
            self.steps
                .iter()
                .map(|step| self.layers[step.last()].output_shape().size() as u64)
        };
        let largest = sizes().max().unwrap_or(0);
        (sizes().sum::<u64>() + 2 * largest) * batch as u64 * 4
    }

    /// Refuses batches of `batch` whose buffers would not fit the memory available, with the
    /// figures, before anything is allocated.
    pub fn check_memory(&self, batch: usize) -> Result<()> {
        let needed = self.activation_bytes(batch);
        match crate::sysmem::available_bytes() {
            Some(room) if needed > room => Err(Error::Model(format!(
                "the model needs {} of activations for a batch of {batch} ({} per image), more than the {} available: lower --batch-size or --image-size, or use a smaller model",
                describe(needed),
                describe(needed / batch.max(1) as u64),
                describe(room)
            ))),
            _ => Ok(()),
        }
    }

    fn reserve(&mut self, batch: usize) {
        if self.outputs.len() != self.layers.len() {
            self.outputs = vec![Vec::new(); self.layers.len()];
        }
        for step in &self.steps {
            let last = step.last();
            let need = batch * self.layers[last].output_shape().size();
            if self.outputs[last].len() < need {
                self.outputs[last].resize(need, 0.0);
            }
        }
    }

    /// Runs `batch` samples (`x` holds `batch × input size` values) through every layer and
    /// returns the last layer's outputs.
    pub fn forward(&mut self, x: &[f32], batch: usize, mode: Mode) -> &[f32] {
        assert!(
            x.len() >= batch * self.input.size(),
            "input holds fewer than {batch} samples"
        );
        self.reserve(batch);
        for step in &self.steps {
            let started = Instant::now();
            let (first, last) = (step.first(), step.last());
            let (before, rest) = self.outputs.split_at_mut(last);
            let input = if first == 0 {
                x
            } else {
                &before[first - 1][..]
            };
            let output = &mut rest[0];
            match (step, mode) {
                (Step::Layer(i), _) => self.layers[*i].forward(input, output, batch, mode),
                (Step::ConvPool { conv }, _) => plan::conv_mut(&mut *self.layers[*conv])
                    .expect("the plan fuses Conv2D layers only")
                    .forward_pooled(input, output, batch),
                (Step::Augment(run), Mode::Train) => {
                    let size = image_size(self.layers[first].output_shape());
                    let mut draws = vec![Vec::with_capacity(run.len()); batch];
                    for layer in &mut self.layers[run.clone()] {
                        let random = plan::augmentation_mut(&mut **layer)
                            .expect("the plan groups augmentation layers only");
                        for image in draws.iter_mut() {
                            image.push(random.draw_transform());
                        }
                    }
                    augment::augment_batch(&draws, size, input, output);
                }
                (Step::Augment(_), Mode::Infer) => {
                    let n = batch * self.layers[last].output_shape().size();
                    output[..n].copy_from_slice(&input[..n]);
                }
            }
            if let Some(profile) = self.profile.as_mut() {
                profile[first].forward += started.elapsed();
            }
        }
        let n = batch * self.output_shape().size();
        &self.outputs[self.layers.len() - 1][..n]
    }

    /// Back-propagates `d_output` (d loss / d outputs of the last forward pass) and leaves every
    /// parameter's gradient in its `grad`.
    pub fn backward(&mut self, x: &[f32], d_output: &[f32], batch: usize) {
        let largest = self
            .steps
            .iter()
            .map(|step| self.layers[step.last()].output_shape().size())
            .max()
            .unwrap_or(0)
            * batch;
        for buffer in [&mut self.gradient, &mut self.input_gradient] {
            if buffer.len() < largest {
                buffer.resize(largest, 0.0);
            }
        }
        let n = batch * self.output_shape().size();
        self.gradient[..n].copy_from_slice(&d_output[..n]);
        for step in self.steps.iter().rev() {
            let first = step.first();
            let input = if first == 0 {
                x
            } else {
                &self.outputs[first - 1][..]
            };
            let wants_dx = first > 0 && self.needs_input_grad[first];
            let dx = wants_dx.then_some(&mut self.input_gradient[..]);
            let started = Instant::now();
            match step {
                Step::Layer(i) => {
                    let output = &self.outputs[*i];
                    self.layers[*i].backward(input, output, &mut self.gradient, dx, batch)
                }
                Step::ConvPool { conv } => {
                    let pooled = &self.outputs[conv + 1];
                    plan::conv_mut(&mut *self.layers[*conv])
                        .expect("the plan fuses Conv2D layers only")
                        .backward_pooled(input, pooled, &self.gradient, dx, batch)
                }
                // Augmentation comes before every layer with weights: nothing to pass back.
                Step::Augment(_) => break,
            }
            if let Some(profile) = self.profile.as_mut() {
                profile[first].backward += started.elapsed();
            }
            if !wants_dx {
                break; // no earlier layer has weights
            }
            std::mem::swap(&mut self.gradient, &mut self.input_gradient);
        }
    }
}

fn image_size(shape: Shape) -> ImageSize {
    let Shape::Image {
        height,
        width,
        channels,
    } = shape
    else {
        unreachable!("augmentation layers are built for image input only")
    };
    ImageSize {
        height,
        width,
        channels,
    }
}
