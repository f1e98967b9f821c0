//! Depthwise convolution (each channel filtered on its own), NHWC: the inner loops run along the
//! channels, which sit next to each other in memory, so they vectorise at every level.

use super::ThenApply;
use crate::nn::layers::window::Axis;
use crate::nn::simd::Level;
use crate::nn::thread_pool;
use std::ops::Range;

/// The shape of one depthwise convolution: input channel `c` makes output channels
/// `c·multiplier … c·multiplier + multiplier − 1`, as TensorFlow's DepthwiseConv2D.
#[derive(Clone)]
pub(crate) struct Depthwise {
    pub rows: Axis,
    pub cols: Axis,
    pub channels: usize,
    pub multiplier: usize,
    /// The output's clamp (the fused activation).
    pub min: f32,
    pub max: f32,
    /// The instruction set it runs at.
    pub level: Level,
}

/// Multiply-adds below which one thread does the whole image: handing out tasks costs more.
const PARALLEL_WORK: usize = 1 << 15;

impl Depthwise {
    pub fn out_channels(&self) -> usize {
        self.channels * self.multiplier
    }

    /// Filters one image `x` into `y` with `filter` (taps × output channels) and `bias`, then
    /// `then` over each band of rows. Panics if a slice is shorter than the geometry says;
    /// callers check the shapes first.
    pub fn run(
        &self,
        x: &[f32],
        filter: &[f32],
        bias: Option<&[f32]>,
        y: &mut [f32],
        then: ThenApply,
    ) {
        let row_len = self.cols.output * self.out_channels();
        let taps = self.rows.window * self.cols.window;
        assert!(
            x.len() >= self.rows.input * self.cols.input * self.channels
                && filter.len() >= taps * self.out_channels()
                && bias.is_none_or(|b| b.len() >= self.out_channels())
                && y.len() >= self.rows.output * row_len
        );
        let y = &mut y[..self.rows.output * row_len];
        let threads = thread_pool::threads();
        if y.len() * taps >= PARALLEL_WORK && threads > 1 && self.rows.output > 1 {
            // About four tasks a thread, so a thread the system delays holds up little.
            thread_pool::for_each_band_of(y, row_len, threads * 4, |offset, rows| {
                self.rows_from((x, 0), filter, bias, offset / row_len, rows);
                if let Some(then) = then {
                    then(rows);
                }
            });
        } else {
            self.rows_from((x, 0), filter, bias, 0, y);
            if let Some(then) = then {
                then(y);
            }
        }
    }

    /// Output rows `first…` (as many as `y` holds) on this thread, from `x`: the input's rows
    /// from `x_first` on, at least those the output rows read. For a caller that makes the
    /// input a band of rows at a time and splits the work itself.
    pub fn rows_from(
        &self,
        (x, x_first): (&[f32], usize),
        filter: &[f32],
        bias: Option<&[f32]>,
        first: usize,
        y: &mut [f32],
    ) {
        let vectorised = self.multiplier == 1
            && super::depthwise_vector::rows(self, (x, x_first), filter, bias, first, y);
        if !vectorised {
            depthwise_rows(self, (x, x_first), filter, bias, first, y)
        }
    }

    /// The input rows that output rows `rows` read (within the image).
    pub fn input_rows(&self, rows: Range<usize>) -> Range<usize> {
        if rows.is_empty() {
            return 0..0;
        }
        let (_, first) = self.rows.taps(rows.start);
        let (taps, last) = self.rows.taps(rows.end - 1);
        let end = last + taps.len().saturating_sub(1) * self.rows.dilation + 1;
        first.min(self.rows.input)..end.min(self.rows.input)
    }
}

crate::nn::simd::compiled_per_level! {
    /// Output rows `first…` of a depthwise convolution, as many as `y` holds.
    fn depthwise_rows(
        d: &Depthwise,
        x: (&[f32], usize),
        filter: &[f32],
        bias: Option<&[f32]>,
        first: usize,
        y: &mut [f32],
    ) = depthwise_rows_portable
}

