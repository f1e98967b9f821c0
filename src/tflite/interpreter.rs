//! Running a `.tflite` model: the shape of TensorFlow Lite's Python API
//! (`Interpreter(model_path=…)`, `get_signature_list()`, `get_signature_runner(key)(**inputs)`).
//!
//! ```no_run
//! use petal::tflite::{Interpreter, Tensor};
//! let mut interpreter = Interpreter::from_file("model.tflite".as_ref())?;
//! println!("{:?}", interpreter.signature_list());
//! let mut runner = interpreter.signature_runner("serving_default")?;
//! let image = Tensor::f32(vec![1, 180, 180, 3], vec![0.0; 180 * 180 * 3]);
//! let outputs = runner.run(&[("sequential_input", &image)])?;
//! println!("{:?}", outputs["outputs"].as_f32());
//! # Ok::<(), petal::Error>(())
//! ```

use super::fusion;
use super::ops::{registry, Inputs, Op, MAX_OUTPUT_VALUES};
use super::parse::{self, Graph};
use super::tensor::{DType, Data, Quantization, Tensor};
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Bytes all of one run's intermediate tensors may take together: a file whose shapes work out
/// to more is refused when prepared instead of exhausting memory.
const MAX_ACTIVATION_BYTES: usize = 1 << 33;

/// A tensor's declaration: name, type, shape (`shape_signature` has -1 where the size may vary).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub shape_signature: Vec<i32>,
    pub quantization: Option<Quantization>,
}

/// One signature's named inputs and outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureInfo {
    pub key: String,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
}

/// An operator in the graph: what it computes and which tensors it reads and writes.
struct Node {
    op: Box<dyn Op>,
    inputs: Vec<Option<usize>>,
    outputs: Vec<usize>,
}

impl fusion::Fusible for Node {
    fn op(&mut self) -> &mut dyn Op {
        self.op.as_mut()
    }
    fn inputs(&self) -> &[Option<usize>] {
        &self.inputs
    }
    fn outputs(&self) -> &[usize] {
        &self.outputs
    }
}

/// What preparing worked out for the current input shapes.
#[derive(Default)]
struct Plan {
    /// The input shapes prepared for; empty until prepared.
    input_shapes: Vec<Vec<usize>>,
    /// Per node: whether it runs (false when preparing computed its outputs already).
    runs: Vec<bool>,
    /// Per node: the tensors nothing reads after it, whose buffers go back to the pool.
    release: Vec<Vec<usize>>,
    /// Per node: the tensors it writes, those of the node it took over when fused.
    writes: Vec<Vec<usize>>,
    /// Per node: the tensors it reads, its inputs and, fused, what the node it took over
    /// reads besides its output (a residual ADD's skip, after them).
    reads: Vec<Vec<Option<usize>>>,
}

pub struct Interpreter {
    origin: String,
    description: String,
    infos: Vec<TensorInfo>,
    signatures: Vec<parse::Signature>,
    op_names: Vec<String>,
    constant_bytes: usize,
    metadata: Vec<(String, Vec<u8>)>,
    nodes: Vec<Node>,
    tensors: Vec<Tensor>,
    /// Tensors with values in the file.
    constant: Vec<bool>,
    graph_inputs: Vec<usize>,
    /// Tensors the caller reads after a run (model and signature outputs), never recycled.
    kept: Vec<bool>,
    plan: Plan,
    /// Keep every intermediate tensor after a run (LiteRT's `experimental_preserve_all_tensors`).
    preserve_all_tensors: bool,
    /// Per node, the time its runs took in all, when profiling.
    op_times: Option<Vec<std::time::Duration>>,
    /// Buffers of tensors no later op reads, for the outputs of the ops after them.
    pool: Vec<Data>,
}

