//! ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM and SQUARED_DIFFERENCE, with NumPy broadcasting and the
//! fused activation, on FLOAT32 (and INT32, which shape arithmetic uses).

use super::fused_activation::Fused;
use super::{checked, options, Inputs, Op, Out};
use crate::nn::kernels::clamp;
use crate::nn::thread_pool;
use crate::tflite::schema::{ActivationFunctionType, BuiltinOptions};
use crate::tflite::tensor::{DType, Data, Tensor};

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
    Minimum,
    SquaredDifference,
}

macro_rules! fused_of {
    ($options:expr, $variant:ident) => {
        options!($options, $variant).map_or(ActivationFunctionType::None, |o| {
            o.fused_activation_function
        })
    };
}

pub(super) fn build_add(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    new(Kind::Add, fused_of!(options, AddOptions))
}
pub(super) fn build_sub(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    new(Kind::Sub, fused_of!(options, SubOptions))
}
pub(super) fn build_mul(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    new(Kind::Mul, fused_of!(options, MulOptions))
}
pub(super) fn build_div(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    new(Kind::Div, fused_of!(options, DivOptions))
}
pub(super) fn build_maximum(_: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    new(Kind::Maximum, ActivationFunctionType::None)
}
pub(super) fn build_minimum(_: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    new(Kind::Minimum, ActivationFunctionType::None)
}
pub(super) fn build_squared_difference(_: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    new(Kind::SquaredDifference, ActivationFunctionType::None)
}

fn new(kind: Kind, activation: ActivationFunctionType) -> Result<Box<dyn Op>, String> {
    Ok(Box::new(Binary {
        kind,
        activation: Fused::new(activation)?,
        broadcast: Broadcast::default(),
    }))
}

struct Binary {
    kind: Kind,
    activation: Fused,
    broadcast: Broadcast,
}

/// Output values below which one thread computes them all.
const PARALLEL_VALUES: usize = 1 << 15;

/// How each output position maps to the two inputs: the output's shape and, per axis, each
/// input's stride (0 where it repeats).
#[derive(Default)]
struct Broadcast {
    same_shape: bool,
    /// The output's shape.
    out_dims: Vec<usize>,
    /// The walk: the output's axes with those of size 1 dropped and runs merged.
    dims: Vec<usize>,
    strides: [Vec<usize>; 2],
}

