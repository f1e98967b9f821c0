//! AVERAGE_POOL_2D and MAX_POOL_2D. As in TensorFlow Lite, an average counts only the taps
//! inside the image, and padding never wins a maximum. On int8 and uint8 the stored values are
//! pooled as they are (LiteRT's kernels require the input's quantization for the output), an
//! average rounded half away from zero.

use super::fused_activation::Fused;
use super::padding::window_axis;
use super::quantized::{activation_bounds, affine, with_quantized};
use super::{checked, f32_in, f32_out, nhwc, options, Inputs, Op, Out, TilingMaxPool};
use crate::nn::kernels::clamp;
use crate::nn::kernels::quantized::Quantized;
use crate::nn::layers::window::Axis;
use crate::nn::thread_pool;
use crate::tflite::schema::{BuiltinOptions, Pool2DOptions};
use crate::tflite::tensor::{DType, Data, Tensor};

#[derive(Clone, Copy)]
enum Kind {
    Average,
    Max,
}

pub(super) fn build_average(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    build(options, Kind::Average)
}

pub(super) fn build_max(options: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    build(options, Kind::Max)
}

fn build(options: Option<&BuiltinOptions>, kind: Kind) -> Result<Box<dyn Op>, String> {
    let o = options!(options, Pool2DOptions).ok_or("its Pool2DOptions are missing")?;
    Ok(Box::new(Pool {
        kind,
        activation: Fused::new(o.fused_activation_function)?,
        options: o.clone(),
        axes: None,
        bounds: None,
    }))
}

struct Pool {
    kind: Kind,
    activation: Fused,
    options: Pool2DOptions,
    axes: Option<(Axis, Axis, usize)>,
    /// For int8 and uint8: the fused activation's range in stored values.
    bounds: Option<(i32, i32)>,
}

impl Op for Pool {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(1..=1)?;
        let x = inputs.get(0)?;
        let [n, h, w, c] = nhwc(x, "input")?;
        self.bounds = match x.dtype() {
            DType::F32 => None,
            DType::I8 | DType::U8 => {
                let y = inputs.output(0)?;
                if y.dtype() != x.dtype() {
                    return Err(format!(
                        "a {} input makes a {} output",
                        x.dtype(),
                        y.dtype()
                    ));
                }
                affine(x, "input")?;
                Some(activation_bounds(
                    self.activation,
                    affine(y, "output")?,
                    y.dtype(),
                )?)
            }
            other => return Err(format!("petal pools FLOAT32, INT8 and UINT8, not {other}")),
        };
        let o = &self.options;
        let window = |v: i32| {
            usize::try_from(v)
                .ok()
                .filter(|&v| v >= 1)
                .ok_or_else(|| format!("the pool window must be at least 1, got {v}"))
        };
        let rows = window_axis(h, window(o.filter_height)?, o.stride_h, 1, o.padding)?;
        let cols = window_axis(w, window(o.filter_width)?, o.stride_w, 1, o.padding)?;
        self.axes = Some((rows, cols, c));
        Ok(vec![Out::new(
            x.dtype(),
            checked(vec![n, rows.output, cols.output, c])?,
        )])
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        let (rows, cols, c) = self.axes.ok_or("not prepared")?;
        if let Some(bounds) = self.bounds {
            let x = inputs[0].ok_or("the input is missing")?;
            let mismatch = || "the tensors are not of the types prepared".to_string();
            if let Kind::Max = self.kind {
                let axes = (&rows, &cols, c);
                match (&x.data, &mut outputs[0].data) {
                    (Data::I8(x), Data::I8(y)) => max_pool(axes, narrow(bounds), x, y),
                    (Data::U8(x), Data::U8(y)) => max_pool(axes, narrow(bounds), x, y),
                    _ => return Err(mismatch()),
                }
                return Ok(());
            }
            let axes = (&rows, &cols, c);
            return with_quantized!(&x.data, x => with_quantized!(&mut outputs[0].data,
                y => { average_pool_quantized(axes, bounds, x, y); Ok(()) },
                Err(mismatch())), Err(mismatch()));
        }
        let x = f32_in(inputs, 0)?;
        let y = f32_out(outputs, 0)?;
        let image_len = rows.input * cols.input * c;
        let out_len = rows.output * cols.output * c;
        let (min, max) = self.activation.range();
        if let Kind::Max = self.kind {
            max_pool((&rows, &cols, c), (min, max), x, y);
            return Ok(());
        }
        for (x, y) in x.chunks_exact(image_len).zip(y.chunks_exact_mut(out_len)) {
            thread_pool::for_each_band(y, cols.output * c, |first, y| {
                average_pixels(&rows, &cols, c, min, max, x, y, first / c.max(1))
            });
        }
        Ok(())
    }

    fn tiling_max_pool(&self) -> Option<TilingMaxPool> {
        let (rows, cols, _) = self.axes.as_ref()?;
        let tiles =
            |a: &Axis| a.window == a.stride && a.pad_before == 0 && a.output * a.stride <= a.input;
        let max = matches!(self.kind, Kind::Max);
        (max && self.activation.is_none() && tiles(rows) && tiles(cols)).then_some(TilingMaxPool {
            rows: rows.window,
            cols: cols.window,
        })
    }
}