impl Interpreter {
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// `origin` names the model in errors (a file name, or where the bytes came from).
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Self> {
        let error = |reason: String| Error::TfLite {
            origin: origin.to_owned(),
            reason,
        };
        let graph = parse::parse(bytes).map_err(error)?;
        // Denormal arithmetic is dozens of times slower on x86; flushing changes only values
        // below 1.2e-38, far under the agreement with LiteRT's kernels that matters.
        crate::nn::denormals::flush_denormals_to_zero();
        let mut nodes = Vec::with_capacity(graph.ops.len());
        for (n, op) in graph.ops.iter().enumerate() {
            let built =
                registry::build(&op.code, op.version, op.options.as_ref()).map_err(|e| {
                    error(format!(
                        "operator {n} ({} v{}): {e}",
                        op.code.name(),
                        op.version
                    ))
                })?;
            nodes.push(Node {
                op: built,
                inputs: op.inputs.clone(),
                outputs: op.outputs.clone(),
            });
        }
        let op_names = graph.ops.iter().map(|op| op.code.name()).collect();
        let Graph {
            description,
            signatures,
            metadata,
            tensors: specs,
            inputs: graph_inputs,
            outputs: graph_outputs,
            ..
        } = graph;
        let constant_bytes = specs
            .iter()
            .filter_map(|t| t.data.as_ref())
            .map(|d| d.len() * d.dtype().size())
            .sum();
        let infos = specs
            .iter()
            .map(|t| TensorInfo {
                name: t.name.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                shape_signature: t.shape_signature.clone(),
                quantization: t.quantization.clone(),
            })
            .collect();
        let constant = specs.iter().map(|t| t.data.is_some()).collect();
        let mut kept = vec![false; specs.len()];
        let signature_outputs = signatures
            .iter()
            .flat_map(|s| s.outputs.iter().map(|o| o.1));
        for t in graph_outputs.iter().copied().chain(signature_outputs) {
            kept[t] = true;
        }
        let tensors = specs
            .into_iter()
            .map(|t| Tensor {
                data: t.data.unwrap_or_else(|| t.dtype.empty()),
                shape: t.shape,
                quantization: t.quantization,
            })
            .collect();
        let mut interpreter = Interpreter {
            origin: origin.to_owned(),
            description,
            infos,
            signatures,
            op_names,
            constant_bytes,
            metadata,
            nodes,
            tensors,
            constant,
            graph_inputs,
            kept,
            plan: Plan::default(),
            preserve_all_tensors: false,
            op_times: None,
            pool: Vec::new(),
        };
        // Prepared for the declared input shapes now, so a file whose shapes do not work out is
        // refused when it loads; unless an input's size beyond the batch may vary (-1 in its
        // shape signature), when the declared shape may be a placeholder (1×1 for any image
        // size) and the sizes the caller gives are prepared at the first run.
        let declared: Vec<Vec<usize>> = interpreter
            .graph_inputs
            .iter()
            .map(|&t| interpreter.infos[t].shape.clone())
            .collect();
        for (&t, shape) in interpreter.graph_inputs.iter().zip(&declared) {
            interpreter.tensors[t].shape = shape.clone();
        }
        if let Err(reason) = interpreter.prepare() {
            // The batch (first) dimension is -1 in almost every converted model; only other
            // dynamic dimensions make the declared shape a placeholder.
            let resizable = interpreter.graph_inputs.iter().any(|&t| {
                let signature = &interpreter.infos[t].shape_signature;
                signature.iter().skip(1).any(|&d| d == -1)
            });
            if !resizable {
                return Err(error(reason));
            }
        }
        Ok(interpreter)
    }

