//! MEAN, SUM, REDUCE_MAX, REDUCE_MIN and REDUCE_PROD over any set of axes (given as a constant
//! input), keeping the reduced axes as 1s with `keep_dims`; MEAN of int8 and uint8 too
//! ([`quantized`]).

mod quantized;

use super::{axis, f32_in, f32_out, options, Inputs, Op, Out};
use crate::nn::thread_pool::{self, PARALLEL_VALUES};
use crate::tflite::schema::BuiltinOptions;
use crate::tflite::tensor::{DType, Tensor};
use quantized::QuantizedMean;

#[derive(Clone, Copy)]
enum Kind {
    Mean,
    Sum,
    Max,
    Min,
    Prod,
}

fn build(options: Option<&BuiltinOptions>, kind: Kind) -> Result<Box<dyn Op>, String> {
    let o = options!(options, ReducerOptions)
        .cloned()
        .unwrap_or_default();
    Ok(Box::new(Reduce {
        kind,
        keep_dims: o.keep_dims,
        plan: Plan::default(),
        quantized: None,
    }))
}

pub(super) fn build_mean(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    build(options, Kind::Mean)
}
pub(super) fn build_sum(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    build(options, Kind::Sum)
}
pub(super) fn build_max(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    build(options, Kind::Max)
}
pub(super) fn build_min(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    build(options, Kind::Min)
}
pub(super) fn build_prod(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    build(options, Kind::Prod)
}

/// The input's shape, and for each of its axes the stride of the matching output position (0
/// for a reduced axis).
#[derive(Default)]
struct Plan {
    dims: Vec<usize>,
    out_strides: Vec<usize>,
    /// Input values per output value.
    per_output: usize,
}

impl Plan {
    /// The output's length when each of its values is one position of the last axis, summed
    /// over all the others (a global average pool).
    fn over_all_but_last(&self) -> Option<usize> {
        let (&last, others) = self.out_strides.split_last()?;
        let summed = |(&stride, &dim): (&usize, &usize)| stride == 0 || dim == 1;
        (last == 1 && others.iter().zip(&self.dims).all(summed))
            .then(|| self.dims[self.dims.len() - 1])
    }

    /// Folds each input value into its output value with `combine`.
    fn reduce<T: Copy, A: Copy>(&self, x: &[T], y: &mut [A], combine: impl Fn(A, T) -> A) {
        let Plan {
            dims, out_strides, ..
        } = self;
        let rank = dims.len();
        if rank == 0 || x.is_empty() {
            y.iter_mut().zip(x).for_each(|(y, &v)| *y = combine(*y, v));
            return;
        }
        // The last axis runs in an inner loop; an odometer walks the others.
        let inner = dims[rank - 1];
        let inner_stride = out_strides[rank - 1];
        let mut index = vec![0usize; rank - 1];
        for line in x.chunks_exact(inner) {
            let base: usize = index.iter().zip(out_strides).map(|(i, s)| i * s).sum();
            if inner_stride == 0 {
                y[base] = line.iter().fold(y[base], |acc, &v| combine(acc, v));
            } else {
                let out = &mut y[base..][..inner];
                out.iter_mut()
                    .zip(line)
                    .for_each(|(o, &v)| *o = combine(*o, v));
            }
            for a in (0..rank - 1).rev() {
                index[a] += 1;
                if index[a] < dims[a] {
                    break;
                }
                index[a] = 0;
            }
        }
    }
}

crate::nn::simd::compiled_per_level! {
    /// Adds values `first…first + sums.len()` of each `line`-value line of `x` onto `sums`,
    /// line after line.
    fn column_sums(x: &[f32], line: usize, first: usize, sums: &mut [f32]) = column_sums_portable
}

#[inline(always)]
fn column_sums_portable(x: &[f32], line: usize, first: usize, sums: &mut [f32]) {
    for line in x.chunks_exact(line.max(1)) {
        for (s, v) in sums.iter_mut().zip(&line[first..]) {
            *s += v;
        }
    }
}

struct Reduce {
    kind: Kind,
    keep_dims: bool,
    plan: Plan,
    /// For a quantized input: how the sums become outputs.
    quantized: Option<QuantizedMean>,
}

