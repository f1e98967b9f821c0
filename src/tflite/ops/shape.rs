//! The shape plumbing TensorFlow's converter emits around a Flatten with a dynamic batch
//! (SHAPE → STRIDED_SLICE → PACK → RESHAPE), and RESHAPE with a constant shape as petal emits it.

use super::{with_output, Io, Kernel};
use crate::tflite::tensor::{Data, Tensor};

pub(super) struct Reshape {
    input: usize,
    shape_input: Option<usize>,
    new_shape: Option<Vec<i32>>,
    output: usize,
}

impl Reshape {
    pub(super) fn new(io: Io, new_shape: Option<Vec<i32>>) -> Result<Self, String> {
        io.expect_inputs(1..=2)?;
        let shape_input = io.optional(1);
        if shape_input.is_none() && new_shape.is_none() {
            return Err("the new shape is given neither as an input nor as an option".into());
        }
        Ok(Reshape {
            input: io.input(0)?,
            shape_input,
            new_shape,
            output: io.output,
        })
    }
}

/// Resolves a requested shape (at most one -1) against `count` values.
fn resolve(requested: &[i32], count: usize) -> Result<Vec<usize>, String> {
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
                known = known
                    .checked_mul(d as usize)
                    .ok_or_else(|| format!("shape {requested:?} overflows"))?;
                shape.push(d as usize);
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

impl Kernel for Reshape {
    fn run(&mut self, tensors: &mut [Tensor]) -> Result<(), String> {
        let (input, shape_input) = (self.input, self.shape_input);
        let new_shape = &self.new_shape;
        with_output(tensors, self.output, |tensors, out| {
            let from_input = match shape_input.map(|t| &tensors[t]) {
                Some(t) if t.shape.len() > 1 => {
                    return Err(format!("the shape input must be 1-D, got {:?}", t.shape))
                }
                Some(t) => Some(t.as_i32().ok_or("the shape input must be INT32")?),
                None => None,
            };
            // An empty shape input defers to the option, as in TensorFlow Lite.
            let requested = match (from_input, new_shape.as_deref()) {
                (Some([]), Some(option)) | (None, Some(option)) => option,
                (Some(given), _) => given,
                (None, None) => return Err("no new shape given".into()),
            };
            let from = &tensors[input];
            out.shape = resolve(requested, from.data.len())?;
            out.data.clone_from(&from.data);
            Ok(())
        })
    }
}

pub(super) struct ShapeOf {
    input: usize,
    output: usize,
}

impl ShapeOf {
    pub(super) fn new(io: Io) -> Result<Self, String> {
        io.expect_inputs(1..=1)?;
        Ok(ShapeOf {
            input: io.input(0)?,
            output: io.output,
        })
    }
}

impl Kernel for ShapeOf {
    fn run(&mut self, tensors: &mut [Tensor]) -> Result<(), String> {
        let input = self.input;
        with_output(tensors, self.output, |tensors, out| {
            let dims = tensors[input]
                .shape
                .iter()
                .map(|&d| i32::try_from(d).map_err(|_| format!("dimension {d} does not fit INT32")))
                .collect::<Result<Vec<_>, _>>()?;
            *out = Tensor::i32(vec![dims.len()], dims);
            Ok(())
        })
    }
}

/// STRIDED_SLICE of a 1-D tensor (what the converter slices: shapes).
pub(super) struct StridedSlice {
    inputs: [usize; 4],
    begin_mask: i32,
    end_mask: i32,
    shrink: bool,
    output: usize,
}

impl StridedSlice {
    pub(super) fn new(
        io: Io,
        begin_mask: i32,
        end_mask: i32,
        shrink_axis_mask: i32,
    ) -> Result<Self, String> {
        io.expect_inputs(4..=4)?;
        let inputs = [io.input(0)?, io.input(1)?, io.input(2)?, io.input(3)?];
        if io.shape(inputs[0]).len() != 1 {
            return Err(format!(
                "only 1-D inputs are supported, got shape {:?}",
                io.shape(inputs[0])
            ));
        }
        Ok(StridedSlice {
            inputs,
            begin_mask: begin_mask & 1,
            end_mask: end_mask & 1,
            shrink: shrink_axis_mask & 1 != 0,
            output: io.output,
        })
    }
}

impl Kernel for StridedSlice {
    fn run(&mut self, tensors: &mut [Tensor]) -> Result<(), String> {
        let [input, begin, end, strides] = self.inputs;
        let (begin_mask, end_mask, shrink) = (self.begin_mask, self.end_mask, self.shrink);
        with_output(tensors, self.output, |tensors, out| {
            let scalar = |t: usize, what: &str| match tensors[t].as_i32() {
                Some(&[v]) => Ok(v as i64),
                _ => Err(format!("the {what} must be one INT32 value")),
            };
            let (b, e, s) = (
                scalar(begin, "begin")?,
                scalar(end, "end")?,
                scalar(strides, "stride")?,
            );
            let from = &tensors[input];
            if from.shape.len() != 1 {
                return Err(format!(
                    "only 1-D inputs are supported, got shape {:?}",
                    from.shape
                ));
            }
            let picked = slice_indices(
                from.data.len(),
                (b, e, s),
                begin_mask != 0,
                end_mask != 0,
                shrink,
            )?;
            let shape = if shrink { vec![] } else { vec![picked.len()] };
            *out = match &from.data {
                Data::I32(v) => Tensor::i32(shape, picked.iter().map(|&i| v[i]).collect()),
                Data::F32(v) => Tensor::f32(shape, picked.iter().map(|&i| v[i]).collect()),
            };
            Ok(())
        })
    }
}

/// The positions a 1-D strided slice `(begin, end, stride)` picks from `n` values, with
/// TensorFlow's rules: negative positions count from the end, out-of-range ones are clamped,
/// a masked begin or end means "from the start" or "to the end" (in the stride's direction),
/// and `shrink` takes the single value at `begin`.
fn slice_indices(
    n: usize,
    (begin, end, stride): (i64, i64, i64),
    begin_masked: bool,
    end_masked: bool,
    shrink: bool,
) -> Result<Vec<usize>, String> {
    let n = n as i64;
    if stride == 0 {
        return Err("the stride must not be 0".into());
    }
    let wrap = |v: i64| if v < 0 { v + n } else { v };
    if shrink {
        let i = wrap(begin);
        if !(0..n).contains(&i) {
            return Err(format!("index {begin} is out of range for {n} values"));
        }
        return Ok(vec![i as usize]);
    }
    let (first, last) = if stride > 0 { (0, n) } else { (-1, n - 1) };
    let start = match begin_masked {
        true if stride > 0 => first,
        true => last,
        false => wrap(begin).clamp(first, last),
    };
    let stop = match end_masked {
        true if stride > 0 => last,
        true => first,
        false => wrap(end).clamp(first, last),
    };
    let mut picked = Vec::new();
    let mut i = start;
    while (stride > 0 && i < stop) || (stride < 0 && i > stop) {
        picked.push(i as usize);
        i += stride;
    }
    Ok(picked)
}

/// PACK's data: output block (o, k) is input k's block o, blocks of `inner` values.
fn interleave<T: Copy>(parts: &[&[T]], inner: usize) -> Vec<T> {
    let outer = parts[0].len() / inner.max(1);
    (0..outer)
        .flat_map(|o| {
            parts
                .iter()
                .flat_map(move |p| &p[o * inner..(o + 1) * inner])
        })
        .copied()
        .collect()
}

pub(super) struct Pack {
    inputs: Vec<usize>,
    axis: i32,
    output: usize,
}

impl Pack {
    pub(super) fn new(io: Io, axis: i32) -> Result<Self, String> {
        let inputs = (0..io.inputs.len())
            .map(|i| io.input(i))
            .collect::<Result<Vec<_>, _>>()?;
        if inputs.is_empty() {
            return Err("has no inputs".into());
        }
        Ok(Pack {
            inputs,
            axis,
            output: io.output,
        })
    }
}

impl Kernel for Pack {
    fn run(&mut self, tensors: &mut [Tensor]) -> Result<(), String> {
        let (inputs, axis) = (&self.inputs, self.axis);
        with_output(tensors, self.output, |tensors, out| {
            let first = &tensors[inputs[0]];
            if let Some(&t) = inputs
                .iter()
                .find(|&&t| tensors[t].shape != first.shape || tensors[t].dtype() != first.dtype())
            {
                return Err(format!(
                    "its inputs differ: {:?} {} and {:?} {}",
                    first.shape,
                    first.dtype().name(),
                    tensors[t].shape,
                    tensors[t].dtype().name()
                ));
            }
            let rank = first.shape.len() as i32;
            let axis = if axis < 0 { axis + rank + 1 } else { axis };
            if !(0..=rank).contains(&axis) {
                return Err(format!(
                    "axis {} is out of range for rank {rank}",
                    self.axis
                ));
            }
            let axis = axis as usize;
            let inner: usize = first.shape[axis..].iter().product();
            let mut shape = first.shape.clone();
            shape.insert(axis, inputs.len());
            *out = match first.data {
                Data::I32(_) => {
                    let parts: Vec<&[i32]> =
                        inputs.iter().filter_map(|&t| tensors[t].as_i32()).collect();
                    Tensor::i32(shape, interleave(&parts, inner))
                }
                Data::F32(_) => {
                    let parts: Vec<&[f32]> =
                        inputs.iter().filter_map(|&t| tensors[t].as_f32()).collect();
                    Tensor::f32(shape, interleave(&parts, inner))
                }
            };
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_resolves_one_unknown_dimension() {
        assert_eq!(resolve(&[-1, 4096], 8192).unwrap(), [2, 4096]);
        assert_eq!(resolve(&[2, 3], 6).unwrap(), [2, 3]);
        assert_eq!(resolve(&[], 1).unwrap(), Vec::<usize>::new());
        assert!(resolve(&[-1, 5], 12).is_err());
        assert!(resolve(&[-1, -1], 4).is_err());
        assert!(resolve(&[2, 2], 5).is_err());
        assert!(resolve(&[-3, 2], 6).is_err());
        assert!(resolve(&[-1, 0], 0).is_err());
    }

    #[test]
    fn strided_slices_follow_tensorflow() {
        let slice = |b, e, s, bm, em, shrink| slice_indices(4, (b, e, s), bm, em, shrink);
        // What the converter emits for a Flatten: shape[0:1] as a scalar.
        assert_eq!(slice(0, 1, 1, false, false, true).unwrap(), [0]);
        assert_eq!(slice(1, 3, 1, false, false, false).unwrap(), [1, 2]);
        assert_eq!(slice(-3, -1, 1, false, false, false).unwrap(), [1, 2]);
        assert_eq!(slice(9, 0, 1, true, true, false).unwrap(), [0, 1, 2, 3]);
        assert_eq!(slice(0, 0, -1, true, true, false).unwrap(), [3, 2, 1, 0]);
        assert_eq!(slice(3, 0, -2, false, false, false).unwrap(), [3, 1]);
        assert_eq!(slice(-9, 99, 3, false, false, false).unwrap(), [0, 3]);
        assert!(slice(2, 1, 1, false, false, false).unwrap().is_empty());
        assert!(slice(4, 5, 1, false, false, true).is_err());
        assert!(slice(0, 1, 0, false, false, false).is_err());
    }

    #[test]
    fn pack_interleaves_blocks() {
        let (a, b) = ([1, 2, 3, 4], [5, 6, 7, 8]);
        // Two [2, 2] tensors on axis 0, 1 and 2.
        assert_eq!(interleave(&[&a, &b], 4), [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(interleave(&[&a, &b], 2), [1, 2, 5, 6, 3, 4, 7, 8]);
        assert_eq!(interleave(&[&a, &b], 1), [1, 5, 2, 6, 3, 7, 4, 8]);
        assert_eq!(interleave(&[&[7][..], &[9]], 1), [7, 9]);
    }
}
