//! AVERAGE_POOL_2D and MAX_POOL_2D. As in TensorFlow Lite, an average counts only the taps
//! inside the image, and padding never wins a maximum.

use super::fused_activation::Fused;
use super::padding::window_axis;
use super::{checked, f32_in, f32_out, nhwc, options, Inputs, Op, Out};
use crate::nn::kernels::clamp;
use crate::nn::layers::window::Axis;
use crate::nn::thread_pool;
use crate::tflite::schema::{BuiltinOptions, Pool2DOptions};
use crate::tflite::tensor::Tensor;

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
    }))
}

struct Pool {
    kind: Kind,
    activation: Fused,
    options: Pool2DOptions,
    axes: Option<(Axis, Axis, usize)>,
}

impl Op for Pool {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(1..=1)?;
        let [n, h, w, c] = nhwc(inputs.f32(0, "input")?, "input")?;
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
        Ok(vec![Out::f32(checked(vec![
            n,
            rows.output,
            cols.output,
            c,
        ])?)])
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        let (rows, cols, c) = self.axes.ok_or("not prepared")?;
        let x = f32_in(inputs, 0)?;
        let y = f32_out(outputs, 0)?;
        let image_len = rows.input * cols.input * c;
        let out_len = rows.output * cols.output * c;
        let (kind, (min, max)) = (self.kind, self.activation.range());
        for (x, y) in x.chunks_exact(image_len).zip(y.chunks_exact_mut(out_len)) {
            thread_pool::for_each_band(y, cols.output * c, |first, y| {
                pool_pixels(kind, &rows, &cols, c, min, max, x, y, first / c.max(1))
            });
        }
        Ok(())
    }
}

crate::nn::simd::compiled_per_level! {
    /// Output pixels `first…` of one image (as many as `y` holds), each clamped to `min…max`
    /// (the fused activation), compiled for each instruction set so the channel loops
    /// vectorise at its width.
    #[allow(clippy::too_many_arguments)]
    fn pool_pixels(
        kind: Kind,
        rows: &Axis,
        cols: &Axis,
        c: usize,
        min: f32,
        max: f32,
        x: &[f32],
        y: &mut [f32],
        first: usize,
    ) = pool_pixels_portable
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pool_pixels_portable(
    kind: Kind,
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
        let start = match kind {
            Kind::Average => 0.0,
            Kind::Max => f32::MIN,
        };
        out.fill(start);
        let mut count = 0usize;
        for iy in (0..rows.window).filter_map(|k| rows.source(oy, k)) {
            for ix in (0..cols.window).filter_map(|k| cols.source(ox, k)) {
                let pixel = &x[(iy * cols.input + ix) * c..][..c];
                match kind {
                    Kind::Average => out.iter_mut().zip(pixel).for_each(|(o, &v)| *o += v),
                    Kind::Max => out.iter_mut().zip(pixel).for_each(|(o, &v)| *o = o.max(v)),
                }
                count += 1;
            }
        }
        // A window wholly in the padding has no taps: TensorFlow Lite gives 0.
        let scale = match kind {
            Kind::Average => 1.0 / count.max(1) as f32,
            Kind::Max => 1.0,
        };
        out.iter_mut()
            .for_each(|o| *o = clamp(*o * scale, min, max));
    }
}