    /// Works out every tensor's type and shape from the inputs' shapes, computes what depends
    /// only on constants and shapes, and plans which buffers each op may reuse.
    fn prepare(&mut self) -> std::result::Result<(), String> {
        self.plan = Plan::default();
        // Buffers sized for the last input shapes would not be recycled for the new ones.
        self.pool.clear();
        let count = self.tensors.len();
        let mut known = self.constant.clone();
        let is_input = |t: usize| self.graph_inputs.contains(&t);
        for t in (0..count).filter(|&t| !self.constant[t] && !is_input(t)) {
            self.tensors[t].data = self.infos[t].dtype.empty();
        }
        let mut runs = Vec::with_capacity(self.nodes.len());
        let mut activation_bytes = 0usize;
        for (n, node) in self.nodes.iter_mut().enumerate() {
            let what = |e: String| format!("operator {n} ({}): {e}", self.op_names[n]);
            let outs = node
                .op
                .prepare(&Inputs {
                    tensors: &self.tensors,
                    known: &known,
                    indices: &node.inputs,
                    outputs: &node.outputs,
                })
                .map_err(what)?;
            if outs.len() != node.outputs.len() {
                return Err(what(format!(
                    "makes {} outputs, but the file lists {}",
                    outs.len(),
                    node.outputs.len()
                )));
            }
            let mut all_known = true;
            for (&t, out) in node.outputs.iter().zip(outs) {
                let declared = self.infos[t].dtype;
                if out.dtype != declared {
                    return Err(what(format!(
                        "makes {}, but the file declares its output tensor {t} (\"{}\") as {declared}",
                        out.dtype, self.infos[t].name
                    )));
                }
                let len = Tensor::elements(&out.shape)
                    .filter(|&len| len <= MAX_OUTPUT_VALUES)
                    .ok_or_else(|| {
                        what(format!(
                            "an output of shape {:?} is larger than petal handles",
                            out.shape
                        ))
                    })?;
                activation_bytes = activation_bytes.saturating_add(len * declared.size());
                if activation_bytes > MAX_ACTIVATION_BYTES {
                    return Err(what(format!(
                        "the model's intermediate tensors need more than {MAX_ACTIVATION_BYTES} bytes"
                    )));
                }
                let tensor = &mut self.tensors[t];
                tensor.shape = out.shape;
                known[t] = out.value.is_some();
                all_known &= known[t];
                if let Some(value) = out.value {
                    tensor.data = value;
                }
            }
            let inputs_known = node.inputs.iter().flatten().all(|&t| known[t]);
            let runs_later = if all_known {
                false
            } else if inputs_known && !node.inputs.is_empty() {
                // Depends on constants only (DEQUANTIZE of float16 weights, shape arithmetic):
                // computed once here.
                let (inputs, outputs) = (node.inputs.clone(), node.outputs.clone());
                let io = (&inputs[..], &outputs[..]);
                eval_node(node, io, &mut self.tensors, &mut self.pool).map_err(what)?;
                node.outputs.iter().for_each(|&t| known[t] = true);
                false
            } else {
                true
            };
            runs.push(runs_later);
        }
        // The calibrator reads every intermediate tensor, which fused ops skip.
        let fuse = !self.preserve_all_tensors;
        let take_overs = fusion::take_overs(&mut self.nodes, &mut runs, &self.kept, fuse);
        let fused = &take_overs.taken;
        self.plan.reads = (self.nodes.iter().zip(&take_overs.extra_input))
            .map(|(node, extra)| node.inputs.iter().copied().chain(extra.map(Some)).collect())
            .collect();
        // A node writes the outputs of the last node in its chain of takeovers (a convolution
        // taking over a LOGISTIC that took over a MUL writes the MUL's).
        let last_taken = |mut n: usize| {
            while let Some(m) = fused[n] {
                n = m;
            }
            n
        };
        self.plan.writes = (0..self.nodes.len())
            .map(|n| self.nodes[last_taken(n)].outputs.clone())
            .collect();
        self.plan.release = self.release_lists(&runs, &known);
        self.plan.runs = runs;
        self.plan.input_shapes = self
            .graph_inputs
            .iter()
            .map(|&t| self.tensors[t].shape.clone())
            .collect();
        Ok(())
    }

    /// For each node, the intermediate tensors whose last reader (or, if nothing reads them,
    /// whose writer) it is.
    fn release_lists(&self, runs: &[bool], known: &[bool]) -> Vec<Vec<usize>> {
        let mut last = vec![None; self.tensors.len()];
        for n in (0..self.nodes.len()).filter(|&n| runs[n]) {
            for &t in self.plan.writes[n]
                .iter()
                .chain(self.plan.reads[n].iter().flatten())
            {
                last[t] = Some(n);
            }
        }
        let mut release = vec![Vec::new(); self.nodes.len()];
        for (t, last) in last.into_iter().enumerate() {
            let recyclable = !self.preserve_all_tensors
                && !known[t]
                && !self.kept[t]
                && !self.graph_inputs.contains(&t);
            if let (Some(n), true) = (last, recyclable) {
                release[n].push(t);
            }
        }
        release
    }

    /// Every signature with its inputs and outputs, in the file's order.
    pub fn signature_list(&self) -> Vec<SignatureInfo> {
        self.signatures
            .iter()
            .map(|s| SignatureInfo {
                key: s.key.clone(),
                inputs: s.inputs.iter().map(|(n, t)| self.info(n, *t)).collect(),
                outputs: s.outputs.iter().map(|(n, t)| self.info(n, *t)).collect(),
            })
            .collect()
    }

    fn info(&self, name: &str, tensor: usize) -> TensorInfo {
        TensorInfo {
            name: name.to_owned(),
            ..self.infos[tensor].clone()
        }
    }

