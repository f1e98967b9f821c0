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

use super::ops::{self, Kernel};
use super::parse::{self, Graph};
use super::tensor::{DType, Tensor};
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Values the constants of all ops may copy into their kernels, counted with repeats: a file
/// that feeds one large weight tensor to very many ops is refused instead of exhausting memory.
const MAX_KERNEL_WEIGHTS: usize = 1 << 29;

/// A tensor's declaration: name, type, shape (`shape_signature` has -1 where the size may vary).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub shape_signature: Vec<i32>,
}

/// One signature's named inputs and outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureInfo {
    pub key: String,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
}

pub struct Interpreter {
    origin: String,
    description: String,
    infos: Vec<TensorInfo>,
    signatures: Vec<parse::Signature>,
    op_names: Vec<&'static str>,
    constant_bytes: usize,
    metadata: Vec<(String, Vec<u8>)>,
    kernels: Vec<Box<dyn Kernel>>,
    tensors: Vec<Tensor>,
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
        let mut graph = parse::parse(bytes).map_err(error)?;
        let copied: usize = graph
            .ops
            .iter()
            .flat_map(|op| op.inputs.iter().flatten())
            .filter(|&&t| graph.tensors[t].data.is_some())
            .map(|&t| graph.tensors[t].elements())
            .fold(0usize, usize::saturating_add);
        if copied > MAX_KERNEL_WEIGHTS {
            return Err(error(format!(
                "the operators' constants add up to {copied} values, more than petal handles"
            )));
        }
        let kernels = graph
            .ops
            .iter()
            .enumerate()
            .map(|(n, op)| {
                ops::build(op, &graph, format!("op{n}"))
                    .map_err(|e| error(format!("operator {n} ({}): {e}", op.kind.name())))
            })
            .collect::<Result<Vec<_>>>()?;
        let op_names = graph.ops.iter().map(|op| op.kind.name()).collect();
        let constant_bytes = graph
            .tensors
            .iter()
            .filter_map(|t| t.data.as_ref())
            .map(|d| d.len() * 4)
            .sum();
        let infos = graph
            .tensors
            .iter()
            .map(|t| TensorInfo {
                name: t.name.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                shape_signature: t.shape_signature.clone(),
            })
            .collect();
        let tensors = graph
            .tensors
            .iter_mut()
            .map(|t| match t.data.take() {
                Some(data) => Tensor {
                    shape: t.shape.clone(),
                    data,
                },
                None => Tensor::default(),
            })
            .collect();
        let Graph {
            description,
            signatures,
            metadata,
            ..
        } = graph;
        Ok(Interpreter {
            origin: origin.to_owned(),
            description,
            infos,
            signatures,
            op_names,
            constant_bytes,
            metadata,
            kernels,
            tensors,
        })
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

    /// The operators in execution order, by TensorFlow Lite's names.
    pub fn op_names(&self) -> &[&'static str] {
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
            it.tensors[*tensor_index].clone_from(given);
        }
        for (n, kernel) in it.kernels.iter_mut().enumerate() {
            if let Err(reason) = kernel.run(&mut it.tensors) {
                return Err(Error::TfLite {
                    origin: it.origin.clone(),
                    reason: format!("operator {n} ({}): {reason}", it.op_names[n]),
                });
            }
        }
        Ok(signature
            .outputs
            .iter()
            .map(|(name, t)| (name.clone(), it.tensors[*t].clone()))
            .collect())
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
