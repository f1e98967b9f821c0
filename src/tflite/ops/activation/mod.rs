//! Element-wise activations on FLOAT32: RELU, RELU6, RELU_N1_TO_1, RELU_0_TO_1, LEAKY_RELU,
//! LOGISTIC, TANH, HARD_SWISH, GELU, EXP, NEG, ABS, SQRT, RSQRT, SQUARE; and LOGISTIC, TANH and
//! HARD_SWISH on int8 and uint8 ([`quantized`]).

mod quantized;

use super::{f32_in, f32_out, options, InPlace, InputProduct, Inputs, Op, Out};
use crate::nn::kernels::elementwise;
use crate::nn::thread_pool;
use crate::tflite::schema::BuiltinOptions;
use crate::tflite::tensor::{DType, Tensor};
use quantized::Table;
use std::sync::Arc;

#[derive(Clone, Copy)]
enum Kind {
    Relu,
    Relu6,
    ReluN1To1,
    Relu0To1,
    LeakyRelu(f32),
    Logistic,
    Tanh,
    HardSwish,
    Gelu { approximate: bool },
    Exp,
    Neg,
    Abs,
    Sqrt,
    Rsqrt,
    Square,
}

fn new(kind: Kind) -> Result<Box<dyn Op>, String> {
    Ok(Box::new(Activation {
        kind,
        table: None,
        swish: false,
        swish_table: None,
    }))
}

macro_rules! simple {
    ($($name:ident => $kind:expr),* $(,)?) => {
        $(pub(super) fn $name(_: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
            new($kind)
        })*
    };
}

simple! {
    build_relu => Kind::Relu,
    build_relu6 => Kind::Relu6,
    build_relu_n1_to_1 => Kind::ReluN1To1,
    build_relu_0_to_1 => Kind::Relu0To1,
    build_logistic => Kind::Logistic,
    build_tanh => Kind::Tanh,
    build_hard_swish => Kind::HardSwish,
    build_exp => Kind::Exp,
    build_neg => Kind::Neg,
    build_abs => Kind::Abs,
    build_sqrt => Kind::Sqrt,
    build_rsqrt => Kind::Rsqrt,
    build_square => Kind::Square,
}

pub(super) fn build_leaky_relu(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    let alpha = options!(options, LeakyReluOptions).map_or(0.2, |o| o.alpha);
    new(Kind::LeakyRelu(alpha))
}

pub(super) fn build_gelu(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    let approximate = options!(options, GeluOptions).is_some_and(|o| o.approximate);
    new(Kind::Gelu { approximate })
}

struct Activation {
    kind: Kind,
    /// For int8 and uint8: the output for each of the 256 stored inputs.
    table: Option<Table>,
    /// A LOGISTIC writing x·σ(x) for the MUL after it (see `crate::tflite::fusion`).
    swish: bool,
    /// For int8 and uint8, that MUL's output for each stored input, when it does.
    swish_table: Option<Table>,
}

fn gelu(x: f32, approximate: bool) -> f32 {
    if approximate {
        const SQRT_2_OVER_PI: f32 = 0.797_884_6;
        0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
    } else {
        0.5 * x * (1.0 + erf(x as f64 * std::f64::consts::FRAC_1_SQRT_2) as f32)
    }
}

/// The error function, as 1 − erfc with Numerical Recipes' Chebyshev fit of erfc (relative
/// error below 1.2e-7, finer than float32's rounding).
fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 {
        1.0 - erfc
    } else {
        erfc - 1.0
    }
}

/// Where an activation reads and writes: from one slice into another, or in place.
trait Values {
    fn map(self, f: impl Fn(f32) -> f32);
}

struct Between<'a> {
    x: &'a [f32],
    y: &'a mut [f32],
}

impl Values for Between<'_> {
    #[inline(always)]
    fn map(self, f: impl Fn(f32) -> f32) {
        self.y.iter_mut().zip(self.x).for_each(|(y, &v)| *y = f(v));
    }
}

struct Within<'a>(&'a mut [f32]);

impl Values for Within<'_> {
    #[inline(always)]
    fn map(self, f: impl Fn(f32) -> f32) {
        self.0.iter_mut().for_each(|v| *v = f(*v));
    }
}

