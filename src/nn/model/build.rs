//! Layers built from their Keras arguments, each argument checked with a message that names it.

use crate::data::resize::Interpolation;
use crate::nn::layers::augment::{
    self, Brightness, Contrast, Flip, RandomLayer, Rotation, Sampling, Translation, Zoom,
};
use crate::nn::layers::conv2d::Conv2DSpec;
use crate::nn::layers::FillMode;
use crate::nn::layers::{
    Conv2D, Dense, Dropout, Flatten, Layer, LayerConfig, MaxPooling2D, Rescaling,
};
use crate::nn::shape::Shape;

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

/// Builds one layer whose weights may number at most `room`, checked before they are allocated.
pub(super) fn build_layer(
    config: &LayerConfig,
    name: String,
    input: Shape,
    seed: u32,
    room: usize,
) -> Result<Box<dyn Layer>, String> {
    let too_many = |weights: String| {
        format!("{weights} weights are more than the {room} this model may still have")
    };
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
            if weights > room {
                return Err(too_many(weights.to_string()));
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
            if inputs.saturating_mul(*units) > room {
                return Err(too_many(format!("{inputs} × {units}")));
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
