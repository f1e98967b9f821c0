//! Keras's `Sequential`: layers built from their arguments, run forward and backward over a
//! batch with activation and gradient buffers that are allocated once and reused.

use super::activation::Activation;
use super::layers::augment::{
    self, Brightness, Contrast, Flip, ImageSize, RandomLayer, Rotation, Sampling, Translation, Zoom,
};
use super::layers::conv2d::Conv2DSpec;
use super::layers::FillMode;
use super::layers::{
    Conv2D, Dense, Dropout, Flatten, Layer, LayerConfig, MaxPooling2D, Mode, Param, Rescaling,
};
use super::shape::Shape;
use crate::data::resize::Interpolation;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A model description: the input shape and the layers with Keras's arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Height, width, channels.
    pub input_shape: [usize; 3],
    pub layers: Vec<LayerConfig>,
}

impl ModelConfig {
    /// Reads a JSON description; errors name the layer and the argument at fault.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::Model(format!("not valid JSON: {e}")))?;
        let object = value.as_object().ok_or_else(|| {
            Error::Model("expected an object with \"input_shape\" and \"layers\"".into())
        })?;
        if let Some(key) = object
            .keys()
            .find(|k| *k != "input_shape" && *k != "layers")
        {
            return Err(Error::Model(format!(
                "unknown key {key:?}: expected \"input_shape\" and \"layers\""
            )));
        }
        let input_shape = object
            .get("input_shape")
            .and_then(|v| serde_json::from_value::<[usize; 3]>(v.clone()).ok())
            .ok_or_else(|| {
                Error::Model("\"input_shape\" must be [height, width, channels]".into())
            })?;
        let layers = object
            .get("layers")
            .and_then(|v| v.as_array())
            .ok_or_else(|| Error::Model("\"layers\" must be a list of layers".into()))?
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let kind = layer.get("type").and_then(|t| t.as_str()).unwrap_or("?");
                serde_json::from_value(layer.clone())
                    .map_err(|e| Error::Model(format!("layer {} ({kind}): {e}", i + 1)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ModelConfig {
            input_shape,
            layers,
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("model configs serialise")
    }
}

/// Sanity limits that turn an absurd description into an error instead of an allocation failure.
const MAX_VALUES_PER_SAMPLE: usize = 1 << 28;
const MAX_PARAMS: usize = 1 << 29;

pub struct Sequential {
    input: Shape,
    layers: Vec<Box<dyn Layer>>,
    /// Whether each layer must pass a gradient to its input (some earlier layer has weights).
    needs_input_grad: Vec<bool>,
    /// For each layer, how many augmentation layers run from it (0 for other layers).
    augmentation_runs: Vec<usize>,
    /// For each layer, whether it runs the 2×2 max-pool after it itself (its own output is then
    /// never stored, and the pool layer is not called).
    runs_next_pool: Vec<bool>,
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
            let built = build_layer(
                layer,
                name.clone(),
                shape,
                seed.wrapping_add(i as u32 * 7919),
            )
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
            if shape.size() > MAX_VALUES_PER_SAMPLE || params > MAX_PARAMS {
                return Err(Error::Model(format!(
                    "layer {} (\"{name}\") makes the model too large: {} values per sample, {params} parameters",
                    i + 1,
                    shape.size()
                )));
            }
        }
        let augmentation_runs = augmentation_runs(&layers)?;
        let runs_next_pool = (0..layers.len())
            .map(|i| {
                layers[i].pools_2x2() && layers.get(i + 1).is_some_and(|l| l.is_2x2_max_pool())
            })
            .collect();
        let mut seen_params = false;
        let needs_input_grad = layers
            .iter()
            .map(|layer| {
                let needs = seen_params;
                seen_params |= !layer.params().is_empty();
                needs
            })
            .collect();
        Ok(Sequential {
            input,
            layers,
            needs_input_grad,
            augmentation_runs,
            runs_next_pool,
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
        match self.input {
            Shape::Image {
                height,
                width,
                channels,
            } => Ok((height, width, channels)),
            Shape::Vector(_) => Err(Error::Model("the model does not take images".into())),
        }
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

    fn reserve(&mut self, batch: usize) {
        if self.outputs.len() != self.layers.len() {
            self.outputs = vec![Vec::new(); self.layers.len()];
        }
        for (i, layer) in self.layers.iter().enumerate() {
            // Inside a run of augmentation layers only the last one's output is written, and a
            // layer that runs the pool after it writes only the pool's.
            if self.augmentation_runs[i] > 1 || self.runs_next_pool[i] {
                continue;
            }
            let need = batch * layer.output_shape().size();
            if self.outputs[i].len() < need {
                self.outputs[i].resize(need, 0.0);
            }
        }
    }

    /// Runs `batch` samples (`x` holds `batch × input size` values) through every layer and
    /// returns the last layer's outputs.
    /// A run of augmentation layers is applied in one pass per image (the outputs of all but its
    /// last layer stay unwritten; nothing reads them) and is the identity at inference.
    pub fn forward(&mut self, x: &[f32], batch: usize, mode: Mode) -> &[f32] {
        assert!(
            x.len() >= batch * self.input.size(),
            "input holds fewer than {batch} samples"
        );
        self.reserve(batch);
        let mut i = 0;
        while i < self.layers.len() {
            let started = Instant::now();
            let run = self.augmentation_runs[i].max(1);
            let last = i + run - 1;
            let (before, rest) = self.outputs.split_at_mut(last);
            let input = if i == 0 { x } else { &before[i - 1][..] };
            let output = &mut rest[0];
            if self.runs_next_pool[i] {
                let pooled = &mut rest[1];
                self.layers[i].forward_pooled(input, pooled, batch);
                if let Some(profile) = self.profile.as_mut() {
                    profile[i].forward += started.elapsed();
                }
                i += 2;
                continue;
            }
            match (self.augmentation_runs[i], mode) {
                (0, _) => self.layers[i].forward(input, output, batch, mode),
                (_, Mode::Train) => {
                    let size = image_size(self.layers[i].output_shape());
                    let mut draws = vec![Vec::with_capacity(run); batch];
                    for layer in &mut self.layers[i..=last] {
                        for image in draws.iter_mut() {
                            image.extend(layer.draw_transform());
                        }
                    }
                    augment::augment_batch(&draws, size, input, output);
                }
                (_, Mode::Infer) => {
                    let n = batch * self.layers[last].output_shape().size();
                    output[..n].copy_from_slice(&input[..n]);
                }
            }
            if let Some(profile) = self.profile.as_mut() {
                profile[i].forward += started.elapsed();
            }
            i += run;
        }
        let n = batch * self.output_shape().size();
        &self.outputs[self.layers.len() - 1][..n]
    }

    /// Back-propagates `d_output` (d loss / d outputs of the last forward pass) and leaves every
    /// parameter's gradient in its `grad`.
    pub fn backward(&mut self, x: &[f32], d_output: &[f32], batch: usize) {
        let largest = self
            .layers
            .iter()
            .zip(&self.runs_next_pool)
            .filter(|(_, &runs_pool)| !runs_pool)
            .map(|(l, _)| l.output_shape().size())
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
        let mut i = self.layers.len();
        while i > 0 {
            i -= 1;
            let pooled_by_previous = i > 0 && self.runs_next_pool[i - 1];
            if pooled_by_previous {
                i -= 1;
            }
            let input = if i == 0 { x } else { &self.outputs[i - 1][..] };
            let wants_dx = i > 0 && self.needs_input_grad[i];
            let dx = wants_dx.then_some(&mut self.input_gradient[..]);
            let started = Instant::now();
            if pooled_by_previous {
                let (pooled, dpooled) = (&self.outputs[i + 1], &self.gradient);
                self.layers[i].backward_pooled(input, pooled, dpooled, dx, batch);
            } else {
                self.layers[i].backward(input, &self.outputs[i], &mut self.gradient, dx, batch);
            }
            if let Some(profile) = self.profile.as_mut() {
                profile[i].backward += started.elapsed();
            }
            if !wants_dx {
                break; // no earlier layer has weights
            }
            std::mem::swap(&mut self.gradient, &mut self.input_gradient);
        }
    }

    /// Keras's `model.summary()` table.
    pub fn summary(&self, title: &str) -> String {
        let rows: Vec<[String; 3]> = self
            .layers
            .iter()
            .map(|l| {
                let params: usize = l.params().iter().map(|p| p.value.len()).sum();
                [
                    format!("{} ({})", l.name(), l.config().kind()),
                    l.output_shape().to_string(),
                    group(params),
                ]
            })
            .collect();
        // Keras's widths, widened when a name is longer (e.g. "random_translation (…)").
        let widest = |k: usize| {
            rows.iter()
                .map(|r| r[k].chars().count() + 2)
                .max()
                .unwrap_or(0)
        };
        let widths = [widest(0).max(33), widest(1).max(24), widest(2).max(15)];
        let line = |l: &str, m: &str, r: &str, fill: &str| {
            format!(
                "{l}{}{m}{}{m}{}{r}\n",
                fill.repeat(widths[0]),
                fill.repeat(widths[1]),
                fill.repeat(widths[2])
            )
        };
        let cells = |c: &[String; 3], edge: &str| {
            format!(
                "{edge} {:<w0$} {edge} {:<w1$} {edge} {:>w2$} {edge}\n",
                c[0],
                c[1],
                c[2],
                w0 = widths[0] - 2,
                w1 = widths[1] - 2,
                w2 = widths[2] - 2
            )
        };
        let mut out = format!("Model: \"{title}\"\n");
        out += &line("┏", "┳", "┓", "━");
        out += &cells(
            &[
                "Layer (type)".into(),
                "Output Shape".into(),
                "Param #".into(),
            ],
            "┃",
        );
        out += &line("┡", "╇", "┩", "━");
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                out += &line("├", "┼", "┤", "─");
            }
            out += &cells(row, "│");
        }
        out += &line("└", "┴", "┘", "─");
        let total = self.param_count();
        out += &format!(" Total params: {} ({})\n", group(total), bytes(total * 4));
        out += &format!(
            " Trainable params: {} ({})\n",
            group(total),
            bytes(total * 4)
        );
        out += " Non-trainable params: 0 (0.00 B)\n";
        out
    }
}

/// Lengths of the runs of augmentation layers, each counted at its first layer. Augmentation
/// must come before the first layer with weights: petal does not back-propagate through it.
fn augmentation_runs(layers: &[Box<dyn Layer>]) -> Result<Vec<usize>> {
    let first_weighted = layers.iter().position(|l| !l.params().is_empty());
    let mut runs = vec![0; layers.len()];
    for (i, layer) in layers.iter().enumerate().rev() {
        let config = layer.config();
        if !config.is_augmentation() {
            continue;
        }
        if let Some(w) = first_weighted.filter(|&w| w < i) {
            return Err(Error::Model(format!(
                "layer {} ({} \"{}\"): augmentation layers must come before \"{}\", the first layer with weights",
                i + 1,
                config.kind(),
                layer.name(),
                layers[w].name()
            )));
        }
        runs[i] = 1 + runs.get(i + 1).copied().unwrap_or(0);
    }
    Ok(runs)
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

fn sampling(fill_mode: FillMode, fill_value: f32, interpolation: Interpolation) -> Sampling {
    Sampling {
        fill_mode,
        fill_value,
        interpolation,
    }
}

fn random<A: augment::Augmentation + 'static>(
    name: String,
    input: Shape,
    augmentation: A,
    own_seed: Option<u32>,
    fallback_seed: u32,
) -> Result<Box<dyn Layer>, String> {
    Ok(Box::new(RandomLayer::new(
        name,
        input,
        augmentation,
        own_seed,
        fallback_seed,
    )?))
}

fn build_layer(
    config: &LayerConfig,
    name: String,
    input: Shape,
    seed: u32,
) -> Result<Box<dyn Layer>, String> {
    let image = |what: &str| match input {
        Shape::Image {
            height,
            width,
            channels,
        } => Ok((height, width, channels)),
        Shape::Vector(_) => Err(format!(
            "{what} needs image input (height, width, channels), got {input}"
        )),
    };
    let positive = |arg: &str, (a, b): (usize, usize)| {
        if a == 0 || b == 0 {
            Err(format!(
                "argument `{arg}` must be at least 1, got ({a}, {b})"
            ))
        } else {
            Ok((a, b))
        }
    };
    Ok(match config {
        LayerConfig::Rescaling { scale, offset, .. } => {
            Box::new(Rescaling::new(name, input, *scale, *offset))
        }
        LayerConfig::Conv2D {
            filters,
            kernel_size,
            strides,
            padding,
            activation,
            use_bias,
            ..
        } => {
            let shape = image("Conv2D")?;
            if *filters == 0 {
                return Err("argument `filters` must be at least 1, got 0".into());
            }
            let weights = (kernel_size.get().0 * kernel_size.get().1)
                .saturating_mul(shape.2)
                .saturating_mul(*filters);
            if weights > MAX_PARAMS {
                return Err(format!(
                    "{weights} weights are more than petal handles ({MAX_PARAMS})"
                ));
            }
            let spec = Conv2DSpec {
                filters: *filters,
                kernel: positive("kernel_size", kernel_size.get())?,
                strides: positive("strides", strides.get())?,
                padding: *padding,
                activation: *activation,
                use_bias: *use_bias,
            };
            let kernel = spec.kernel;
            Box::new(Conv2D::new(name, shape, spec, seed).ok_or_else(|| {
                format!("a {kernel:?} kernel does not fit the {input} input with padding \"valid\"")
            })?)
        }
        LayerConfig::MaxPooling2D {
            pool_size,
            strides,
            padding,
            ..
        } => {
            let shape = image("MaxPooling2D")?;
            let pool = positive("pool_size", pool_size.get())?;
            let strides = positive("strides", strides.unwrap_or(*pool_size).get())?;
            Box::new(
                MaxPooling2D::new(name, shape, pool, strides, *padding).ok_or_else(|| {
                    format!("a {pool:?} pool does not fit the {input} input with padding \"valid\"")
                })?,
            )
        }
        LayerConfig::Flatten { .. } => Box::new(Flatten::new(name, input)),
        LayerConfig::Dense {
            units,
            activation,
            use_bias,
            ..
        } => {
            let Shape::Vector(inputs) = input else {
                return Err(format!(
                    "Dense needs a flat input, got {input}: add a Flatten layer before it"
                ));
            };
            if *units == 0 {
                return Err("argument `units` must be at least 1, got 0".into());
            }
            if inputs.saturating_mul(*units) > MAX_PARAMS {
                return Err(format!(
                    "{inputs} × {units} weights are more than petal handles ({MAX_PARAMS})"
                ));
            }
            Box::new(Dense::new(
                name,
                inputs,
                *units,
                *activation,
                *use_bias,
                seed,
            ))
        }
        LayerConfig::Dropout {
            rate,
            seed: own_seed,
            ..
        } => {
            if !(0.0..1.0).contains(rate) {
                return Err(format!("argument `rate` must be in [0, 1), got {rate}"));
            }
            Box::new(Dropout::new(name, input, *rate, *own_seed, seed))
        }
        LayerConfig::RandomFlip {
            mode,
            seed: own_seed,
            ..
        } => random(name, input, Flip { mode: *mode }, *own_seed, seed)?,
        LayerConfig::RandomRotation {
            factor,
            fill_mode,
            interpolation,
            fill_value,
            seed: own_seed,
            ..
        } => {
            let sampling = sampling(*fill_mode, *fill_value, *interpolation);
            let rotation = Rotation::new(*factor, sampling)?;
            random(name, input, rotation, *own_seed, seed)?
        }
        LayerConfig::RandomZoom {
            height_factor,
            width_factor,
            fill_mode,
            interpolation,
            fill_value,
            seed: own_seed,
            ..
        } => {
            let sampling = sampling(*fill_mode, *fill_value, *interpolation);
            let zoom = Zoom::new(*height_factor, *width_factor, sampling)?;
            random(name, input, zoom, *own_seed, seed)?
        }
        LayerConfig::RandomTranslation {
            height_factor,
            width_factor,
            fill_mode,
            interpolation,
            fill_value,
            seed: own_seed,
            ..
        } => {
            let sampling = sampling(*fill_mode, *fill_value, *interpolation);
            let translation = Translation::new(*height_factor, *width_factor, sampling)?;
            random(name, input, translation, *own_seed, seed)?
        }
        LayerConfig::RandomContrast {
            factor,
            value_range,
            seed: own_seed,
            ..
        } => {
            let contrast = Contrast::new(*factor, *value_range)?;
            random(name, input, contrast, *own_seed, seed)?
        }
        LayerConfig::RandomBrightness {
            factor,
            value_range,
            seed: own_seed,
            ..
        } => {
            let brightness = Brightness::new(*factor, *value_range)?;
            random(name, input, brightness, *own_seed, seed)?
        }
    })
}

/// 3989285 → "3,989,285".
fn group(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Keras's byte sizes: "15.22 MB".
fn bytes(n: usize) -> String {
    let units = ["B", "KB", "MB", "GB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", units[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::loss::sparse_categorical_crossentropy;
    use crate::nn::optim::{Optimizer, OptimizerConfig};

    fn wave(n: usize, phase: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f32 * 0.731 + phase).sin() * 43.758).fract())
            .collect()
    }

    fn check_gradients(json: &str, batch: usize) {
        let config = ModelConfig::from_json(json).unwrap();
        let mut model = Sequential::new(&config, 3).unwrap();
        let x: Vec<f32> = wave(batch * model.input_shape().size(), 0.3)
            .iter()
            .map(|v| v * 255.0)
            .collect();
        let upstream = wave(batch * model.output_shape().size(), 1.7);
        let objective = |model: &mut Sequential| -> f64 {
            let y = model.forward(&x, batch, Mode::Train);
            y.iter()
                .zip(&upstream)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum()
        };
        objective(&mut model);
        model.backward(&x, &upstream, batch);
        let analytic: Vec<Vec<f32>> = model.params_mut().iter().map(|p| p.grad.clone()).collect();
        let mut checked = 0;
        for (pi, grads) in analytic.iter().enumerate() {
            for i in (0..grads.len()).step_by(grads.len().div_ceil(12)) {
                let h = 1e-2f32;
                let original = model.params_mut()[pi].value[i];
                model.params_mut()[pi].value[i] = original + h;
                let plus = objective(&mut model);
                model.params_mut()[pi].value[i] = original - h;
                let minus = objective(&mut model);
                model.params_mut()[pi].value[i] = original;
                let numeric = (plus - minus) / (2.0 * h as f64);
                let tolerance = 2e-2 * numeric.abs().max(1.0);
                assert!(
                    (numeric - grads[i] as f64).abs() < tolerance,
                    "param {pi} index {i}: numeric {numeric} vs analytic {}",
                    grads[i]
                );
                checked += 1;
            }
        }
        assert!(checked > 20);
    }

    #[test]
    fn conv_pool_dense_gradients_match_finite_differences() {
        check_gradients(
            r#"{"input_shape": [7, 6, 2], "layers": [
                {"type": "Rescaling", "scale": 0.00392156862745098},
                {"type": "Conv2D", "filters": 3, "kernel_size": 3, "padding": "same", "activation": "sigmoid"},
                {"type": "Conv2D", "filters": 4, "kernel_size": [2, 3], "strides": 2, "activation": "linear"},
                {"type": "MaxPooling2D", "pool_size": 2, "padding": "same"},
                {"type": "Flatten"},
                {"type": "Dense", "units": 5, "activation": "sigmoid"},
                {"type": "Dense", "units": 3, "activation": "softmax"}
            ]}"#,
            3,
        );
    }

    /// Two 16-filter convolutions with 2×2 pools: what the direct kernels fuse. Odd sizes leave
    /// a row and a column out of every pool.
    const FUSABLE: &str = r#"{"input_shape": [11, 13, 3], "layers": [
        {"type": "Rescaling", "scale": 0.00392156862745098},
        {"type": "Conv2D", "filters": 16, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"type": "MaxPooling2D"},
        {"type": "Conv2D", "filters": 16, "kernel_size": 3, "padding": "same", "activation": "linear"},
        {"type": "MaxPooling2D"},
        {"type": "Flatten"},
        {"type": "Dense", "units": 3}
    ]}"#;

    #[test]
    fn direct_conv_gradients_match_finite_differences() {
        // Without the pools and ReLU: finite differences across their kinks on this many units
        // are noisy. The fused pool is checked against the separate layers below.
        let smooth = FUSABLE
            .replace("relu", "linear")
            .replace(r#"{"type": "MaxPooling2D"},"#, "");
        check_gradients(&smooth, 3);
    }

    #[test]
    fn fused_conv_and_pool_match_the_separate_layers() {
        let config = ModelConfig::from_json(FUSABLE).unwrap();
        let run = |fuse: bool, batch: usize| {
            let mut model = Sequential::new(&config, 5).unwrap();
            if !fuse {
                model.runs_next_pool.iter_mut().for_each(|f| *f = false);
            }
            let x: Vec<f32> = wave(batch * model.input_shape().size(), 0.1)
                .iter()
                .map(|v| v * 255.0 - 60.0)
                .collect();
            let y = model.forward(&x, batch, Mode::Train).to_vec();
            let upstream = wave(y.len(), 0.9);
            model.backward(&x, &upstream, batch);
            let grads: Vec<Vec<f32>> = model.params_mut().iter().map(|p| p.grad.clone()).collect();
            (y, grads, model.runs_next_pool.clone())
        };
        for batch in [1, 4] {
            let (y, grads, fused) = run(true, batch);
            let (y_separate, grads_separate, _) = run(false, batch);
            assert_eq!(fused.iter().filter(|&&f| f).count(), 2);
            assert_eq!(y, y_separate);
            for (g, e) in grads.iter().zip(&grads_separate) {
                let worst = g
                    .iter()
                    .zip(e)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(worst < 1e-5, "gradients differ by {worst}");
            }
        }
    }

    #[test]
    fn default_pool_on_odd_sizes_gradients_match() {
        check_gradients(
            r#"{"input_shape": [7, 5, 2], "layers": [
                {"type": "Rescaling", "scale": 0.00392156862745098},
                {"type": "Conv2D", "filters": 3, "kernel_size": 3, "padding": "same", "activation": "sigmoid"},
                {"type": "MaxPooling2D"},
                {"type": "Flatten"},
                {"type": "Dense", "units": 3}
            ]}"#,
            3,
        );
    }

    #[test]
    fn relu_and_overlapping_pools_gradients_match() {
        check_gradients(
            r#"{"input_shape": [6, 6, 1], "layers": [
                {"type": "Conv2D", "filters": 2, "kernel_size": 3, "padding": "same", "activation": "relu"},
                {"type": "MaxPooling2D", "pool_size": 3, "strides": 1},
                {"type": "Conv2D", "filters": 2, "kernel_size": 1, "use_bias": false},
                {"type": "Flatten"},
                {"type": "Dropout", "rate": 0.0},
                {"type": "Dense", "units": 2}
            ]}"#,
            4,
        );
    }

    #[test]
    fn one_image_alone_gives_the_same_outputs_as_in_a_batch() {
        // Batch 1 spreads an image's bands over the threads; larger batches give each thread
        // whole images: both must compute the same numbers (up to the dense layers' GEMM,
        // whose summation order depends on the batch size).
        let config = crate::nn::presets::preset("tutorial", 40, 36, 3).unwrap();
        let mut model = Sequential::new(&config, 5).unwrap();
        let x: Vec<f32> = wave(3 * 40 * 36 * 3, 0.1)
            .iter()
            .map(|v| v * 255.0)
            .collect();
        let batch = model.forward(&x, 3, Mode::Infer).to_vec();
        for n in 0..3 {
            let alone = model
                .forward(&x[n * 4320..(n + 1) * 4320], 1, Mode::Infer)
                .to_vec();
            for (a, b) in alone.iter().zip(&batch[n * 3..(n + 1) * 3]) {
                assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn tutorial_preset_has_keras_parameter_count_and_summary() {
        let config = crate::nn::presets::preset("tutorial", 180, 180, 5).unwrap();
        let model = Sequential::new(&config, 1).unwrap();
        assert_eq!(model.param_count(), 3_989_285);
        let summary = model.summary("sequential");
        assert!(summary.contains("conv2d_2 (Conv2D)"), "{summary}");
        assert!(
            summary.contains("(None, 22, 22, 64)") && summary.contains("(None, 30976)"),
            "{summary}"
        );
        assert!(
            summary.contains("3,965,056") && summary.contains("Total params: 3,989,285 (15.22 MB)"),
            "{summary}"
        );
        assert_eq!(
            Sequential::new(&model.config(), 1).unwrap().config(),
            model.config()
        );
    }

    #[test]
    fn tutorial_augmented_preset_has_the_tutorials_layers_and_round_trips() {
        let config = crate::nn::presets::preset("tutorial-augmented", 180, 180, 5).unwrap();
        let model = Sequential::new(&config, 1).unwrap();
        assert_eq!(model.param_count(), 3_989_285);
        let summary = model.summary("sequential_1");
        for row in [
            "random_flip (RandomFlip)",
            "random_rotation (RandomRotation)",
            "random_zoom (RandomZoom)",
            "dropout (Dropout)",
            "outputs (Dense)",
        ] {
            assert!(summary.contains(row), "{row} missing from\n{summary}");
        }
        let json = model.config().to_json();
        let reread = ModelConfig::from_json(&json).unwrap();
        assert_eq!(
            Sequential::new(&reread, 1).unwrap().config(),
            model.config()
        );
    }

    #[test]
    fn bad_descriptions_name_the_layer_and_argument() {
        let err = |json: &str| {
            ModelConfig::from_json(json)
                .and_then(|c| Sequential::new(&c, 0).map(|_| ()))
                .unwrap_err()
                .to_string()
        };
        let e = err(
            r#"{"input_shape": [8, 8, 3], "layers": [{"type": "Conv2D", "filterz": 3, "kernel_size": 3}]}"#,
        );
        assert!(
            e.contains("layer 1 (Conv2D)") && e.contains("filterz"),
            "{e}"
        );
        let e = err(r#"{"input_shape": [8, 8, 3], "layers": [{"type": "Conv3D"}]}"#);
        assert!(e.contains("Conv3D"), "{e}");
        let e = err(r#"{"input_shape": [8, 8, 3], "layers": [{"type": "Dense", "units": 4}]}"#);
        assert!(e.contains("Flatten"), "{e}");
        let e = err(
            r#"{"input_shape": [8, 8, 3], "layers": [{"type": "Flatten"}, {"type": "Dropout", "rate": 1.5}]}"#,
        );
        assert!(
            e.contains("layer 2 (Dropout \"dropout\")") && e.contains("rate"),
            "{e}"
        );
        let e = err(
            r#"{"input_shape": [2, 2, 3], "layers": [{"type": "Conv2D", "filters": 1, "kernel_size": 3}]}"#,
        );
        assert!(e.contains("does not fit"), "{e}");
    }

    #[test]
    fn a_small_model_learns_a_small_problem() {
        // Bright top half → class 0, bright bottom half → class 1, with noise.
        let (h, w) = (8, 8);
        let batch = 32;
        let mut images = vec![0f32; batch * h * w];
        let labels: Vec<i32> = (0..batch).map(|n| (n % 2) as i32).collect();
        let noise = wave(batch * h * w, 0.9);
        for n in 0..batch {
            for y in 0..h {
                for x in 0..w {
                    let bright = (y < h / 2) == (n % 2 == 0);
                    let i = n * h * w + y * w + x;
                    images[i] = if bright { 200.0 } else { 40.0 } + noise[i] * 50.0;
                }
            }
        }
        let config = ModelConfig::from_json(
            r#"{"input_shape": [8, 8, 1], "layers": [
                {"type": "Rescaling", "scale": 0.00392156862745098},
                {"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
                {"type": "MaxPooling2D"},
                {"type": "Flatten"},
                {"type": "Dense", "units": 2}
            ]}"#,
        )
        .unwrap();
        let mut model = Sequential::new(&config, 11).unwrap();
        let mut adam = Optimizer::new(OptimizerConfig::adam().with_learning_rate(0.01));
        let mut grad = vec![0f32; batch * 2];
        let mut first_loss = None;
        let mut last = Default::default();
        for _ in 0..60 {
            let out = model.forward(&images, batch, Mode::Train).to_vec();
            last = sparse_categorical_crossentropy(&out, &labels, 2, true, Some(&mut grad));
            first_loss.get_or_insert(last.loss());
            model.backward(&images, &grad, batch);
            adam.apply(model.params_mut());
        }
        assert!(last.accuracy() == 1.0, "accuracy {}", last.accuracy());
        assert!(
            last.loss() < first_loss.unwrap() / 4.0,
            "{} → {}",
            first_loss.unwrap(),
            last.loss()
        );
    }
}
