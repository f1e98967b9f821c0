//! STRIDED_SLICE of any rank and type, with TensorFlow's begin, end and shrink-axis masks.

use super::{checked, gather::Gather, options, Inputs, Op, Out};
use crate::tflite::schema::{BuiltinOptions, StridedSliceOptions};
use crate::tflite::tensor::Tensor;

pub(super) fn build(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    let o = options!(options, StridedSliceOptions).ok_or("its StridedSliceOptions are missing")?;
    if o.ellipsis_mask != 0 || o.new_axis_mask != 0 || o.offset {
        return Err("ellipsis_mask, new_axis_mask and offset are not supported".into());
    }
    Ok(Box::new(StridedSlice {
        options: o.clone(),
        gather: Gather::default(),
    }))
}

struct StridedSlice {
    options: StridedSliceOptions,
    gather: Gather,
}

/// The first index, step and count along one axis of length `dim`.
fn axis_range(
    dim: usize,
    begin: i64,
    end: i64,
    stride: i64,
    [begin_masked, end_masked, shrink]: [bool; 3],
) -> Result<(usize, isize, usize), String> {
    let dim = dim as i64;
    if stride == 0 {
        return Err("a stride of 0".into());
    }
    let wrap = |v: i64| if v < 0 { v + dim } else { v };
    if shrink {
        let b = wrap(begin);
        if !(0..dim).contains(&b) {
            return Err(format!(
                "index {begin} is out of range for a dimension of {dim}"
            ));
        }
        return Ok((b as usize, 1, 1));
    }
    let (lo, hi) = if stride > 0 { (0, dim) } else { (-1, dim - 1) };
    let b = if begin_masked {
        if stride > 0 {
            lo
        } else {
            hi
        }
    } else {
        wrap(begin).clamp(lo, hi)
    };
    let e = if end_masked {
        if stride > 0 {
            hi
        } else {
            lo
        }
    } else {
        wrap(end).clamp(lo, hi)
    };
    let (distance, step) = if stride > 0 {
        (e - b, stride)
    } else {
        (b - e, -stride)
    };
    let count = (distance.max(0) as u64).div_ceil(step as u64);
    Ok((b.max(0) as usize, stride as isize, count as usize))
}

impl Op for StridedSlice {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(3..=4)?;
        let x = inputs.get(0)?;
        let rank = x.shape.len();
        let (begin, _) = inputs.int_constant(1, "begin")?;
        let (end, _) = inputs.int_constant(2, "end")?;
        let strides = match inputs.optional(3) {
            Some(_) => inputs.int_constant(3, "strides")?.0,
            None => vec![1; rank],
        };
        if begin.len() != rank || end.len() != rank || strides.len() != rank {
            return Err(format!(
                "begin, end and strides must have {rank} values each, got {}, {} and {}",
                begin.len(),
                end.len(),
                strides.len()
            ));
        }
        let bit = |mask: i32, i: usize| mask >> i & 1 == 1;
        let o = &self.options;
        let mut ranges = Vec::with_capacity(rank);
        let mut shape = Vec::new();
        for i in 0..rank {
            let masks = [
                bit(o.begin_mask, i),
                bit(o.end_mask, i),
                bit(o.shrink_axis_mask, i),
            ];
            let r = axis_range(x.shape[i], begin[i], end[i], strides[i], masks)?;
            if !masks[2] {
                shape.push(r.2);
            }
            ranges.push(r);
        }
        self.gather = Gather::new(&x.shape, &ranges);
        Ok(vec![Out::new(x.dtype(), checked(shape)?)])
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        let x = inputs[0].ok_or("the input is missing")?;
        self.gather.run(&x.data, &mut outputs[0].data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tflite::ops::run_single;

    fn slice(x: &Tensor, b: &[i32], e: &[i32], s: &[i32], masks: [i32; 3]) -> Tensor {
        let options = BuiltinOptions::StridedSliceOptions(Box::new(StridedSliceOptions {
            begin_mask: masks[0],
            end_mask: masks[1],
            shrink_axis_mask: masks[2],
            ..Default::default()
        }));
        let list = |v: &[i32]| Tensor::i32(vec![v.len()], v.to_vec());
        run_single(
            build(Some(&options)).unwrap(),
            &[x, &list(b), &list(e), &list(s)],
        )
        .unwrap()
    }

    #[test]
    fn slices_with_masks_negative_indices_and_steps() {
        let x = Tensor::f32(vec![3, 4], (0..12).map(|v| v as f32).collect());
        let rows = slice(&x, &[1, 0], &[3, 0], &[1, 2], [0, 2, 0]);
        assert_eq!(rows.shape, [2, 2]);
        assert_eq!(rows.as_f32().unwrap(), [4.0, 6.0, 8.0, 10.0]);
        let last_column = slice(&x, &[0, -1], &[0, 0], &[1, 1], [1, 1, 2]);
        assert_eq!(last_column.shape, [3]);
        assert_eq!(last_column.as_f32().unwrap(), [3.0, 7.0, 11.0]);
        let reversed = slice(&x, &[0, -1], &[1, -5], &[1, -1], [0, 0, 1]);
        assert_eq!(reversed.as_f32().unwrap(), [3.0, 2.0, 1.0, 0.0]);
    }
}
