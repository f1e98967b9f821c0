//! CONCATENATION (along an existing axis, with the fused activation on floats) and PACK (along
//! a new one), of any type: both interleave blocks of the inputs.

use super::fused_activation::Fused;
use super::quantized::affine;
use super::{axis, checked, options, Inputs, Op, Out};
use crate::tflite::schema::BuiltinOptions;
use crate::tflite::tensor::{DType, Data, Tensor};

pub(super) fn build_concatenation(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    let o =
        options!(options, ConcatenationOptions).ok_or("its ConcatenationOptions are missing")?;
    Ok(Box::new(Join {
        axis: o.axis as i64,
        new_axis: false,
        activation: Fused::new(o.fused_activation_function)?,
        outer: 0,
        blocks: Vec::new(),
    }))
}

pub(super) fn build_pack(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    let o = options!(options, PackOptions).ok_or("its PackOptions are missing")?;
    Ok(Box::new(Join {
        axis: o.axis as i64,
        new_axis: true,
        activation: Fused::NONE,
        outer: 0,
        blocks: Vec::new(),
    }))
}

struct Join {
    axis: i64,
    /// PACK: the inputs have equal shapes and stack along a new axis.
    new_axis: bool,
    activation: Fused,
    /// The number of blocks each input gives (the product of the dimensions before the axis),
    /// and each input's block length.
    outer: usize,
    blocks: Vec<usize>,
}

/// Quantized values are joined as they are stored, so every input must share the output's
/// scale and zero point (LiteRT's int8 kernel requires it too; it rescales uint8, petal does not).
fn same_quantization(inputs: &Inputs) -> Result<(), String> {
    let output = affine(inputs.output(0)?, "output")?;
    for i in 0..inputs.count() {
        if affine(inputs.get(i)?, "input")? != output {
            return Err(format!(
                "input {i}'s scale and zero point differ from the output's; petal joins \
                 quantized tensors of one quantization only"
            ));
        }
    }
    Ok(())
}

impl Op for Join {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        if inputs.count() == 0 {
            return Err("has no inputs".into());
        }
        let first = inputs.get(0)?;
        let dtype = first.dtype();
        let rank = first.shape.len() + usize::from(self.new_axis);
        let axis = axis(self.axis, rank)?;
        let mut shape = first.shape.clone();
        if self.new_axis {
            shape.insert(axis, 0);
        }
        shape[axis] = 0;
        self.blocks.clear();
        for i in 0..inputs.count() {
            let t = inputs.get(i)?;
            let mut s = t.shape.clone();
            if self.new_axis {
                s.insert(axis, 1);
            }
            let fits = t.dtype() == dtype
                && s.len() == rank
                && s.iter()
                    .zip(&shape)
                    .enumerate()
                    .all(|(a, (x, y))| a == axis || x == y);
            if !fits {
                return Err(format!(
                    "input {i} ({} {:?}) does not join input 0 ({dtype} {:?}) along axis {axis}",
                    t.dtype(),
                    t.shape,
                    first.shape
                ));
            }
            shape[axis] += s[axis];
            self.blocks.push(s[axis..].iter().product());
        }
        if dtype != DType::F32 && !self.activation.is_none() {
            return Err("a fused activation needs FLOAT32 inputs".into());
        }
        if matches!(dtype, DType::I8 | DType::U8) {
            same_quantization(inputs)?;
        }
        self.outer = shape[..axis].iter().product();
        Ok(vec![Out::new(dtype, checked(shape)?)])
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        let parts: Vec<&Data> = inputs
            .iter()
            .map(|t| t.map(|t| &t.data).ok_or("an input is missing"))
            .collect::<Result<_, _>>()?;
        let out = &mut outputs[0].data;
        macro_rules! join {
            ($($variant:ident),*) => {
                match out {
                    $(Data::$variant(out) => {
                        let parts: Vec<&[_]> = parts
                            .iter()
                            .map(|p| match p {
                                Data::$variant(v) => Ok(&v[..]),
                                _ => Err("the inputs are not of the types prepared"),
                            })
                            .collect::<Result<_, _>>()?;
                        interleave(&parts, &self.blocks, self.outer, out);
                    })*
                }
            };
        }
        join!(F32, F16, I8, U8, I16, I32, I64, Bool);
        if let Data::F32(out) = out {
            self.activation.apply(out);
        }
        Ok(())
    }
}

/// For each of `outer` rounds, copies the next block of each part in turn.
fn interleave<T: Copy>(parts: &[&[T]], blocks: &[usize], outer: usize, out: &mut [T]) {
    let mut at = 0;
    for round in 0..outer {
        for (part, &block) in parts.iter().zip(blocks) {
            out[at..at + block].copy_from_slice(&part[round * block..][..block]);
            at += block;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tflite::ops::run_single;
    use crate::tflite::schema::{ConcatenationOptions, PackOptions};

    #[test]
    fn concatenates_and_packs() {
        let a = Tensor::f32(vec![2, 1], vec![1.0, 2.0]);
        let b = Tensor::f32(vec![2, 2], vec![3.0, 4.0, 5.0, 6.0]);
        let options = BuiltinOptions::ConcatenationOptions(Box::new(ConcatenationOptions {
            axis: -1,
            ..Default::default()
        }));
        let joined = run_single(build_concatenation(Some(&options)).unwrap(), &[&a, &b]).unwrap();
        assert_eq!(joined.shape, [2, 3]);
        assert_eq!(joined.as_f32().unwrap(), [1.0, 3.0, 4.0, 2.0, 5.0, 6.0]);
        let pack = BuiltinOptions::PackOptions(Box::new(PackOptions {
            values_count: 2,
            axis: 0,
        }));
        let (x, y) = (Tensor::i32(vec![], vec![-1]), Tensor::i32(vec![], vec![7]));
        let packed = run_single(build_pack(Some(&pack)).unwrap(), &[&x, &y]).unwrap();
        assert_eq!(
            (packed.shape.as_slice(), packed.as_i32().unwrap()),
            (&[2][..], &[-1, 7][..])
        );
    }

    #[test]
    fn quantized_inputs_join_only_at_the_outputs_quantization() {
        let tensor = |values: Vec<i8>, scale: f32| Tensor {
            shape: vec![values.len()],
            data: Data::I8(values),
            quantization: Some(crate::tflite::tensor::Quantization {
                scales: vec![scale],
                zero_points: vec![-3],
                axis: 0,
            }),
        };
        let (a, b) = (tensor(vec![1, 2], 0.5), tensor(vec![3], 0.5));
        let out = tensor(vec![], 0.5);
        let options = BuiltinOptions::ConcatenationOptions(Box::new(ConcatenationOptions {
            axis: 0,
            ..Default::default()
        }));
        let build = || build_concatenation(Some(&options)).unwrap();
        let joined = crate::tflite::ops::run_to(build(), &[&a, &b], Some(&out)).unwrap();
        assert_eq!(joined.data, Data::I8(vec![1, 2, 3]));
        let other = tensor(vec![3], 0.25);
        let e = crate::tflite::ops::run_to(build(), &[&a, &other], Some(&out)).unwrap_err();
        assert!(e.contains("input 1's scale and zero point differ"), "{e}");
    }
}
