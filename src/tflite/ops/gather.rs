//! A strided walk over an input that copies the values it meets, in order: what slicing and
//! transposing have in common.

use crate::tflite::tensor::Data;

#[derive(Default)]
pub(crate) struct Gather {
    base: usize,
    /// Per walked axis, outermost first: how many steps, and how far each moves in the input.
    counts: Vec<usize>,
    steps: Vec<isize>,
}

/// The row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * shape[a + 1];
    }
    strides
}

impl Gather {
    /// Along each axis of `shape`, `count` values from `start`, `step` apart.
    pub fn new(shape: &[usize], ranges: &[(usize, isize, usize)]) -> Gather {
        let strides = strides(shape);
        Gather {
            base: ranges.iter().zip(&strides).map(|(r, s)| r.0 * s).sum(),
            counts: ranges.iter().map(|r| r.2).collect(),
            steps: ranges
                .iter()
                .zip(&strides)
                .map(|(r, &s)| r.1 * s as isize)
                .collect(),
        }
    }

    /// Output axis `j` walks input axis `perm[j]`.
    pub fn transpose(shape: &[usize], perm: &[usize]) -> Gather {
        let strides = strides(shape);
        Gather {
            base: 0,
            counts: perm.iter().map(|&p| shape[p]).collect(),
            steps: perm.iter().map(|&p| strides[p] as isize).collect(),
        }
    }

    pub fn run(&self, input: &Data, output: &mut Data) -> Result<(), String> {
        macro_rules! walk {
            ($($variant:ident),*) => {
                match (input, output) {
                    $((Data::$variant(x), Data::$variant(y)) => self.walk(x, y),)*
                    _ => return Err("the tensors are not of the types prepared".into()),
                }
            };
        }
        walk!(F32, F16, I8, U8, I16, I32, I64, Bool);
        Ok(())
    }

    fn walk<T: Copy>(&self, x: &[T], y: &mut [T]) {
        let rank = self.counts.len();
        if y.is_empty() {
            return;
        }
        if rank == 0 {
            y[0] = x[self.base];
            return;
        }
        let mut index = vec![0usize; rank];
        let mut at = self.base as isize;
        for out in y.iter_mut() {
            *out = x[at as usize];
            for a in (0..rank).rev() {
                index[a] += 1;
                at += self.steps[a];
                if index[a] < self.counts[a] {
                    break;
                }
                at -= self.steps[a] * self.counts[a] as isize;
                index[a] = 0;
            }
        }
    }
}