#[inline(always)]
fn depthwise_rows_portable(
    d: &Depthwise,
    (x, x_first): (&[f32], usize),
    filter: &[f32],
    bias: Option<&[f32]>,
    first: usize,
    y: &mut [f32],
) {
    let out_channels = d.out_channels();
    let line_len = d.cols.input * d.channels;
    let row_len = d.cols.output * out_channels;
    // The input and filter offsets of every tap, from a pixel whose window lies inside the
    // image; and, for a pixel at the border, of the taps inside it.
    let mut all_taps = Vec::with_capacity(d.rows.window * d.cols.window);
    for ky in 0..d.rows.window {
        for kx in 0..d.cols.window {
            let pixel = ky * d.rows.dilation * line_len + kx * d.cols.dilation * d.channels;
            all_taps.push((pixel, (ky * d.cols.window + kx) * out_channels));
        }
    }
    let mut taps: Vec<(usize, usize)> = Vec::with_capacity(all_taps.len());
    for (r, row) in y.chunks_exact_mut(row_len).enumerate() {
        let (ky_range, first_iy) = d.rows.taps(first + r);
        let first_iy = first_iy.saturating_sub(x_first);
        for (ox, out) in row.chunks_exact_mut(out_channels).enumerate() {
            let (kx_range, first_ix) = d.cols.taps(ox);
            let corner = first_iy * line_len + first_ix * d.channels;
            if ky_range.len() == d.rows.window && kx_range.len() == d.cols.window {
                if d.multiplier == 1 {
                    one_per_channel(d, &x[corner..], filter, bias, &all_taps, out);
                } else {
                    several_per_channel(d, &x[corner..], filter, bias, &all_taps, out);
                }
                continue;
            }
            taps.clear();
            for (i, ky) in ky_range.clone().enumerate() {
                let line = (first_iy + i * d.rows.dilation) * line_len;
                for (j, kx) in kx_range.clone().enumerate() {
                    let pixel = line + (first_ix + j * d.cols.dilation) * d.channels;
                    taps.push((pixel, (ky * d.cols.window + kx) * out_channels));
                }
            }
            if d.multiplier == 1 {
                one_per_channel(d, x, filter, bias, &taps, out);
            } else {
                several_per_channel(d, x, filter, bias, &taps, out);
            }
        }
    }
}

#[inline(always)]
fn one_per_channel(
    d: &Depthwise,
    x: &[f32],
    filter: &[f32],
    bias: Option<&[f32]>,
    taps: &[(usize, usize)],
    out: &mut [f32],
) {
    let channels = d.channels;
    let mut c = 0;
    // Blocks of 16 channels (one AVX-512 register, two AVX2 or four NEON ones) and 8, whose
    // accumulators the compiler keeps in registers across all the taps.
    while c + 16 <= channels {
        block::<16>(d, x, filter, bias, taps, c, out);
        c += 16;
    }
    if c + 8 <= channels {
        block::<8>(d, x, filter, bias, taps, c, out);
        c += 8;
    }
    while c < channels {
        block::<1>(d, x, filter, bias, taps, c, out);
        c += 1;
    }
}

/// Channels `c…c + N` of one output pixel.
#[inline(always)]
fn block<const N: usize>(
    d: &Depthwise,
    x: &[f32],
    filter: &[f32],
    bias: Option<&[f32]>,
    taps: &[(usize, usize)],
    c: usize,
    out: &mut [f32],
) {
    let mut acc = [0.0f32; N];
    if let Some(b) = bias {
        acc.copy_from_slice(&b[c..c + N]);
    }
    for &(xi, fi) in taps {
        let pixel: &[f32; N] = x[xi + c..][..N].try_into().expect("N values");
        let tap: &[f32; N] = filter[fi + c..][..N].try_into().expect("N values");
        for k in 0..N {
            acc[k] += pixel[k] * tap[k];
        }
    }
    for (o, a) in out[c..c + N].iter_mut().zip(&acc) {
        *o = super::clamp(*a, d.min, d.max);
    }
}

