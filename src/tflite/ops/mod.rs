//! The operators petal runs, one file per family. Each op is built from its builtin options when
//! the model loads ([`registry`]), prepared whenever the input shapes change (types and shapes
//! checked, output shapes worked out, scratch sized), then evaluated on every run. The kernels are
//! plain functions over slices, shared with the training engine where it has them.

mod activation;
mod binary;
mod concatenation;
mod conv;
mod depthwise_conv;
mod dequantize;
mod fully_connected;
pub(crate) mod fused_activation;
mod gather;
mod pad;
mod padding;
mod pool;
mod quantize;
mod quantized;
mod reduce;
pub(crate) mod registry;
mod reshape;
mod softmax;
mod strided_slice;
mod transpose;

use super::tensor::{DType, Data, Tensor};

/// An element-wise activation as a function over FLOAT32 values in place, which the op before
/// it may apply to its output as it writes it (see `crate::tflite::fusion`).
pub(crate) type InPlace = std::sync::Arc<dyn Fn(&mut [f32]) + Send + Sync>;

/// A quantized MUL as the function of its two stored inputs (in its operands' order) that
/// gives its stored output, clamp included.
pub(crate) type StoredProduct = std::sync::Arc<dyn Fn(i32, i32) -> i32 + Send + Sync>;

/// The MUL of a LOGISTIC's output by its input that the LOGISTIC takes over (see
/// `crate::tflite::fusion`): a float product, or a quantized one as the function of the stored
/// input and the stored σ(x).
pub(crate) enum InputProduct {
    Float,
    Stored(StoredProduct),
}

/// A float DEPTHWISE_CONV_2D that the 1×1 CONV_2D making its input may do instead, a band of
/// rows at a time (see `crate::tflite::fusion`): its geometry, filter and bias, and the
/// activation after it that it applies.
#[derive(Clone)]
pub(crate) struct DepthwiseStage {
    pub depthwise: crate::nn::kernels::depthwise::Depthwise,
    pub filter: std::sync::Arc<[f32]>,
    pub bias: Option<std::sync::Arc<[f32]>>,
    pub then: Option<InPlace>,
}

/// A float ADD of two tensors of one shape that the op making one of them may do instead,
/// adding the other (the skip of a residual connection) to each block of its output as it
/// writes it (see `crate::tflite::fusion`): the ADD's activation range, and whether the skip is
/// its first operand.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResidualAdd {
    pub range: (f32, f32),
    pub skip_first: bool,
}

/// The fused activation an op keeps, as its kernels take it.
pub(crate) fn then_apply_of(then: &Option<InPlace>) -> crate::nn::kernels::ThenApply<'_> {
    then.as_deref().map(|f| f as &(dyn Fn(&mut [f32]) + Sync))
}

/// Values one op may produce: larger outputs are errors, not allocation failures.
pub(crate) const MAX_OUTPUT_VALUES: usize = 1 << 28;

/// One operator, ready to prepare and run.
pub(crate) trait Op: Send {
    /// Checks the inputs' types and shapes and works out the outputs'. Runs again whenever an
    /// input's shape changes; whatever [`Op::eval`] relies on is checked here.
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String>;
    /// Computes the outputs, whose shapes, types and buffers are those `prepare` gave.
    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String>;
    /// For a max-pool that the op before it may do instead (see [`TilingMaxPool`]): its window.
    fn tiling_max_pool(&self) -> Option<TilingMaxPool> {
        None
    }
    /// Asks the op, once prepared, to write its output max-pooled by `pool` (in the pool's
    /// output tensor, the pool then not running), or plainly with `None`. Returns whether it
    /// will pool.
    fn pool_output(&mut self, _pool: Option<TilingMaxPool>) -> bool {
        false
    }
    /// Whether the op, once prepared, is a FLOAT32 MUL of two inputs of one shape with no fused
    /// activation: one a LOGISTIC before it may do instead, as x·σ(x).
    fn is_plain_float_product(&self) -> bool {
        false
    }
    /// The op, once prepared, as [`StoredProduct`] when it is a quantized MUL of two inputs of
    /// one shape: one a LOGISTIC before it may do instead, by a table of its 256 inputs.
    fn stored_product(&self) -> Option<StoredProduct> {
        None
    }
    /// Asks a LOGISTIC, once prepared, to write x·σ(x) (swish, in the output tensor of the MUL
    /// it takes over, which then does not run) as `product` computes it, or plainly σ(x) with
    /// `None`. Returns whether it will multiply.
    fn multiply_by_input(&mut self, _product: Option<InputProduct>) -> bool {
        false
    }
    /// The op, once prepared, as a function over its FLOAT32 values in place, when it is an
    /// element-wise activation of one FLOAT32 input.
    fn in_place(&self) -> Option<InPlace> {
        None
    }
    /// Asks the op, once prepared, to apply `then` to its FLOAT32 output as it writes it (the
    /// activation after it, in that op's output tensor; the activation then does not run), or
    /// nothing more with `None`. Returns whether it will.
    fn then_apply(&mut self, _then: Option<InPlace>) -> bool {
        false
    }
    /// The op's activation range, once prepared, when it is a float ADD of two inputs of one
    /// shape (a residual connection's).
    fn residual_range(&self) -> Option<(f32, f32)> {
        None
    }
    /// Asks a convolution, once prepared, to add the skip tensor (its last input, which the
    /// interpreter then passes it) to its output as `add` does, in the ADD's output tensor
    /// (the ADD then not running), or nothing more with `None`. Returns whether it will.
    fn add_residual(&mut self, _add: Option<ResidualAdd>) -> bool {
        false
    }
    /// The op, once prepared, as [`DepthwiseStage`] when it is a float depthwise convolution.
    fn depthwise_stage(&self) -> Option<DepthwiseStage> {
        None
    }
    /// Asks a convolution, once prepared, to write the depthwise convolution `stage` of its
    /// output (in that op's output tensor, the depthwise convolution then not running), or
    /// plainly its own output with `None`. Returns whether it will.
    fn expand_into(&mut self, _stage: Option<DepthwiseStage>) -> bool {
        false
    }
}