    pub fn signature_runner(&mut self, key: &str) -> Result<SignatureRunner<'_>> {
        let signature = self
            .signatures
            .iter()
            .position(|s| s.key == key)
            .ok_or_else(|| {
                let keys: Vec<&str> = self.signatures.iter().map(|s| s.key.as_str()).collect();
                self.error(format!("no signature \"{key}\"; the model has {keys:?}"))
            })?;
        Ok(SignatureRunner {
            interpreter: self,
            signature,
        })
    }

    /// Keeps every intermediate tensor readable through [`Interpreter::tensor`] after a run,
    /// at the cost of the memory their buffers would have shared.
    pub fn preserve_all_tensors(&mut self, preserve: bool) {
        self.preserve_all_tensors = preserve;
        self.plan.input_shapes.clear();
    }

    /// Starts timing each operator (from zero), or stops.
    pub fn profile(&mut self, on: bool) {
        self.op_times = on.then(|| vec![std::time::Duration::ZERO; self.nodes.len()]);
    }

    /// Each operator's name and the time its runs took since profiling started, in graph
    /// order; empty when not profiling.
    pub fn op_times(&self) -> Vec<(&str, std::time::Duration)> {
        self.op_times
            .iter()
            .flatten()
            .zip(&self.op_names)
            .map(|(t, n)| (n.as_str(), *t))
            .collect()
    }

    /// Tensor `index` as the last run left it: constants, inputs and outputs always; the
    /// intermediate ones with [`Interpreter::preserve_all_tensors`] (otherwise they may be empty).
    pub fn tensor(&self, index: usize) -> Option<&Tensor> {
        self.tensors.get(index)
    }

    /// The operators in execution order, by TensorFlow Lite's names.
    pub fn op_names(&self) -> &[String] {
        &self.op_names
    }

    pub fn tensor_count(&self) -> usize {
        self.infos.len()
    }

    /// Bytes of constant data (weights and shapes).
    pub fn constant_bytes(&self) -> usize {
        self.constant_bytes
    }

    /// The bytes of the model's metadata entry `name` (e.g. [`CLASS_NAMES_METADATA`]).
    ///
    /// [`CLASS_NAMES_METADATA`]: super::CLASS_NAMES_METADATA
    pub fn metadata(&self, name: &str) -> Option<&[u8]> {
        self.metadata
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| &d[..])
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// Runs the ops prepare left to run, each output in a recycled buffer where one fits.
    fn eval(&mut self) -> Result<()> {
        for (n, node) in self.nodes.iter_mut().enumerate() {
            if !self.plan.runs[n] {
                continue;
            }
            let start = self.op_times.as_ref().map(|_| std::time::Instant::now());
            let io = (&self.plan.reads[n][..], &self.plan.writes[n][..]);
            eval_node(node, io, &mut self.tensors, &mut self.pool).map_err(|reason| {
                Error::TfLite {
                    origin: self.origin.clone(),
                    reason: format!("operator {n} ({}): {reason}", self.op_names[n]),
                }
            })?;
            if let (Some(times), Some(start)) = (&mut self.op_times, start) {
                times[n] += start.elapsed();
            }
            for &t in &self.plan.release[n] {
                let dtype = self.infos[t].dtype;
                self.pool
                    .push(std::mem::replace(&mut self.tensors[t].data, dtype.empty()));
            }
        }
        Ok(())
    }

    fn error(&self, reason: String) -> Error {
        Error::TfLite {
            origin: self.origin.clone(),
            reason,
        }
    }
}

/// Runs one signature: named inputs in, named outputs out.
pub struct SignatureRunner<'a> {
    interpreter: &'a mut Interpreter,
    signature: usize,
}

