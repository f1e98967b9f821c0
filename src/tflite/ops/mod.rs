//! The operators petal runs. Convolution, pooling and fully-connected layers are the native
//! engine's own layers, built once from the file's weights (converted to Keras's layouts at load
//! time), so the interpreter runs exactly the kernels `petal predict` runs on native models.

mod conv;
mod elementwise;
mod fully_connected;
mod pool;
mod shape;

use super::options::{Fused, OpKind};
use super::parse::{Graph, OpSpec};
use super::tensor::{Data, Tensor};
use crate::nn::layers::Layer;
use crate::nn::Shape;

/// Values one op may produce per run: larger outputs are errors, not allocation failures.
const MAX_OUTPUT_VALUES: usize = 1 << 28;

/// The number of values of an output of `shape`, within [`MAX_OUTPUT_VALUES`].
fn output_len(shape: &[usize]) -> Result<usize, String> {
    Tensor::elements(shape)
        .filter(|&n| n <= MAX_OUTPUT_VALUES)
        .ok_or_else(|| format!("an output of shape {shape:?} is larger than petal handles"))
}

/// The height, width and channels of `layer`'s output, checked against the size limit and
/// against the output tensor's declared shape; `what` names the operator in errors.
fn checked_image_output(layer: &dyn Layer, io: &Io, what: &str) -> Result<[usize; 3], String> {
    let Shape::Image {
        height,
        width,
        channels,
    } = layer.output_shape()
    else {
        unreachable!("{what}s output images")
    };
    let out_shape = [height, width, channels];
    output_len(&out_shape)?;
    let declared = io.shape(io.output);
    if declared.len() == 4 && declared[1..] != out_shape {
        return Err(format!(
            "the output tensor is declared {declared:?}, but the {what} makes [N, {height}, {width}, {channels}]"
        ));
    }
    Ok(out_shape)
}

/// Runs a native image layer (convolution, pool) on the batch in tensor `input`, writing
/// tensor `output`, then applies `activation` where the layer does not fuse it itself.
fn run_image_layer(
    layer: &mut dyn Layer,
    tensors: &mut [Tensor],
    [input, output]: [usize; 2],
    [in_shape, out_shape]: [[usize; 3]; 2],
    activation: Fused,
) -> Result<(), String> {
    with_output(tensors, output, |tensors, out| {
        let batch = batch_of(&tensors[input], &in_shape, "input")?;
        let x = f32_input(tensors, input, "input")?;
        let shape = vec![batch, out_shape[0], out_shape[1], out_shape[2]];
        let len = output_len(&shape)?;
        let y = out.f32_mut(shape, len);
        layer.forward(x, y, batch, crate::nn::Mode::Infer);
        apply(activation, y);
        Ok(())
    })
}

/// One operator, ready to run: it reads its inputs from `tensors` and writes its outputs there.
pub(crate) trait Kernel: Send {
    fn run(&mut self, tensors: &mut [Tensor]) -> Result<(), String>;
}

/// Builds the kernel of `op`, checking its inputs' kinds and the shapes of its constants.
pub(crate) fn build(op: &OpSpec, graph: &Graph, name: String) -> Result<Box<dyn Kernel>, String> {
    let output = match op.outputs[..] {
        [o] => o,
        _ => return Err(format!("has {} outputs, expected 1", op.outputs.len())),
    };
    let io = Io {
        inputs: &op.inputs,
        output,
        graph,
    };
    Ok(match &op.kind {
        OpKind::Conv2D {
            stride,
            padding,
            activation,
        } => Box::new(conv::Conv::new(io, name, *stride, *padding, *activation)?),
        OpKind::MaxPool2D {
            filter,
            stride,
            padding,
            activation,
        } => Box::new(pool::MaxPool::new(
            io,
            name,
            *filter,
            *stride,
            *padding,
            *activation,
        )?),
        OpKind::FullyConnected {
            activation,
            keep_num_dims,
        } => Box::new(fully_connected::FullyConnected::new(
            io,
            name,
            *activation,
            *keep_num_dims,
        )?),
        OpKind::Reshape { new_shape } => Box::new(shape::Reshape::new(io, new_shape.clone())?),
        OpKind::Shape => Box::new(shape::ShapeOf::new(io)?),
        OpKind::StridedSlice {
            begin_mask,
            end_mask,
            shrink_axis_mask,
        } => Box::new(shape::StridedSlice::new(
            io,
            *begin_mask,
            *end_mask,
            *shrink_axis_mask,
        )?),
        OpKind::Pack { axis } => Box::new(shape::Pack::new(io, *axis)?),
        OpKind::Mul { activation } => Box::new(elementwise::Binary::new(
            io,
            elementwise::BinaryOp::Mul,
            *activation,
        )?),
        OpKind::Add { activation } => Box::new(elementwise::Binary::new(
            io,
            elementwise::BinaryOp::Add,
            *activation,
        )?),
        OpKind::Softmax { beta } => Box::new(elementwise::Softmax::new(io, *beta)?),
        OpKind::Logistic => Box::new(elementwise::Logistic::new(io)?),
    })
}

