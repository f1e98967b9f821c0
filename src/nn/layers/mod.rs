//! Keras's layers, each with an explicit forward and backward pass over a batch held in one
//! flat NHWC float buffer.

pub mod augment;
mod build;
mod config;
pub(crate) mod conv2d;
mod dense;
mod dropout;
mod flatten;
mod max_pooling2d;
mod rescaling;
pub(crate) mod window;

use std::any::Any;

pub use build::Build;
pub use config::{Factor, FillMode, FlipMode, LayerConfig, Padding, Pair};
pub use conv2d::Conv2D;
pub use dense::Dense;
pub use dropout::Dropout;
pub use flatten::Flatten;
pub use max_pooling2d::MaxPooling2D;
pub use rescaling::Rescaling;

use super::shape::Shape;

/// Whether a forward pass is for learning (Dropout active) or for predicting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Infer,
}

/// A trainable tensor with the gradient of the last backward pass.
#[derive(Debug, Clone)]
pub struct Param {
    /// Keras's variable name within the layer: "kernel" or "bias".
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub value: Vec<f32>,
    pub grad: Vec<f32>,
}

impl Param {
    pub fn new(name: &'static str, shape: Vec<usize>, value: Vec<f32>) -> Self {
        let grad = vec![0.0; value.len()];
        Param {
            name,
            shape,
            value,
            grad,
        }
    }
}

pub trait Layer: Send + AsAny {
    fn name(&self) -> &str;
    /// The arguments that rebuild this layer (saved in model files).
    fn config(&self) -> LayerConfig;
    fn output_shape(&self) -> Shape;
    fn params(&self) -> Vec<&Param> {
        Vec::new()
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        Vec::new()
    }
    /// Computes `y` for the `batch` samples in `x`.
    fn forward(&mut self, x: &[f32], y: &mut [f32], batch: usize, mode: Mode);
    /// From `dy` (d loss / d y, which the layer may overwrite) sets its parameters' gradients
    /// and, when `dx` is given, d loss / d x. `x` and `y` are the last forward pass's.
    fn backward(
        &mut self,
        x: &[f32],
        y: &[f32],
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        batch: usize,
    );
}

/// A layer as its own type: the model's plan reaches a Conv2D that can run the pool after it,
/// or an augmentation layer's draws, without the `Layer` trait knowing about either.
pub trait AsAny {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

pub(crate) fn kernel_and_bias<'a>(kernel: &'a Param, bias: &'a Option<Param>) -> Vec<&'a Param> {
    std::iter::once(kernel).chain(bias.as_ref()).collect()
}

pub(crate) fn kernel_and_bias_mut<'a>(
    kernel: &'a mut Param,
    bias: &'a mut Option<Param>,
) -> Vec<&'a mut Param> {
    std::iter::once(kernel).chain(bias.as_mut()).collect()
}

/// Adds `bias` to every row (pixel or sample) of `values`.
pub(crate) fn add_bias(values: &mut [f32], bias: &[f32]) {
    for row in values.chunks_exact_mut(bias.len()) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
}

/// One scratch space per worker thread: the batch is cut into that many contiguous runs.
pub(crate) fn workers() -> usize {
    rayon::current_num_threads().max(1)
}