impl SignatureRunner<'_> {
    pub fn inputs(&self) -> Vec<TensorInfo> {
        self.interpreter.signature_list()[self.signature]
            .inputs
            .clone()
    }

    pub fn outputs(&self) -> Vec<TensorInfo> {
        self.interpreter.signature_list()[self.signature]
            .outputs
            .clone()
    }

    /// Runs the model on `inputs` (every input of the signature, by name). A dimension whose
    /// `shape_signature` is -1 (the batch) may take any size of at least 1.
    pub fn run(&mut self, inputs: &[(&str, &Tensor)]) -> Result<BTreeMap<String, Tensor>> {
        let it = &mut *self.interpreter;
        let signature = &it.signatures[self.signature];
        let expected: Vec<&str> = signature.inputs.iter().map(|(n, _)| n.as_str()).collect();
        if let Some((name, _)) = inputs.iter().find(|(n, _)| !expected.contains(n)) {
            return Err(it.error(format!(
                "signature \"{}\" has no input \"{name}\"; its inputs are {expected:?}",
                signature.key
            )));
        }
        for (name, tensor_index) in &signature.inputs {
            let given = match inputs.iter().filter(|(n, _)| n == name).collect::<Vec<_>>()[..] {
                [(_, t)] => *t,
                [] => {
                    return Err(it.error(format!(
                        "input \"{name}\" is missing; signature \"{}\" needs {expected:?}",
                        signature.key
                    )))
                }
                _ => return Err(it.error(format!("input \"{name}\" is given twice"))),
            };
            let info = &it.infos[*tensor_index];
            let shape_fits = given.shape.len() == info.shape.len()
                && given
                    .shape
                    .iter()
                    .zip(&info.shape)
                    .zip(&info.shape_signature)
                    .all(|((&g, &d), &s)| g == d || (s == -1 && g > 0));
            let len_fits = Tensor::elements(&given.shape) == Some(given.data.len());
            if given.dtype() != info.dtype || !shape_fits || !len_fits {
                return Err(it.error(format!(
                    "input \"{name}\" must be {} of shape {} (signature {:?}), got {} of shape {:?} with {} values",
                    info.dtype.name(),
                    format_shape(&info.shape),
                    info.shape_signature,
                    given.dtype().name(),
                    given.shape,
                    given.data.len()
                )));
            }
            let tensor = &mut it.tensors[*tensor_index];
            tensor.shape.clone_from(&given.shape);
            tensor.data.clone_from(&given.data);
        }
        let prepared = it
            .graph_inputs
            .iter()
            .map(|&t| &it.tensors[t].shape)
            .eq(it.plan.input_shapes.iter());
        if !prepared {
            it.prepare().map_err(|reason| Error::TfLite {
                origin: it.origin.clone(),
                reason,
            })?;
        }
        it.eval()?;
        let signature = &it.signatures[self.signature];
        Ok(signature
            .outputs
            .iter()
            .map(|(name, t)| (name.clone(), it.tensors[*t].clone()))
            .collect())
    }
}

/// Gives each of `outputs` (the node's, or those of the node it took over) a buffer of its
/// prepared type and size, then runs the node.
fn eval_node(
    node: &mut Node,
    (reads, outputs): (&[Option<usize>], &[usize]),
    tensors: &mut [Tensor],
    pool: &mut Vec<Data>,
) -> std::result::Result<(), String> {
    // Kernels slice their inputs by the prepared shapes: a tensor without those values (a
    // subgraph input no signature sets) must stop here.
    for &t in reads.iter().flatten() {
        let tensor = &tensors[t];
        if Tensor::elements(&tensor.shape) != Some(tensor.data.len()) {
            return Err(format!(
                "tensor {t} holds {} values, not the {:?} its shape {:?} needs (an input the \
                 signature does not set?)",
                tensor.data.len(),
                Tensor::elements(&tensor.shape),
                tensor.shape
            ));
        }
    }
    let targets = outputs;
    let mut outputs = Vec::with_capacity(targets.len());
    for &t in targets {
        let mut out = std::mem::take(&mut tensors[t]);
        // Prepare bounded every output's size.
        let len = Tensor::elements(&out.shape).unwrap_or(0);
        let dtype = out.data.dtype();
        // A tensor kept from the last run (an output, or any with preserve_all_tensors) keeps
        // its buffer.
        if out.data.len() != len {
            out.data = recycled(pool, dtype, len);
        }
        outputs.push(out);
    }
    let inputs: Vec<Option<&Tensor>> = reads.iter().map(|i| i.map(|t| &tensors[t])).collect();
    let result = node.op.eval(&inputs, &mut outputs);
    for (&t, out) in targets.iter().zip(outputs) {
        tensors[t] = out;
    }
    result
}

/// A buffer of `dtype` holding `len` values: a pooled one of exactly that length, else a new one.
/// Exact lengths keep the buffers in the cores' caches: an op splits its output over the threads
/// by rows, so a buffer's parts go back to the threads that wrote them last run, while
/// resizing would zero-fill on one thread and move the boundaries. Reading or writing a cache line
/// the other core wrote last cost 3–4× as much as its own on the 2-core VM measured (see
/// `thread_pool`). After the first run the pool holds a buffer for every request.
fn recycled(pool: &mut Vec<Data>, dtype: DType, len: usize) -> Data {
    match pool
        .iter()
        .position(|d| d.dtype() == dtype && d.len() == len)
    {
        Some(i) => pool.swap_remove(i),
        None => {
            let mut data = dtype.empty();
            data.resize(len);
            data
        }
    }
}

/// `[1, 180, 180, 3]`.
pub fn format_shape(shape: &[usize]) -> String {
    format!(
        "[{}]",
        shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(",")
    )
}