/// A MAX_POOL_2D whose windows tile its input (as large as their strides, none in the
/// padding, no fused activation): it only picks values, so the op that makes its input can
/// write the maxima straight away (see `crate::tflite::fusion`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TilingMaxPool {
    pub rows: usize,
    pub cols: usize,
}

/// An output as `prepare` works it out: its type and shape, and its values when they are already
/// known (SHAPE knows them from its input's shape alone).
pub(crate) struct Out {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub value: Option<Data>,
}

impl Out {
    pub fn new(dtype: DType, shape: Vec<usize>) -> Self {
        Out {
            dtype,
            shape,
            value: None,
        }
    }

    pub fn f32(shape: Vec<usize>) -> Self {
        Out::new(DType::F32, shape)
    }
}

/// An op's inputs as `prepare` sees them: types and shapes of all, values of those known before
/// running (constants, and what ops on constants computed).
pub(crate) struct Inputs<'a> {
    pub(crate) tensors: &'a [Tensor],
    pub(crate) known: &'a [bool],
    pub(crate) indices: &'a [Option<usize>],
    /// The op's output tensors, as the file declares them (type and quantization).
    pub(crate) outputs: &'a [usize],
}

impl<'a> Inputs<'a> {
    pub fn count(&self) -> usize {
        self.indices.len()
    }

    pub fn expect_count(&self, range: std::ops::RangeInclusive<usize>) -> Result<(), String> {
        if range.contains(&self.count()) {
            Ok(())
        } else if range.start() == range.end() {
            Err(format!(
                "has {} inputs, expected {}",
                self.count(),
                range.start()
            ))
        } else {
            Err(format!(
                "has {} inputs, expected {} to {}",
                self.count(),
                range.start(),
                range.end()
            ))
        }
    }

    /// Input `i`, which must be present.
    pub fn get(&self, i: usize) -> Result<&'a Tensor, String> {
        self.optional(i)
            .ok_or_else(|| format!("input {i} is missing ({} inputs given)", self.count()))
    }

    pub fn optional(&self, i: usize) -> Option<&'a Tensor> {
        self.indices
            .get(i)
            .copied()
            .flatten()
            .map(|t| &self.tensors[t])
    }

    /// Output `i` as the file declares it: its type and quantization (its shape is prepare's
    /// to work out).
    pub fn output(&self, i: usize) -> Result<&'a Tensor, String> {
        self.outputs
            .get(i)
            .map(|&t| &self.tensors[t])
            .ok_or_else(|| {
                format!(
                    "output {i} is missing ({} outputs listed)",
                    self.outputs.len()
                )
            })
    }

    /// Input `i`'s values, when known before running.
    pub fn value(&self, i: usize) -> Option<&'a Tensor> {
        let t = self.indices.get(i).copied().flatten()?;
        self.known[t].then(|| &self.tensors[t])
    }

    /// Input `i` (the `what`): FLOAT32 values known before running (weights).
    pub fn f32_constant(&self, i: usize, what: &str) -> Result<(&'a [f32], &'a [usize]), String> {
        match self.value(i) {
            Some(t) => match t.as_f32() {
                Some(v) => Ok((v, &t.shape)),
                None => Err(format!("the {what} must be FLOAT32, got {}", t.dtype())),
            },
            None if self.optional(i).is_some() => Err(format!(
                "the {what} must be a constant (computed at run time here)"
            )),
            None => Err(format!("the {what} (input {i}) is missing")),
        }
    }

    /// Input `i`, an optional FLOAT32 bias of `len` values known before running.
    pub fn f32_bias(&self, i: usize, len: usize) -> Result<Option<&'a [f32]>, String> {
        if self.optional(i).is_none() {
            return Ok(None);
        }
        match self.f32_constant(i, "bias")? {
            (bias, [n]) if *n == len => Ok(Some(bias)),
            (_, shape) => Err(format!("the bias has shape {shape:?}, expected [{len}]")),
        }
    }

    /// Input `i` (the `what`): INT32 or INT64 values known before running (axes, shapes,
    /// paddings).
    pub fn int_constant(&self, i: usize, what: &str) -> Result<(Vec<i64>, &'a [usize]), String> {
        let t = self
            .value(i)
            .ok_or_else(|| format!("the {what} must be a constant"))?;
        let values = match &t.data {
            Data::I32(v) => v.iter().map(|&x| x as i64).collect(),
            Data::I64(v) => v.clone(),
            _ => {
                return Err(format!(
                    "the {what} must be INT32 or INT64, got {}",
                    t.dtype()
                ))
            }
        };
        Ok((values, &t.shape))
    }
}

