//! Ops that change only the shape: RESHAPE (a shape input or option, one −1 allowed), SQUEEZE,
//! EXPAND_DIMS, and SHAPE, whose output is known as soon as its input's shape is.

use super::{axis, options, Inputs, Op, Out};
use crate::tflite::schema::{BuiltinOptions, TensorType};
use crate::tflite::tensor::{DType, Data, Tensor};

/// Copies the input's values; the output's shape was set when prepared.
fn copy_values(inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
    let x = inputs[0].ok_or("the input is missing")?;
    if x.data.dtype() != outputs[0].data.dtype() || x.data.len() != outputs[0].data.len() {
        return Err("the output is not the tensor prepared".into());
    }
    outputs[0].data.clone_from(&x.data);
    Ok(())
}

pub(super) fn build_reshape(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    let new_shape = options!(options, ReshapeOptions).and_then(|o| o.new_shape.clone());
    Ok(Box::new(Reshape { new_shape }))
}

struct Reshape {
    new_shape: Option<Vec<i32>>,
}

/// Resolves a requested shape (at most one −1) against `count` values.
fn resolve(requested: &[i64], count: usize) -> Result<Vec<usize>, String> {
    let mut unknown = None;
    let mut known = 1usize;
    let mut shape = Vec::with_capacity(requested.len());
    for (i, &d) in requested.iter().enumerate() {
        match d {
            -1 if unknown.is_none() => {
                unknown = Some(i);
                shape.push(0);
            }
            d if d >= 0 => {
                let d = usize::try_from(d).map_err(|_| format!("dimension {d} is too large"))?;
                known = known
                    .checked_mul(d)
                    .ok_or_else(|| format!("shape {requested:?} overflows"))?;
                shape.push(d);
            }
            _ => return Err(format!("cannot reshape to {requested:?}")),
        }
    }
    match unknown {
        Some(i) if known > 0 && count.is_multiple_of(known) => shape[i] = count / known,
        None if known == count => {}
        _ => return Err(format!("cannot reshape {count} values to {requested:?}")),
    }
    Ok(shape)
}

impl Op for Reshape {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(1..=2)?;
        let x = inputs.get(0)?;
        let from_input = match inputs.optional(1) {
            None => None,
            Some(t) if t.shape.len() > 1 => {
                return Err(format!("the shape input must be 1-D, got {:?}", t.shape))
            }
            Some(_) => Some(inputs.int_constant(1, "shape input")?.0),
        };
        let option = self
            .new_shape
            .as_ref()
            .map(|s| s.iter().map(|&d| d as i64).collect::<Vec<_>>());
        // An empty shape input defers to the option, as in TensorFlow Lite.
        let requested = match (from_input, option) {
            (Some(given), Some(option)) if given.is_empty() => option,
            (None, Some(option)) => option,
            (Some(given), _) => given,
            (None, None) => {
                return Err("the new shape is given neither as an input nor as an option".into())
            }
        };
        let shape = resolve(&requested, x.shape.iter().product())?;
        Ok(vec![Out::new(x.dtype(), shape)])
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        copy_values(inputs, outputs)
    }
}

pub(super) fn build_squeeze(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    let dims = options!(options, SqueezeOptions)
        .and_then(|o| o.squeeze_dims.clone())
        .unwrap_or_default();
    Ok(Box::new(Squeeze { dims }))
}

struct Squeeze {
    dims: Vec<i32>,
}

impl Op for Squeeze {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(1..=1)?;
        let x = inputs.get(0)?;
        let rank = x.shape.len();
        let mut drop = vec![self.dims.is_empty(); rank];
        for &d in &self.dims {
            let a = axis(d as i64, rank)?;
            if x.shape[a] != 1 {
                return Err(format!("cannot squeeze axis {a} of shape {:?}", x.shape));
            }
            drop[a] = true;
        }
        let shape = x
            .shape
            .iter()
            .zip(&drop)
            .filter(|&(&d, &dropped)| !(dropped && d == 1))
            .map(|(&d, _)| d)
            .collect();
        Ok(vec![Out::new(x.dtype(), shape)])
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        copy_values(inputs, outputs)
    }
}

pub(super) fn build_expand_dims(_: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    Ok(Box::new(ExpandDims))
}

struct ExpandDims;

impl Op for ExpandDims {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(2..=2)?;
        let x = inputs.get(0)?;
        let (axes, _) = inputs.int_constant(1, "axis")?;
        let [a] = axes[..] else {
            return Err(format!("the axis must be one value, got {axes:?}"));
        };
        let mut shape = x.shape.clone();
        shape.insert(axis(a, shape.len() + 1)?, 1);
        Ok(vec![Out::new(x.dtype(), shape)])
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        copy_values(inputs, outputs)
    }
}

pub(super) fn build_shape(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    let dtype = match options!(options, ShapeOptions).map_or(TensorType::Int32, |o| o.out_type) {
        TensorType::Int32 => DType::I32,
        TensorType::Int64 => DType::I64,
        other => return Err(format!("shapes of type {other:?} are not supported")),
    };
    Ok(Box::new(ShapeOf { dtype }))
}

struct ShapeOf {
    dtype: DType,
}

impl Op for ShapeOf {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(1..=1)?;
        let dims = &inputs.get(0)?.shape;
        let value = match self.dtype {
            DType::I64 => Data::I64(dims.iter().map(|&d| d as i64).collect()),
            _ => Data::I32(
                dims.iter()
                    .map(|&d| {
                        i32::try_from(d).map_err(|_| format!("dimension {d} does not fit INT32"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(vec![Out {
            dtype: self.dtype,
            shape: vec![dims.len()],
            value: Some(value),
        }])
    }

    fn eval(&mut self, _: &[Option<&Tensor>], _: &mut [Tensor]) -> Result<(), String> {
        Err("SHAPE is computed when the model is prepared".into())
    }
}