impl Op for Activation {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(1..=1)?;
        let x = inputs.get(0)?;
        self.table = match x.dtype() {
            DType::F32 => None,
            DType::I8 | DType::U8 => Some(Table::new(self.kind, x, inputs.output(0)?)?),
            other => {
                return Err(format!(
                    "petal runs this activation on FLOAT32, not {other}"
                ))
            }
        };
        Ok(vec![Out::new(x.dtype(), x.shape.clone())])
    }

    fn multiply_by_input(&mut self, product: Option<InputProduct>) -> bool {
        let logistic = matches!(self.kind, Kind::Logistic);
        (self.swish, self.swish_table) = match (product, &self.table) {
            (Some(InputProduct::Float), None) if logistic => (true, None),
            (Some(InputProduct::Stored(f)), Some(table)) if logistic => {
                (false, Some(table.then_with_input(|v, s| f(v, s))))
            }
            _ => (false, None),
        };
        self.swish || self.swish_table.is_some()
    }

    fn in_place(&self) -> Option<InPlace> {
        let (kind, swish) = (self.kind, self.swish);
        let in_place = move |y: &mut [f32]| apply_within(kind, swish, y);
        self.table.is_none().then(|| Arc::new(in_place) as InPlace)
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        if let Some(table) = self.swish_table.as_ref().or(self.table.as_ref()) {
            let x = inputs[0].ok_or("the input is missing")?;
            return table.run(&x.data, &mut outputs[0].data);
        }
        let x = f32_in(inputs, 0)?;
        let y = f32_out(outputs, 0)?;
        let (kind, swish) = (self.kind, self.swish);
        thread_pool::for_each_band(y, 1, |first, y| {
            apply(kind, swish, &x[first..][..y.len()], y)
        });
        Ok(())
    }
}

crate::nn::simd::compiled_per_level! {
    /// `y = f(x)` for the activation `kind` (x·σ(x) for a LOGISTIC doing a swish).
    fn apply(kind: Kind, swish: bool, x: &[f32], y: &mut [f32]) = apply_between
}

#[inline(always)]
fn apply_between(kind: Kind, swish: bool, x: &[f32], y: &mut [f32]) {
    apply_to(kind, swish, Between { x, y })
}

crate::nn::simd::compiled_per_level! {
    /// `y = f(y)` for the activation `kind`.
    fn apply_within(kind: Kind, swish: bool, y: &mut [f32]) = apply_within_portable
}

#[inline(always)]
fn apply_within_portable(kind: Kind, swish: bool, y: &mut [f32]) {
    apply_to(kind, swish, Within(y))
}

#[inline(always)]
fn apply_to(kind: Kind, swish: bool, values: impl Values) {
    match kind {
        Kind::Relu => values.map(|v| v.max(0.0)),
        Kind::Relu6 => values.map(|v| v.clamp(0.0, 6.0)),
        Kind::ReluN1To1 => values.map(|v| v.clamp(-1.0, 1.0)),
        Kind::Relu0To1 => values.map(|v| v.clamp(0.0, 1.0)),
        Kind::LeakyRelu(alpha) => values.map(|v| if v > 0.0 { v } else { v * alpha }),
        Kind::Logistic if swish => values.map(|v| v * elementwise::logistic(v)),
        Kind::Logistic => values.map(elementwise::logistic),
        Kind::Tanh => values.map(elementwise::tanh),
        // x · ReLU6(x + 3) / 6, as TensorFlow Lite's reference kernel.
        Kind::HardSwish => values.map(|v| v * (v + 3.0).clamp(0.0, 6.0) / 6.0),
        Kind::Gelu { approximate } => values.map(|v| gelu(v, approximate)),
        Kind::Exp => values.map(elementwise::exp),
        Kind::Neg => values.map(|v| -v),
        Kind::Abs => values.map(f32::abs),
        Kind::Sqrt => values.map(f32::sqrt),
        Kind::Rsqrt => values.map(|v| 1.0 / v.sqrt()),
        Kind::Square => values.map(|v| v * v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tflite::ops::run_single;

    #[test]
    fn activations_match_their_definitions() {
        let x = Tensor::f32(vec![5], vec![-4.0, -1.0, 0.0, 1.5, 8.0]);
        let run = |op| run_single(op, &[&x]).unwrap().as_f32().unwrap().to_vec();
        assert_eq!(run(build_relu6(None).unwrap()), [0.0, 0.0, 0.0, 1.5, 6.0]);
        assert_eq!(
            run(build_hard_swish(None).unwrap()),
            [0.0, -2.0 / 6.0, 0.0, 1.5 * 4.5 / 6.0, 8.0]
        );
        let sigmoid = run(build_logistic(None).unwrap());
        assert!((sigmoid[3] - 1.0 / (1.0 + (-1.5f32).exp())).abs() < 1e-7);
        let gelu = run(build_gelu(None).unwrap());
        assert!((gelu[3] - 1.399_789_2).abs() < 1e-6, "{}", gelu[3]);
    }
}
