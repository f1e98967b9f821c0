//! ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM and SQUARED_DIFFERENCE, with NumPy broadcasting and the
//! fused activation, on FLOAT32 (and INT32, which shape arithmetic uses); ADD, SUB and MUL on
//! int8 and uint8 too ([`quantized`]).

mod quantized;
#[cfg(target_arch = "x86_64")]
mod single_precision;

use super::fused_activation::Fused;
use super::{checked, options, Inputs, Op, Out, StoredProduct};
use crate::nn::kernels::clamp;
use crate::nn::thread_pool;
use crate::tflite::schema::{ActivationFunctionType, BuiltinOptions};
use crate::tflite::tensor::{DType, Data, Tensor};
use quantized::QuantizedBinary;

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
        quantized: None,
        float: false,
    }))
}

struct Binary {
    kind: Kind,
    activation: Fused,
    broadcast: Broadcast,
    /// For int8 and uint8 inputs: the integer arithmetic.
    quantized: Option<QuantizedBinary>,
    /// Whether the inputs are FLOAT32 (as last prepared).
    float: bool,
}

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
        let line = self.line_len();
        thread_pool::for_each_band(out, line, |first, out| {
            self.run_lines(a, b, out, first / line, &f)
        });
    }

    /// Which input (0 or 1) is one line repeated along a contiguous other, as an image's
    /// channels against a per-channel constant (`[1, H, W, C]` with `[C]`).
    fn repeated_line(&self) -> Option<usize> {
        let (&[outer_a, 1], &[outer_b, 1]) = (&self.strides[0][..], &self.strides[1][..]) else {
            return None;
        };
        let inner = self.dims[1];
        match (outer_a, outer_b) {
            (o, 0) if o == inner => Some(1),
            (0, o) if o == inner => Some(0),
            _ => None,
        }
    }

    /// The output from value `start` on, where input `repeated` is one line of `inner` values:
    /// that line is laid out several times over, so the loop runs over long stretches and
    /// vectorises even when a line is three channels.
    #[inline(always)]
    fn run_repeated<T: Copy>(
        a: &[T],
        b: &[T],
        out: &mut [T],
        start: usize,
        inner: usize,
        repeated: usize,
        f: impl Fn(T, T) -> T,
    ) {
        Self::repeated_stretches(a, b, out, (start, inner, repeated), |a, b, out| {
            let pairs = out.iter_mut().zip(a.iter().zip(b));
            pairs.for_each(|(o, (&x, &y))| *o = f(x, y));
        });
    }

    /// [`Broadcast::run_repeated`]'s walk: `each(a, b, out)` over stretches of whole lines
    /// (at least 64 values, so that short lines still fill vectors), the repeated input's
    /// line laid out over each.
    #[inline(always)]
    fn repeated_stretches<T: Copy>(
        a: &[T],
        b: &[T],
        out: &mut [T],
        (start, inner, repeated): (usize, usize, usize),
        mut each: impl FnMut(&[T], &[T], &mut [T]),
    ) {
        let (line, whole) = match repeated {
            1 => (&b[..inner], a),
            _ => (&a[..inner], b),
        };
        let stretch: Vec<T> = line
            .iter()
            .copied()
            .cycle()
            .take(inner * 64usize.div_ceil(inner))
            .collect();
        let whole = &whole[start..][..out.len()];
        for (out, whole) in out
            .chunks_mut(stretch.len())
            .zip(whole.chunks(stretch.len()))
        {
            let line = &stretch[..out.len()];
            match repeated {
                1 => each(whole, line, out),
                _ => each(line, whole, out),
            }
        }
    }

    /// Values per line of the walk's last axis (the whole output when the shapes are equal).
    fn line_len(&self) -> usize {
        match self.dims.last() {
            Some(&inner) if !self.same_shape => inner,
            _ => 1,
        }
    }

    /// [`Broadcast::run`] for the output from line `first` (of the walk's last axis) on.
    #[inline(always)]
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
        let inner = self.dims[rank - 1];
        if let Some(repeated) = self.repeated_line() {
            return Self::run_repeated(a, b, out, first * inner, inner, repeated, f);
        }
        // The last axis runs in an inner loop; an odometer walks the others.
        let [sa, sb] = [self.strides[0][rank - 1], self.strides[1][rank - 1]];
        let mut index = vec![0usize; rank - 1];
        let mut line = first;
        for i in (0..rank - 1).rev() {
            index[i] = line % self.dims[i];
            line /= self.dims[i];
        }
        let offset =
            |strides: &[usize]| -> usize { index.iter().zip(strides).map(|(i, s)| i * s).sum() };
        // Kept up to date as the odometer turns: recomputing them cost more than a short line
        // (an image's 3 channels) itself.
        let (mut oa, mut ob) = (offset(&self.strides[0]), offset(&self.strides[1]));
        for line in out.chunks_exact_mut(inner) {
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
                let [step_a, step_b] = [self.strides[0][i], self.strides[1][i]];
                index[i] += 1;
                (oa, ob) = (oa + step_a, ob + step_b);
                if index[i] < self.dims[i] {
                    break;
                }
                index[i] = 0;
                (oa, ob) = (oa - step_a * self.dims[i], ob - step_b * self.dims[i]);
            }
        }
    }
}

