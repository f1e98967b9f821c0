//! MUL and ADD (same shapes, or one side a single value), SOFTMAX and LOGISTIC.

use super::{apply, f32_input, with_output, Io, Kernel};
use crate::nn::activation::softmax_in_place;
use crate::tflite::options::Fused;
use crate::tflite::tensor::{DType, Tensor};

#[derive(Clone, Copy)]
pub(super) enum BinaryOp {
    Mul,
    Add,
}

pub(super) struct Binary {
    op: BinaryOp,
    activation: Fused,
    a: usize,
    b: usize,
    output: usize,
}

impl Binary {
    pub(super) fn new(io: Io, op: BinaryOp, activation: Fused) -> Result<Self, String> {
        io.expect_inputs(2..=2)?;
        let (a, b) = (io.input(0)?, io.input(1)?);
        for t in [a, b] {
            if io.graph.tensors[t].dtype != DType::F32 {
                return Err("only FLOAT32 inputs are supported".into());
            }
        }
        Ok(Binary {
            op,
            activation,
            a,
            b,
            output: io.output,
        })
    }
}

impl Kernel for Binary {
    fn run(&mut self, tensors: &mut [Tensor]) -> Result<(), String> {
        let (op, activation, a, b) = (self.op, self.activation, self.a, self.b);
        with_output(tensors, self.output, |tensors, out| {
            let (x, y) = (
                f32_input(tensors, a, "first input")?,
                f32_input(tensors, b, "second input")?,
            );
            let (sa, sb) = (&tensors[a].shape, &tensors[b].shape);
            let f = |p: f32, q: f32| match op {
                BinaryOp::Mul => p * q,
                BinaryOp::Add => p + q,
            };
            if sa == sb {
                let z = out.f32_mut(sa.clone(), x.len());
                z.iter_mut()
                    .zip(x.iter().zip(y))
                    .for_each(|(z, (&p, &q))| *z = f(p, q));
            } else if y.len() == 1 && sb.len() <= sa.len() {
                let z = out.f32_mut(sa.clone(), x.len());
                z.iter_mut().zip(x).for_each(|(z, &p)| *z = f(p, y[0]));
            } else if x.len() == 1 && sa.len() <= sb.len() {
                let z = out.f32_mut(sb.clone(), y.len());
                z.iter_mut().zip(y).for_each(|(z, &q)| *z = f(x[0], q));
            } else {
                return Err(format!(
                    "broadcasting {sa:?} with {sb:?} is not supported (only equal shapes or a single value)"
                ));
            }
            let Some(z) = out.as_f32_mut() else {
                unreachable!("written as FLOAT32 above")
            };
            apply(activation, z);
            Ok(())
        })
    }
}

pub(super) struct Softmax {
    beta: f32,
    input: usize,
    output: usize,
}

impl Softmax {
    pub(super) fn new(io: Io, beta: f32) -> Result<Self, String> {
        io.expect_inputs(1..=1)?;
        Ok(Softmax {
            beta,
            input: io.input(0)?,
            output: io.output,
        })
    }
}

impl Kernel for Softmax {
    fn run(&mut self, tensors: &mut [Tensor]) -> Result<(), String> {
        let (input, beta) = (self.input, self.beta);
        with_output(tensors, self.output, |tensors, out| {
            let x = f32_input(tensors, input, "input")?;
            let shape = tensors[input].shape.clone();
            let row = match shape.last() {
                Some(&n) if n > 0 => n,
                _ => return Err(format!("cannot take a softmax over shape {shape:?}")),
            };
            let y = out.f32_mut(shape, x.len());
            y.iter_mut().zip(x).for_each(|(y, &v)| *y = v * beta);
            y.chunks_exact_mut(row).for_each(softmax_in_place);
            Ok(())
        })
    }
}

pub(super) struct Logistic {
    input: usize,
    output: usize,
}

impl Logistic {
    pub(super) fn new(io: Io) -> Result<Self, String> {
        io.expect_inputs(1..=1)?;
        Ok(Logistic {
            input: io.input(0)?,
            output: io.output,
        })
    }
}

impl Kernel for Logistic {
    fn run(&mut self, tensors: &mut [Tensor]) -> Result<(), String> {
        let input = self.input;
        with_output(tensors, self.output, |tensors, out| {
            let x = f32_input(tensors, input, "input")?;
            let y = out.f32_mut(tensors[input].shape.clone(), x.len());
            y.iter_mut()
                .zip(x)
                .for_each(|(y, &v)| *y = 1.0 / (1.0 + (-v).exp()));
            Ok(())
        })
    }
}
