//! Dense: one GEMM over the whole batch (threaded inside the product), bias and activation fused.

use super::{
    add_bias, kernel_and_bias, kernel_and_bias_mut, Build, Layer, LayerConfig, Mode, Param,
};
use crate::nn::activation::Activation;
use crate::nn::init::glorot_uniform;
use crate::nn::kernels::gemm::{matmul, row_times_matrix, Mat, Threads};
use crate::nn::shape::Shape;

pub struct Dense {
    name: String,
    inputs: usize,
    units: usize,
    activation: Activation,
    kernel: Param,
    bias: Option<Param>,
}

impl Dense {
    pub(crate) fn from_config(config: &LayerConfig, b: Build) -> Result<Self, String> {
        let LayerConfig::Dense {
            units,
            activation,
            use_bias,
            ..
        } = *config
        else {
            return Err(Build::not_for("Dense", config));
        };
        let Shape::Vector(inputs) = b.input else {
            return Err(format!(
                "Dense needs a flat input, got {}: add a Flatten layer before it",
                b.input
            ));
        };
        if units == 0 {
            return Err("argument `units` must be at least 1, got 0".into());
        }
        b.check_room(inputs.saturating_mul(units), format!("{inputs} × {units}"))?;
        Ok(Dense::new(
            b.name, inputs, units, activation, use_bias, b.seed,
        ))
    }

    pub fn new(
        name: String,
        inputs: usize,
        units: usize,
        activation: Activation,
        use_bias: bool,
        seed: u32,
    ) -> Self {
        let kernel = glorot_uniform(inputs * units, inputs, units, seed);
        let bias = use_bias.then(|| vec![0.0; units]);
        Self::with_weights(name, inputs, units, activation, kernel, bias)
            .expect("the initialiser makes weights of the layer's sizes")
    }

    /// A Dense layer with given weights: `kernel` in Keras's (inputs, units) layout, `bias` one
    /// per unit. `None` when their sizes do not fit.
    pub fn with_weights(
        name: String,
        inputs: usize,
        units: usize,
        activation: Activation,
        kernel: Vec<f32>,
        bias: Option<Vec<f32>>,
    ) -> Option<Self> {
        if kernel.len() != inputs * units || bias.as_ref().is_some_and(|b| b.len() != units) {
            return None;
        }
        let kernel = Param::new("kernel", vec![inputs, units], kernel);
        let bias = bias.map(|b| Param::new("bias", vec![units], b));
        Some(Dense {
            name,
            inputs,
            units,
            activation,
            kernel,
            bias,
        })
    }
}

impl Layer for Dense {
    fn name(&self) -> &str {
        &self.name
    }

    fn config(&self) -> LayerConfig {
        LayerConfig::Dense {
            units: self.units,
            activation: self.activation,
            use_bias: self.bias.is_some(),
            name: Some(self.name.clone()),
        }
    }

    fn output_shape(&self) -> Shape {
        Shape::Vector(self.units)
    }

    fn params(&self) -> Vec<&Param> {
        kernel_and_bias(&self.kernel, &self.bias)
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        kernel_and_bias_mut(&mut self.kernel, &mut self.bias)
    }

    fn forward(&mut self, x: &[f32], y: &mut [f32], batch: usize, _mode: Mode) {
        let y = &mut y[..batch * self.units];
        if batch == 1 {
            row_times_matrix(y, x, &self.kernel.value, self.inputs, self.units);
        } else {
            let kernel = Mat::new(&self.kernel.value, self.inputs, self.units);
            let x = Mat::new(x, batch, self.inputs);
            matmul(y, x, kernel, false, Threads::All);
        }
        if let Some(bias) = &self.bias {
            add_bias(y, &bias.value);
        }
        self.activation.forward(y, self.units);
    }

    fn backward(
        &mut self,
        x: &[f32],
        y: &[f32],
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        batch: usize,
    ) {
        let dy = &mut dy[..batch * self.units];
        self.activation
            .backward(&y[..batch * self.units], dy, self.units);
        let grad = Mat::new(dy, batch, self.units);
        let inputs = Mat::new(x, batch, self.inputs);
        matmul(&mut self.kernel.grad, inputs.t(), grad, false, Threads::All);
        if let Some(bias) = self.bias.as_mut() {
            bias.grad.fill(0.0);
            for row in dy.chunks_exact(self.units) {
                bias.grad.iter_mut().zip(row).for_each(|(b, g)| *b += g);
            }
        }
        if let Some(dx) = dx {
            let kernel = Mat::new(&self.kernel.value, self.inputs, self.units);
            matmul(
                &mut dx[..batch * self.inputs],
                grad,
                kernel.t(),
                false,
                Threads::All,
            );
        }
    }
}