crate::nn::simd::compiled_per_level! {
    /// [`Broadcast::run_lines`] on FLOAT32 with the operation and its fused activation, compiled
    /// for each instruction set so the loops vectorise at its width.
    #[allow(clippy::too_many_arguments)]
    fn f32_lines(
        broadcast: &Broadcast,
        kind: Kind,
        min: f32,
        max: f32,
        a: &[f32],
        b: &[f32],
        out: &mut [f32],
        first: usize,
    ) = f32_lines_portable
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn f32_lines_portable(
    broadcast: &Broadcast,
    kind: Kind,
    min: f32,
    max: f32,
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    first: usize,
) {
    // One instantiation per operation, so the loop has no branch on the kind.
    macro_rules! run {
        ($f:expr) => {
            broadcast.run_lines(a, b, out, first, |x: f32, y: f32| clamp($f(x, y), min, max))
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

impl Op for Binary {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(2..=2)?;
        let (a, b) = (inputs.get(0)?, inputs.get(1)?);
        let dtype = a.dtype();
        self.quantized = None;
        self.float = dtype == DType::F32;
        if dtype != b.dtype() || !matches!(dtype, DType::F32 | DType::I32 | DType::I8 | DType::U8) {
            return Err(format!(
                "the inputs are {} and {}; petal runs FLOAT32, INT32, INT8 or UINT8 pairs",
                a.dtype(),
                b.dtype()
            ));
        }
        if matches!(dtype, DType::I8 | DType::U8) {
            let output = inputs.output(0)?;
            self.quantized = Some(QuantizedBinary::new(
                self.kind,
                a,
                b,
                output,
                self.activation,
            )?);
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

    fn stored_product(&self) -> Option<StoredProduct> {
        let q = *self.quantized.as_ref()?;
        let one_shape = self.kind == Kind::Mul && self.broadcast.same_shape;
        one_shape.then(|| std::sync::Arc::new(move |x, y| q.product_value(x, y)) as StoredProduct)
    }

    fn residual_range(&self) -> Option<(f32, f32)> {
        let residual = self.kind == Kind::Add && self.float && self.broadcast.same_shape;
        residual.then(|| self.activation.range())
    }

    fn is_plain_float_product(&self) -> bool {
        self.kind == Kind::Mul
            && self.float
            && self.broadcast.same_shape
            && self.activation.is_none()
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        let (Some(a), Some(b)) = (inputs[0], inputs[1]) else {
            return Err("an input is missing".into());
        };
        let kind = self.kind;
        match (&a.data, &b.data, &mut outputs[0].data) {
            (Data::F32(a), Data::F32(b), Data::F32(out)) => {
                let (min, max) = self.activation.range();
                let (broadcast, line) = (&self.broadcast, self.broadcast.line_len());
                let parts = thread_pool::bands(out.len(), PARALLEL_VALUES);
                thread_pool::for_each_band_of(out, line, parts, |first, out| {
                    f32_lines(broadcast, kind, min, max, a, b, out, first / line)
                });
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
            (Data::I8(a), Data::I8(b), Data::I8(out)) => self.run_quantized(a, b, out, i8_lines)?,
            (Data::U8(a), Data::U8(b), Data::U8(out)) => self.run_quantized(a, b, out, u8_lines)?,
            _ => return Err("the tensors are not of the types prepared".into()),
        }
        Ok(())
    }
}

impl Binary {
    fn run_quantized<T: crate::nn::kernels::quantized::Quantized>(
        &self,
        a: &[T],
        b: &[T],
        out: &mut [T],
        lines: QuantizedLines<T>,
    ) -> Result<(), String> {
        let q = self.quantized.as_ref().ok_or("not prepared")?;
        let (broadcast, line) = (&self.broadcast, self.broadcast.line_len());
        let parts = thread_pool::bands(out.len(), PARALLEL_VALUES);
        thread_pool::for_each_band_of(out, line, parts, |first, out| {
            lines(broadcast, q, a, b, out, first / line)
        });
        Ok(())
    }
}

/// Values from which an element-wise operator is split over the threads: fewer than
/// `thread_pool::PARALLEL_VALUES`, because the threads then each read the part of the inputs
/// that the operators before wrote, from their own cache. MobileNetV2's residual ADDs at 14×14
/// (12,544 values) read the other core's half when one thread ran them, and took 3× as long as
/// on one thread alone. The quantized ones compute three fixed-point steps a value besides.
const PARALLEL_VALUES: usize = 1 << 12;

type QuantizedLines<T> = fn(&Broadcast, &QuantizedBinary, &[T], &[T], &mut [T], usize);

crate::nn::simd::compiled_per_level! {
    /// [`quantized::lines`] on int8, compiled for each instruction set.
    fn i8_lines(
        broadcast: &Broadcast,
        q: &QuantizedBinary,
        a: &[i8],
        b: &[i8],
        out: &mut [i8],
        first: usize,
    ) = quantized::lines
}

crate::nn::simd::compiled_per_level! {
    /// [`quantized::lines`] on uint8, compiled for each instruction set.
    fn u8_lines(
        broadcast: &Broadcast,
        q: &QuantizedBinary,
        a: &[u8],
        b: &[u8],
        out: &mut [u8],
        first: usize,
    ) = quantized::lines
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

    #[test]
    fn a_repeated_line_keeps_the_operand_order() {
        // [1, H, W, 3] against [3] both ways round, below and above PARALLEL_VALUES.
        for (h, w) in [(5, 7), (120, 100)] {
            let n = h * w * 3;
            let image = Tensor::f32(vec![1, h, w, 3], (0..n).map(|i| (i % 97) as f32).collect());
            let channels = Tensor::f32(vec![3], vec![1.0, 20.0, 300.0]);
            let x = image.as_f32().unwrap();
            for (first, second, sign) in [(&image, &channels, 1.0), (&channels, &image, -1.0)] {
                let diff = run_single(build_sub(None).unwrap(), &[first, second]).unwrap();
                assert_eq!(diff.shape, [1, h, w, 3]);
                for (i, &d) in diff.as_f32().unwrap().iter().enumerate() {
                    let want = sign * (x[i] - [1.0, 20.0, 300.0][i % 3]);
                    assert_eq!(d, want, "{h}×{w} at {i}");
                }
            }
        }
    }
}