impl Op for Reduce {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(2..=2)?;
        let x = inputs.get(0)?;
        let dtype = x.dtype();
        let (axes, _) = inputs.int_constant(1, "axes")?;
        let rank = x.shape.len();
        let mut reduced = vec![false; rank];
        for a in axes {
            reduced[axis(a, rank)?] = true;
        }
        let mut shape = Vec::new();
        for (d, &r) in x.shape.iter().zip(&reduced) {
            match (r, self.keep_dims) {
                (false, _) => shape.push(*d),
                (true, true) => shape.push(1),
                (true, false) => {}
            }
        }
        let mut out_strides = vec![0; rank];
        let mut stride = 1;
        for a in (0..rank).rev() {
            if !reduced[a] {
                out_strides[a] = stride;
                stride *= x.shape[a];
            }
        }
        let per_output = (0..rank)
            .filter(|&a| reduced[a])
            .map(|a| x.shape[a])
            .product();
        self.plan = Plan {
            dims: x.shape.clone(),
            out_strides,
            per_output,
        };
        self.quantized = match (dtype, self.kind) {
            (DType::F32, _) => None,
            (DType::I8 | DType::U8, Kind::Mean) => {
                Some(QuantizedMean::new(x, inputs.output(0)?, per_output)?)
            }
            _ => {
                return Err(format!(
                    "petal reduces FLOAT32, and takes the MEAN of INT8 and UINT8; got {dtype}"
                ))
            }
        };
        Ok(vec![Out::new(dtype, shape)])
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        if let Some(q) = &self.quantized {
            let x = inputs[0].ok_or("the input is missing")?;
            return q.run(&self.plan, &x.data, &mut outputs[0].data);
        }
        let x = f32_in(inputs, 0)?;
        let y = f32_out(outputs, 0)?;
        let start = match self.kind {
            Kind::Mean | Kind::Sum => 0.0,
            Kind::Max => f32::MIN,
            Kind::Min => f32::MAX,
            Kind::Prod => 1.0,
        };
        y.fill(start);
        let combine = |acc: f32, v: f32| match self.kind {
            Kind::Mean | Kind::Sum => acc + v,
            Kind::Max => acc.max(v),
            Kind::Min => acc.min(v),
            Kind::Prod => acc * v,
        };
        match (self.kind, self.plan.over_all_but_last()) {
            // The same additions in the same order, in vectors of the selected level.
            // In parts of the channels on the threads when large: each thread sums those
            // the convolution before wrote on it (MobileNetV2's 7×7×1280 MEAN read the other
            // core's half, and took longer on two threads than on one).
            (Kind::Mean | Kind::Sum, Some(inner)) if inner == y.len() => {
                let parts = thread_pool::bands(x.len(), PARALLEL_VALUES);
                thread_pool::for_each_band_of(y, 16, parts, |first, sums| {
                    column_sums(x, inner, first, sums)
                })
            }
            _ => self.plan.reduce(x, y, combine),
        }
        if let Kind::Mean = self.kind {
            let count = self.plan.per_output.max(1) as f32;
            y.iter_mut().for_each(|v| *v /= count);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tflite::ops::run_single;
    use crate::tflite::tensor::Tensor;

    #[test]
    fn reduces_any_axes_with_and_without_kept_dims() {
        let x = Tensor::f32(vec![2, 3, 2], (0..12).map(|v| v as f32).collect());
        let axes = Tensor::i32(vec![2], vec![0, -1]);
        let options = crate::tflite::schema::ReducerOptions { keep_dims: true };
        let mean = run_single(
            build_mean(Some(&BuiltinOptions::ReducerOptions(Box::new(options)))).unwrap(),
            &[&x, &axes],
        )
        .unwrap();
        assert_eq!(mean.shape, [1, 3, 1]);
        assert_eq!(mean.as_f32().unwrap(), [3.5, 5.5, 7.5]);
        let max = run_single(
            build_max(None).unwrap(),
            &[&x, &Tensor::i32(vec![], vec![1])],
        )
        .unwrap();
        assert_eq!(max.shape, [2, 2]);
        assert_eq!(max.as_f32().unwrap(), [4.0, 5.0, 10.0, 11.0]);
    }

    /// A global average pool large enough to split its channels over the threads (7×7×1300,
    /// the parts not whole vectors at the end) gives the sums of each channel in pixel order.
    #[test]
    fn a_large_mean_over_the_pixels_sums_each_channel_in_order() {
        let (pixels, channels) = (49, 1300);
        let values: Vec<f32> = (0..pixels * channels)
            .map(|i| ((i * 7919) % 101) as f32 / 9.0 - 5.0)
            .collect();
        let x = Tensor::f32(vec![1, 7, 7, channels], values.clone());
        let axes = Tensor::i32(vec![2], vec![1, 2]);
        let mean = run_single(build_mean(None).unwrap(), &[&x, &axes]).unwrap();
        assert_eq!(mean.shape, [1, channels]);
        let want: Vec<f32> = (0..channels)
            .map(|c| (0..pixels).fold(0.0, |s, p| s + values[p * channels + c]) / pixels as f32)
            .collect();
        assert_eq!(mean.as_f32().unwrap(), want);
    }
}