/// The stored bounds of the fused activation, which lie within the type's range.
fn narrow<T: TryFrom<i32> + Copy>((min, max): (i32, i32)) -> (T, T) {
    let fit = |v: i32| {
        T::try_from(v)
            .ok()
            .expect("activation bounds within the stored type")
    };
    (fit(min), fit(max))
}

/// MAX_POOL_2D on float32, or on int8 or uint8 whose output shares the input's quantization
/// (the largest stored value wins): clamped to the fused activation's range, one band of rows
/// per task.
fn max_pool<T: MaxPooled>(
    (rows, cols, c): (&Axis, &Axis, usize),
    bounds: (T, T),
    x: &[T],
    y: &mut [T],
) {
    let image_len = rows.input * cols.input * c;
    let out_len = rows.output * cols.output * c;
    for (x, y) in x.chunks_exact(image_len).zip(y.chunks_exact_mut(out_len)) {
        thread_pool::for_each_band(y, cols.output * c, |first, y| {
            T::max_pixels(rows, cols, c, bounds, x, y, first / c.max(1))
        });
    }
}

/// Values MAX_POOL_2D compares as they are: float32, and int8 or uint8 stored values.
trait MaxPooled: Copy + Send + Sync {
    /// Where a maximum starts, as in LiteRT's reference kernels (`lowest()`).
    const LOWEST: Self;
    /// The larger of two (for floats, a NaN loses, as `f32::max` has it).
    fn larger(self, other: Self) -> Self;
    fn smaller(self, other: Self) -> Self;

    #[allow(clippy::too_many_arguments)]
    fn max_pixels(
        rows: &Axis,
        cols: &Axis,
        c: usize,
        bounds: (Self, Self),
        x: &[Self],
        y: &mut [Self],
        first: usize,
    );
}

macro_rules! max_pool_per_level {
    ($t:ty, $name:ident) => {
        crate::nn::simd::compiled_per_level! {
            #[allow(clippy::too_many_arguments)]
            fn $name(
                rows: &Axis,
                cols: &Axis,
                c: usize,
                bounds: ($t, $t),
                x: &[$t],
                y: &mut [$t],
                first: usize,
            ) = max_pixels_portable
        }

        impl MaxPooled for $t {
            const LOWEST: Self = <$t>::MIN;
            #[inline(always)]
            fn larger(self, other: Self) -> Self {
                self.max(other)
            }
            #[inline(always)]
            fn smaller(self, other: Self) -> Self {
                self.min(other)
            }
            fn max_pixels(
                rows: &Axis,
                cols: &Axis,
                c: usize,
                bounds: (Self, Self),
                x: &[Self],
                y: &mut [Self],
                first: usize,
            ) {
                $name(rows, cols, c, bounds, x, y, first)
            }
        }
    };
}

max_pool_per_level!(i8, max_pixels_i8);
max_pool_per_level!(u8, max_pixels_u8);
max_pool_per_level!(f32, max_pixels_f32);

