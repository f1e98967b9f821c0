//! TRANSPOSE of any rank and type by a constant permutation.

use super::{axis, gather::Gather, Inputs, Op, Out};
use crate::tflite::schema::BuiltinOptions;
use crate::tflite::tensor::Tensor;

pub(super) fn build(_: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    Ok(Box::new(Transpose {
        gather: Gather::default(),
    }))
}

struct Transpose {
    gather: Gather,
}

impl Op for Transpose {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(2..=2)?;
        let x = inputs.get(0)?;
        let (perm, _) = inputs.int_constant(1, "permutation")?;
        let rank = x.shape.len();
        let perm = perm
            .iter()
            .map(|&p| axis(p, rank))
            .collect::<Result<Vec<_>, _>>()?;
        let mut seen = vec![false; rank];
        perm.iter().for_each(|&p| seen[p] = true);
        if perm.len() != rank || seen.contains(&false) {
            return Err(format!("{perm:?} is not a permutation of the {rank} axes"));
        }
        self.gather = Gather::transpose(&x.shape, &perm);
        let shape = perm.iter().map(|&p| x.shape[p]).collect();
        Ok(vec![Out::new(x.dtype(), shape)])
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

    #[test]
    fn permutes_axes() {
        let x = Tensor::f32(vec![2, 3], (0..6).map(|v| v as f32).collect());
        let perm = Tensor::i32(vec![2], vec![1, 0]);
        let y = run_single(build(None).unwrap(), &[&x, &perm]).unwrap();
        assert_eq!(y.shape, [3, 2]);
        assert_eq!(y.as_f32().unwrap(), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }
}