/// An op's tensor indices, with the graph to look up their declarations.
struct Io<'a> {
    inputs: &'a [Option<usize>],
    output: usize,
    graph: &'a Graph,
}

impl Io<'_> {
    /// Input `i`, which must be present.
    fn input(&self, i: usize) -> Result<usize, String> {
        self.inputs
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| format!("input {i} is missing ({} inputs given)", self.inputs.len()))
    }

    fn optional(&self, i: usize) -> Option<usize> {
        self.inputs.get(i).copied().flatten()
    }

    fn expect_inputs(&self, range: std::ops::RangeInclusive<usize>) -> Result<(), String> {
        if range.contains(&self.inputs.len()) {
            Ok(())
        } else {
            Err(format!(
                "has {} inputs, expected {} to {}",
                self.inputs.len(),
                range.start(),
                range.end()
            ))
        }
    }

    fn shape(&self, t: usize) -> &[usize] {
        &self.graph.tensors[t].shape
    }

    /// The float values of constant input `i` and its shape.
    fn constant_f32(&self, i: usize, what: &str) -> Result<(&[f32], &[usize]), String> {
        let t = self.input(i)?;
        let spec = &self.graph.tensors[t];
        match &spec.data {
            Some(Data::F32(v)) => Ok((v, &spec.shape)),
            _ => Err(format!(
                "the {what} (tensor {t}, \"{}\") must be a constant FLOAT32 tensor",
                spec.name
            )),
        }
    }
}

/// Runs `f` with the output tensor taken out of `tensors`, so it can read the inputs while it
/// writes the output (the dataflow check proved an op never reads its own output).
fn with_output(
    tensors: &mut [Tensor],
    output: usize,
    f: impl FnOnce(&[Tensor], &mut Tensor) -> Result<(), String>,
) -> Result<(), String> {
    let mut out = std::mem::take(&mut tensors[output]);
    let result = f(tensors, &mut out);
    tensors[output] = out;
    result
}

fn f32_input<'t>(tensors: &'t [Tensor], t: usize, what: &str) -> Result<&'t [f32], String> {
    tensors[t].as_f32().ok_or_else(|| {
        format!(
            "the {what} must be FLOAT32, got {}",
            tensors[t].dtype().name()
        )
    })
}

fn apply(activation: Fused, values: &mut [f32]) {
    match activation {
        Fused::None => {}
        Fused::Relu => values.iter_mut().for_each(|v| *v = v.max(0.0)),
    }
}

/// The native engine's activation for a fused one.
fn native(activation: Fused) -> crate::nn::activation::Activation {
    match activation {
        Fused::None => crate::nn::activation::Activation::Linear,
        Fused::Relu => crate::nn::activation::Activation::Relu,
    }
}

fn native_padding(p: super::options::Padding) -> crate::nn::layers::Padding {
    match p {
        super::options::Padding::Same => crate::nn::layers::Padding::Same,
        super::options::Padding::Valid => crate::nn::layers::Padding::Valid,
    }
}

/// Height, width and channels of a 4-D NHWC shape.
fn image_shape(shape: &[usize], what: &str) -> Result<(usize, usize, usize), String> {
    match *shape {
        [_, h, w, c] if h > 0 && w > 0 && c > 0 => Ok((h, w, c)),
        _ => Err(format!(
            "the {what} must have a 4-D (batch, height, width, channels) shape, got {shape:?}"
        )),
    }
}

/// The batch size of `t` when it is `[n, rest…]` with `rest` what the kernel was built for.
fn batch_of(t: &Tensor, rest: &[usize], what: &str) -> Result<usize, String> {
    match t.shape.split_first() {
        Some((&n, tail)) if tail == rest && n > 0 => Ok(n),
        _ => Err(format!(
            "the {what} has shape {:?}, but the model was prepared for [N, {}]",
            t.shape,
            rest.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
