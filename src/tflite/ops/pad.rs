//! PAD and PADV2: constant padding before and after each axis (zero, or PADV2's value). On
//! int8 and uint8 the stored values move unchanged, and PAD pads with the output's zero point
//! (the real number zero).

use super::quantized::affine;
use super::{checked, Inputs, Op, Out};
use crate::tflite::schema::BuiltinOptions;
use crate::tflite::tensor::{DType, Data, Tensor};

pub(super) fn build(_: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    Ok(Box::new(Pad {
        before: Vec::new(),
        in_dims: Vec::new(),
        out_dims: Vec::new(),
        value: Data::F32(vec![0.0]),
    }))
}

struct Pad {
    before: Vec<usize>,
    in_dims: Vec<usize>,
    out_dims: Vec<usize>,
    /// The padding value: one value of the input's type.
    value: Data,
}

impl Op for Pad {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(2..=3)?;
        let x = inputs.get(0)?;
        let (pads, pads_shape) = inputs.int_constant(1, "paddings")?;
        let rank = x.shape.len();
        if pads_shape != [rank, 2] {
            return Err(format!(
                "the paddings have shape {pads_shape:?}, expected [{rank}, 2]"
            ));
        }
        self.value = padding_value(inputs, x)?;
        let amount = |p: i64| usize::try_from(p).map_err(|_| format!("padding {p} is negative"));
        self.before.clear();
        self.out_dims.clear();
        for (d, pair) in x.shape.iter().zip(pads.chunks_exact(2)) {
            let (b, a) = (amount(pair[0])?, amount(pair[1])?);
            self.before.push(b);
            let total = d
                .checked_add(b)
                .and_then(|s| s.checked_add(a))
                .ok_or("the padded shape overflows")?;
            self.out_dims.push(total);
        }
        self.in_dims = x.shape.clone();
        Ok(vec![Out::new(x.dtype(), checked(self.out_dims.clone())?)])
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        let x = inputs[0].ok_or("the input is missing")?;
        match (&x.data, &mut outputs[0].data, &self.value) {
            (Data::F32(x), Data::F32(y), Data::F32(v)) => self.pad(x, y, v[0]),
            (Data::I8(x), Data::I8(y), Data::I8(v)) => self.pad(x, y, v[0]),
            (Data::U8(x), Data::U8(y), Data::U8(v)) => self.pad(x, y, v[0]),
            _ => return Err("the tensors are not of the types prepared".into()),
        }
        Ok(())
    }
}

/// PADV2's constant, or zero (for quantized tensors, the output's zero point).
fn padding_value(inputs: &Inputs, x: &Tensor) -> Result<Data, String> {
    let given = match inputs.optional(2) {
        None => None,
        Some(_) => {
            let v = inputs
                .value(2)
                .ok_or("the padding value must be a constant")?;
            if v.dtype() != x.dtype() || v.data.len() != 1 {
                return Err(format!(
                    "the padding value must be one {} value, got {} {:?}",
                    x.dtype(),
                    v.dtype(),
                    v.shape
                ));
            }
            Some(v)
        }
    };
    match x.dtype() {
        DType::F32 => Ok(given.map_or(Data::F32(vec![0.0]), |v| v.data.clone())),
        DType::I8 | DType::U8 => {
            let out = affine(inputs.output(0)?, "output")?;
            if let Some(v) = given {
                let constant = affine(v, "padding value")?;
                if constant != out {
                    return Err("the padding value's quantization differs from the output's".into());
                }
                return Ok(v.data.clone());
            }
            Ok(match x.dtype() {
                DType::I8 => Data::I8(vec![out.zero_point as i8]),
                _ => Data::U8(vec![out.zero_point as u8]),
            })
        }
        other => Err(format!("petal pads FLOAT32, INT8 and UINT8, not {other}")),
    }
}

impl Pad {
    fn pad<T: Copy>(&self, x: &[T], y: &mut [T], value: T) {
        y.fill(value);
        // The axes after the last padded one are copied whole with it: an image padded in
        // height and width copies rows of width × channels values, not pixels.
        let Some(last) = (0..self.in_dims.len()).rfind(|&a| self.in_dims[a] != self.out_dims[a])
        else {
            y.copy_from_slice(x);
            return;
        };
        let line: usize = self.in_dims[last..].iter().product();
        if line == 0 {
            return;
        }
        let rank = self.in_dims.len();
        let mut out_strides = vec![1usize; rank];
        for a in (0..rank - 1).rev() {
            out_strides[a] = out_strides[a + 1] * self.out_dims[a + 1];
        }
        // Axes after `last` are not padded, so the line lies contiguous in the output too.
        let mut start: usize = (0..=last).map(|a| self.before[a] * out_strides[a]).sum();
        let mut index = vec![0usize; last];
        for values in x.chunks_exact(line) {
            y[start..][..line].copy_from_slice(values);
            for a in (0..last).rev() {
                index[a] += 1;
                start += out_strides[a];
                if index[a] < self.in_dims[a] {
                    break;
                }
                index[a] = 0;
                start -= self.in_dims[a] * out_strides[a];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tflite::ops::run_single;

    #[test]
    fn pads_each_axis_before_and_after() {
        let x = Tensor::f32(vec![1, 2, 2, 1], vec![1.0, 2.0, 3.0, 4.0]);
        let pads = Tensor::i32(vec![4, 2], vec![0, 0, 1, 0, 0, 1, 0, 0]);
        let y = run_single(build(None).unwrap(), &[&x, &pads]).unwrap();
        assert_eq!(y.shape, [1, 3, 3, 1]);
        assert_eq!(
            y.as_f32().unwrap(),
            [0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 3.0, 4.0, 0.0]
        );
    }

    #[test]
    fn matches_the_index_arithmetic_whichever_axes_are_padded() {
        let dims = [2, 3, 4, 2];
        let x: Vec<f32> = (0..48).map(|i| i as f32 + 1.0).collect();
        let input = Tensor::f32(dims.to_vec(), x.clone());
        for pads in [
            [0, 0, 1, 2, 3, 0, 0, 0],
            [1, 0, 0, 0, 0, 1, 0, 0],
            [0, 0, 0, 0, 0, 0, 2, 1],
            [0; 8],
        ] {
            let paddings = Tensor::i32(vec![4, 2], pads.to_vec());
            let y = run_single(build(None).unwrap(), &[&input, &paddings]).unwrap();
            let out: Vec<usize> = (0..4)
                .map(|a| dims[a] + (pads[2 * a] + pads[2 * a + 1]) as usize)
                .collect();
            assert_eq!(y.shape, out);
            let mut want = vec![0.0; out.iter().product()];
            for (i, &v) in x.iter().enumerate() {
                let idx = [i / 24, i / 8 % 3, i / 2 % 4, i % 2];
                let at = (0..4).fold(0, |acc, a| acc * out[a] + idx[a] + pads[2 * a] as usize);
                want[at] = v;
            }
            assert_eq!(y.as_f32().unwrap(), want, "paddings {pads:?}");
        }
    }
}