/// Input `i` as floats in `eval`; `prepare` checked the type, so an error here is a bug's guard.
pub(crate) fn f32_in<'t>(inputs: &[Option<&'t Tensor>], i: usize) -> Result<&'t [f32], String> {
    inputs
        .get(i)
        .copied()
        .flatten()
        .and_then(Tensor::as_f32)
        .ok_or_else(|| format!("input {i} is not the FLOAT32 tensor prepared"))
}

pub(crate) fn f32_out(outputs: &mut [Tensor], i: usize) -> Result<&mut [f32], String> {
    outputs
        .get_mut(i)
        .and_then(Tensor::as_f32_mut)
        .ok_or_else(|| format!("output {i} is not the FLOAT32 tensor prepared"))
}

/// Checks `shape` against [`MAX_OUTPUT_VALUES`].
pub(crate) fn checked(shape: Vec<usize>) -> Result<Vec<usize>, String> {
    match Tensor::elements(&shape) {
        Some(n) if n <= MAX_OUTPUT_VALUES => Ok(shape),
        _ => Err(format!(
            "an output of shape {shape:?} is larger than petal handles"
        )),
    }
}

/// An axis given as TensorFlow Lite does (negative counts from the end), within `rank`.
pub(crate) fn axis(axis: i64, rank: usize) -> Result<usize, String> {
    let resolved = if axis < 0 { axis + rank as i64 } else { axis };
    usize::try_from(resolved)
        .ok()
        .filter(|&a| a < rank)
        .ok_or_else(|| format!("axis {axis} is out of range for rank {rank}"))
}

/// The 4-D NHWC shape of an image input.
pub(crate) fn nhwc(t: &Tensor, what: &str) -> Result<[usize; 4], String> {
    match t.shape[..] {
        // Kernels walk images of h·w·c values: an empty image would be a zero-sized step.
        [n, h, w, c] if h > 0 && w > 0 && c > 0 => Ok([n, h, w, c]),
        _ => Err(format!(
            "the {what} must be 4-D (batch, height, width, channels), none empty, got {:?}",
            t.shape
        )),
    }
}

/// The builtin options of `$variant`, or an error when the file gave options of another kind.
/// Evaluates to `Option<&Options>`: `None` when the file gave none.
macro_rules! options {
    ($options:expr, $variant:ident) => {
        match $options {
            Some($crate::tflite::schema::BuiltinOptions::$variant(o)) => Some(&**o),
            None => None,
            Some(_) => {
                return Err(concat!("its options are not ", stringify!($variant)).to_string())
            }
        }
    };
}
pub(crate) use options;

/// Builds nothing: prepares `op` on `inputs` (all known) and runs it once, for unit tests.
#[cfg(test)]
pub(crate) fn run_single(op: Box<dyn Op>, inputs: &[&Tensor]) -> Result<Tensor, String> {
    run_to(op, inputs, None)
}

/// As [`run_single`], with the output declared as `output` declares it (type, quantization).
#[cfg(test)]
pub(crate) fn run_to(
    mut op: Box<dyn Op>,
    inputs: &[&Tensor],
    output: Option<&Tensor>,
) -> Result<Tensor, String> {
    let mut tensors: Vec<Tensor> = inputs.iter().map(|&t| t.clone()).collect();
    let known = vec![true; tensors.len()];
    let indices: Vec<Option<usize>> = (0..tensors.len()).map(Some).collect();
    let outputs: Vec<usize> = output.map(|_| tensors.len()).into_iter().collect();
    tensors.extend(output.cloned());
    let view = Inputs {
        tensors: &tensors,
        known: &known,
        indices: &indices,
        outputs: &outputs,
    };
    let mut outs = op.prepare(&view)?;
    let out = outs.remove(0);
    let quantization = output.and_then(|t| t.quantization.clone());
    if let Some(value) = out.value {
        return Ok(Tensor::new(out.shape, value));
    }
    let mut data = out.dtype.empty();
    data.resize(Tensor::elements(&out.shape).ok_or("overflow")?);
    let mut outputs = vec![Tensor {
        shape: out.shape,
        data,
        quantization,
    }];
    let refs: Vec<Option<&Tensor>> = tensors.iter().map(Some).collect();
    op.eval(&refs, &mut outputs)?;
    Ok(outputs.remove(0))
}