impl Broadcast {
    fn new(a: &[usize], b: &[usize]) -> Result<Broadcast, String> {
        let rank = a.len().max(b.len());
        let padded = |s: &[usize]| {
            let mut p = vec![1; rank - s.len()];
            p.extend_from_slice(s);
            p
        };
        let (pa, pb) = (padded(a), padded(b));
        let mut dims = Vec::with_capacity(rank);
        for (&x, &y) in pa.iter().zip(&pb) {
            dims.push(match (x, y) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => return Err(format!("shapes {a:?} and {b:?} do not broadcast")),
            });
        }
        let strides_of = |p: &[usize]| -> Vec<usize> {
            let mut strides = vec![0; rank];
            let mut stride = 1;
            for i in (0..rank).rev() {
                if p[i] != 1 {
                    strides[i] = stride;
                }
                stride *= p[i];
            }
            strides
        };
        let [sa, sb] = [strides_of(&pa), strides_of(&pb)];
        // Adjacent axes that both inputs walk alike (contiguously, or both repeating) merge
        // into one, so [1, H, W, C] × [1, 1, 1, C] runs as H·W lines of C.
        let mut merged: (Vec<usize>, [Vec<usize>; 2]) = (Vec::new(), [Vec::new(), Vec::new()]);
        for axis in 0..rank {
            let (d, x, y) = (dims[axis], sa[axis], sb[axis]);
            if d == 1 {
                continue;
            }
            let (md, [mx, my]) = &mut merged;
            let mergeable = md.last().is_some_and(|_| {
                let last = md.len() - 1;
                mx[last] == x * d && my[last] == y * d
            });
            if mergeable {
                let last = md.len() - 1;
                md[last] *= d;
                (mx[last], my[last]) = (x, y);
            } else {
                md.push(d);
                mx.push(x);
                my.push(y);
            }
        }
        let (merged_dims, merged_strides) = merged;
        Ok(Broadcast {
            same_shape: a == b,
            out_dims: dims,
            dims: merged_dims,
            strides: merged_strides,
        })
    }

    /// `out[i] = f(a[…], b[…])` over the broadcast shape, in bands over the threads when large
    /// (a residual ADD at 112×112 reads 3 MB).
    fn run<T: Copy + Send + Sync>(
        &self,
        a: &[T],
        b: &[T],
        out: &mut [T],
        f: impl Fn(T, T) -> T + Sync,
    ) {
        let line = match self.dims.last() {
            Some(&inner) if !self.same_shape => inner,
            _ => 1,
        };
        let bands = if out.len() < PARALLEL_VALUES {
            1
        } else {
            thread_pool::threads() * 4
        };
        let band_lines = (out.len() / line.max(1)).div_ceil(bands).max(1);
        thread_pool::for_each_chunk(out, band_lines * line, |band, out| {
            self.run_lines(a, b, out, band * band_lines, &f)
        });
    }

    /// [`Broadcast::run`] for the output from line `first` (of the walk's last axis) on.
    fn run_lines<T: Copy>(
        &self,
        a: &[T],
        b: &[T],
        out: &mut [T],
        first: usize,
        f: impl Fn(T, T) -> T,
    ) {
        if self.same_shape {
            out.iter_mut()
                .zip(a[first..].iter().zip(&b[first..]))
                .for_each(|(o, (&x, &y))| *o = f(x, y));
            return;
        }
        let rank = self.dims.len();
        if rank == 0 || out.is_empty() {
            out.iter_mut().for_each(|o| *o = f(a[0], b[0]));
            return;
        }
        // The last axis runs in an inner loop; an odometer walks the others.
        let inner = self.dims[rank - 1];
        let [sa, sb] = [self.strides[0][rank - 1], self.strides[1][rank - 1]];
        let mut index = vec![0usize; rank - 1];
        let mut line = first;
        for i in (0..rank - 1).rev() {
            index[i] = line % self.dims[i];
            line /= self.dims[i];
        }
        for line in out.chunks_exact_mut(inner) {
            let offset = |strides: &[usize]| -> usize {
                index.iter().zip(strides).map(|(i, s)| i * s).sum()
            };
            let (oa, ob) = (offset(&self.strides[0]), offset(&self.strides[1]));
            match (sa, sb) {
                (1, 1) => line
                    .iter_mut()
                    .zip(a[oa..][..inner].iter().zip(&b[ob..][..inner]))
                    .for_each(|(o, (&x, &y))| *o = f(x, y)),
                (1, 0) => line
                    .iter_mut()
                    .zip(&a[oa..][..inner])
                    .for_each(|(o, &x)| *o = f(x, b[ob])),
                (0, 1) => line
                    .iter_mut()
                    .zip(&b[ob..][..inner])
                    .for_each(|(o, &y)| *o = f(a[oa], y)),
                _ => line.iter_mut().for_each(|o| *o = f(a[oa], b[ob])),
            }
            for i in (0..rank - 1).rev() {
                index[i] += 1;
                if index[i] < self.dims[i] {
                    break;
                }
                index[i] = 0;
            }
        }
    }
}