#[inline(always)]
fn several_per_channel(
    d: &Depthwise,
    x: &[f32],
    filter: &[f32],
    bias: Option<&[f32]>,
    taps: &[(usize, usize)],
    out: &mut [f32],
) {
    match bias {
        Some(b) => out.copy_from_slice(&b[..out.len()]),
        None => out.fill(0.0),
    }
    for &(xi, fi) in taps {
        let pixel = &x[xi..][..d.channels];
        let tap = &filter[fi..][..out.len()];
        for ((a, f), &v) in out
            .chunks_exact_mut(d.multiplier)
            .zip(tap.chunks_exact(d.multiplier))
            .zip(pixel)
        {
            a.iter_mut().zip(f).for_each(|(a, &f)| *a += v * f);
        }
    }
    for a in out.iter_mut() {
        *a = super::clamp(*a, d.min, d.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::Padding;

    /// The definition, one output at a time.
    fn reference(d: &Depthwise, x: &[f32], filter: &[f32], bias: &[f32]) -> Vec<f32> {
        let oc = d.out_channels();
        let mut y = Vec::new();
        for oy in 0..d.rows.output {
            for ox in 0..d.cols.output {
                for o in 0..oc {
                    let mut sum = bias[o];
                    for ky in 0..d.rows.window {
                        for kx in 0..d.cols.window {
                            if let (Some(iy), Some(ix)) =
                                (d.rows.source(oy, ky), d.cols.source(ox, kx))
                            {
                                let v = x[(iy * d.cols.input + ix) * d.channels + o / d.multiplier];
                                sum += v * filter[(ky * d.cols.window + kx) * oc + o];
                            }
                        }
                    }
                    y.push(sum.clamp(d.min, d.max));
                }
            }
        }
        y
    }

    #[test]
    fn matches_the_definition_with_strides_dilation_padding_and_multipliers_at_every_level() {
        for (size, window, stride, dilation, multiplier, channels, padding) in [
            (7, 3, 1, 1, 1, 5, Padding::Same),
            (8, 3, 2, 1, 1, 20, Padding::Same),
            (9, 5, 2, 1, 2, 5, Padding::Valid),
            (10, 3, 1, 2, 3, 5, Padding::Same),
            (40, 3, 1, 1, 1, 37, Padding::Same),
            (11, 5, 1, 1, 1, 16, Padding::Same),
            (12, 5, 2, 1, 1, 8, Padding::Valid),
            (9, 3, 2, 2, 1, 24, Padding::Same),
            (6, 2, 1, 1, 1, 19, Padding::Same),
            (3, 5, 1, 1, 1, 33, Padding::Same),
            (20, 3, 2, 1, 1, 32, Padding::Same),
            (17, 5, 2, 1, 1, 16, Padding::Same),
        ] {
            let axis = Axis::dilated(size, window, stride, dilation, padding).unwrap();
            for level in Level::available() {
                let d = Depthwise {
                    rows: axis,
                    cols: axis,
                    channels,
                    multiplier,
                    min: -0.5,
                    max: 6.0,
                    level,
                };
                let value = |i: usize| ((i * 7919) % 23) as f32 / 11.0 - 1.0;
                let x: Vec<f32> = (0..size * size * channels).map(value).collect();
                let filter: Vec<f32> = (0..window * window * d.out_channels())
                    .map(|i| value(i + 5))
                    .collect();
                let bias: Vec<f32> = (0..d.out_channels()).map(|i| value(i + 9)).collect();
                let mut y = vec![f32::NAN; axis.output * axis.output * d.out_channels()];
                d.run(&x, &filter, Some(&bias), &mut y, None);
                let want = reference(&d, &x, &filter, &bias);
                let mut unbiased = vec![0.0; y.len()];
                d.run(&x, &filter, None, &mut unbiased, None);
                let negate = |v: &mut [f32]| v.iter_mut().for_each(|v| *v = -*v);
                let mut negated = vec![f32::NAN; y.len()];
                d.run(&x, &filter, Some(&bias), &mut negated, Some(&negate));
                assert!(
                    negated.iter().zip(&y).all(|(n, y)| *n == -*y),
                    "{level}: then"
                );
                let zeros = vec![0.0; bias.len()];
                let want_unbiased = reference(&d, &x, &filter, &zeros);
                for (a, b) in y
                    .iter()
                    .chain(&unbiased)
                    .zip(want.iter().chain(&want_unbiased))
                {
                    assert!(
                        (a - b).abs() < 1e-5,
                        "{level}, {channels} channels: {a} vs {b}"
                    );
                }
            }
        }
    }
}