/// Whole output rows from pixel `first` on (as many as `y` holds): each row's window rows
/// folded into one line with `max`, then each pixel's window columns of that line, so that
/// every loop runs over contiguous values.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn max_pixels_portable<T: MaxPooled>(
    rows: &Axis,
    cols: &Axis,
    c: usize,
    (min, max): (T, T),
    x: &[T],
    y: &mut [T],
    first: usize,
) {
    let line_len = cols.input * c;
    let mut line = vec![min; line_len];
    let first_row = first / cols.output.max(1);
    for (oy, out_row) in (first_row..).zip(y.chunks_exact_mut(cols.output * c)) {
        let mut sources = (0..rows.window).filter_map(|k| rows.source(oy, k));
        // A window wholly in the padding has no taps: the lowest value clamped, as in the
        // reference kernels.
        let start = T::LOWEST.larger(min).smaller(max);
        let Some(top) = sources.next() else {
            out_row.fill(start);
            continue;
        };
        line.copy_from_slice(&x[top * line_len..][..line_len]);
        for iy in sources {
            for (l, &v) in line.iter_mut().zip(&x[iy * line_len..][..line_len]) {
                *l = l.larger(v);
            }
        }
        // Column by column over the whole row, so that no pixel's values wait on its own
        // previous store.
        out_row.fill(T::LOWEST.larger(min));
        for kx in 0..cols.window {
            for (ox, out) in out_row.chunks_exact_mut(c).enumerate() {
                let Some(ix) = cols.source(ox, kx) else {
                    continue;
                };
                for (o, &v) in out.iter_mut().zip(&line[ix * c..][..c]) {
                    *o = o.larger(v);
                }
            }
        }
        for o in out_row.iter_mut() {
            *o = o.smaller(max);
        }
    }
}

/// AVERAGE_POOL_2D on stored values as LiteRT's reference integer kernel does it: the average
/// of the taps inside the image, rounded half away from zero.
fn average_pool_quantized<T: Quantized, U: Quantized>(
    (rows, cols, c): (&Axis, &Axis, usize),
    (min, max): (i32, i32),
    x: &[T],
    y: &mut [U],
) {
    let image_len = rows.input * cols.input * c;
    let out_len = rows.output * cols.output * c;
    let mut acc = vec![0i32; c];
    for (x, y) in x.chunks_exact(image_len).zip(y.chunks_exact_mut(out_len)) {
        for (p, out) in y.chunks_exact_mut(c).enumerate() {
            let (oy, ox) = (p / cols.output, p % cols.output);
            acc.fill(0);
            let mut count = 0i32;
            for iy in (0..rows.window).filter_map(|k| rows.source(oy, k)) {
                for ix in (0..cols.window).filter_map(|k| cols.source(ox, k)) {
                    let pixel = &x[(iy * cols.input + ix) * c..][..c];
                    for (a, v) in acc.iter_mut().zip(pixel) {
                        *a += v.get();
                    }
                    count += 1;
                }
            }
            for (o, &a) in out.iter_mut().zip(&acc) {
                // C's truncating division.
                let v = match (count, a > 0) {
                    (0, _) => 0,
                    (_, true) => (a + count / 2) / count,
                    (_, false) => (a - count / 2) / count,
                };
                *o = U::narrow(v.clamp(min, max));
            }
        }
    }
}

crate::nn::simd::compiled_per_level! {
    /// AVERAGE_POOL_2D of float output pixels `first…` of one image (as many as `y` holds),
    /// each clamped to `min…max` (the fused activation), compiled for each instruction set so
    /// the channel loops vectorise at its width.
    #[allow(clippy::too_many_arguments)]
    fn average_pixels(
        rows: &Axis,
        cols: &Axis,
        c: usize,
        min: f32,
        max: f32,
        x: &[f32],
        y: &mut [f32],
        first: usize,
    ) = average_pixels_portable
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn average_pixels_portable(
    rows: &Axis,
    cols: &Axis,
    c: usize,
    min: f32,
    max: f32,
    x: &[f32],
    y: &mut [f32],
    first: usize,
) {
    for (p, out) in (first..).zip(y.chunks_exact_mut(c)) {
        let (oy, ox) = (p / cols.output, p % cols.output);
        out.fill(0.0);
        let mut count = 0usize;
        for iy in (0..rows.window).filter_map(|k| rows.source(oy, k)) {
            for ix in (0..cols.window).filter_map(|k| cols.source(ox, k)) {
                let pixel = &x[(iy * cols.input + ix) * c..][..c];
                out.iter_mut().zip(pixel).for_each(|(o, &v)| *o += v);
                count += 1;
            }
        }
        // A window wholly in the padding has no taps: TensorFlow Lite gives 0.
        let scale = 1.0 / count.max(1) as f32;
        out.iter_mut()
            .for_each(|o| *o = clamp(*o * scale, min, max));
    }
}