impl Op for Binary {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(2..=2)?;
        let (a, b) = (inputs.get(0)?, inputs.get(1)?);
        let dtype = a.dtype();
        if dtype != b.dtype() || !matches!(dtype, DType::F32 | DType::I32) {
            return Err(format!(
                "the inputs are {} and {}; petal runs FLOAT32 or INT32 pairs",
                a.dtype(),
                b.dtype()
            ));
        }
        if dtype == DType::I32 && (self.kind == Kind::Div || !self.activation.is_none()) {
            return Err("INT32 division and fused activations are not supported".into());
        }
        self.broadcast = Broadcast::new(&a.shape, &b.shape)?;
        Ok(vec![Out::new(
            dtype,
            checked(self.broadcast.out_dims.clone())?,
        )])
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        let (Some(a), Some(b)) = (inputs[0], inputs[1]) else {
            return Err("an input is missing".into());
        };
        let kind = self.kind;
        match (&a.data, &b.data, &mut outputs[0].data) {
            (Data::F32(a), Data::F32(b), Data::F32(out)) => {
                let (min, max) = self.activation.range();
                // One instantiation per operation, so the loop has no branch on the kind.
                macro_rules! run {
                    ($f:expr) => {
                        self.broadcast
                            .run(a, b, out, |x: f32, y: f32| clamp($f(x, y), min, max))
                    };
                }
                match kind {
                    Kind::Add => run!(|x, y| x + y),
                    Kind::Sub => run!(|x, y| x - y),
                    Kind::Mul => run!(|x, y| x * y),
                    Kind::Div => run!(|x, y| x / y),
                    Kind::Maximum => run!(f32::max),
                    Kind::Minimum => run!(f32::min),
                    Kind::SquaredDifference => run!(|x: f32, y: f32| (x - y) * (x - y)),
                }
            }
            (Data::I32(a), Data::I32(b), Data::I32(out)) => {
                let f = |x: i32, y: i32| match kind {
                    Kind::Add => x.wrapping_add(y),
                    Kind::Sub => x.wrapping_sub(y),
                    Kind::Mul => x.wrapping_mul(y),
                    Kind::Maximum => x.max(y),
                    Kind::Minimum => x.min(y),
                    Kind::SquaredDifference => x.wrapping_sub(y).wrapping_mul(x.wrapping_sub(y)),
                    Kind::Div => unreachable!("refused in prepare"),
                };
                self.broadcast.run(a, b, out, f);
            }
            _ => return Err("the tensors are not of the types prepared".into()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tflite::ops::run_single;

    #[test]
    fn broadcasts_as_numpy_does() {
        let a = Tensor::f32(vec![2, 1, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let b = Tensor::f32(vec![2, 1], vec![10.0, 20.0]);
        let sum = run_single(build_add(None).unwrap(), &[&a, &b]).unwrap();
        assert_eq!(sum.shape, [2, 2, 3]);
        assert_eq!(
            sum.as_f32().unwrap(),
            [11.0, 12.0, 13.0, 21.0, 22.0, 23.0, 14.0, 15.0, 16.0, 24.0, 25.0, 26.0]
        );
        let scalar = Tensor::f32(vec![], vec![2.0]);
        let product = run_single(build_mul(None).unwrap(), &[&scalar, &a]).unwrap();
        assert_eq!(product.as_f32().unwrap(), [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
        let bad = Tensor::f32(vec![4], vec![0.0; 4]);
        assert!(run_single(build_sub(None).unwrap(), &[&a, &bad])
            .unwrap_err()
            .contains("do not broadcast"));
    }

    #[test]
    fn large_outputs_split_into_bands_match_the_index_arithmetic() {
        // Broadcast along a middle axis, and the same shapes, both above PARALLEL_VALUES.
        let (h, w, c) = (37, 41, 29);
        let values = |n: usize| (0..n).map(|i| (i % 101) as f32 * 0.5).collect::<Vec<_>>();
        let a = Tensor::f32(vec![1, h, w, c], values(h * w * c));
        let b = Tensor::f32(vec![1, h, 1, c], values(h * c));
        let sum = run_single(build_sub(None).unwrap(), &[&a, &b]).unwrap();
        let (x, y, got) = (
            a.as_f32().unwrap(),
            b.as_f32().unwrap(),
            sum.as_f32().unwrap(),
        );
        for (i, &value) in got.iter().enumerate() {
            let (row, ch) = (i / (w * c), i % c);
            assert_eq!(value, x[i] - y[row * c + ch], "at {i}");
        }
        let product = run_single(build_mul(None).unwrap(), &[&a, &a]).unwrap();
        assert!(product
            .as_f32()
            .unwrap()
            .iter()
            .zip(x)
            .all(|(&p, &v)| p == v * v));
    }
}
