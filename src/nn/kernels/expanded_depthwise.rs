//! A 1×1 convolution whose output only a depthwise convolution reads (the expansion of
//! MobileNetV2's inverted residual blocks, six times the channels of the block's input), made a
//! band of rows at a time into a buffer the core's cache holds and read there by the depthwise
//! convolution, instead of written whole and read back. At 112×112 the expanded tensor is
//! 4.8 MB, more than a core's level-2 cache: the two operators spent more time moving it than
//! multiplying.

use super::depthwise::Depthwise;
use super::packed_gemm::PackedB;
use super::ThenApply;
use crate::nn::thread_pool;
use std::cell::RefCell;
use std::ops::Range;

/// Bytes of expanded rows a band holds: well within a core's level-2 cache (1–2 MB on the
/// cores measured), beside the rows of input and output it reads and writes meanwhile.
const BAND_BYTES: usize = 192 << 10;

/// Expanded tensors from which making them a band at a time pays.
const WORTH_FUSING_BYTES: usize = 1 << 20;

/// The pair of convolutions, as the depthwise one's output from the 1×1 one's input.
pub(crate) struct ExpandedDepthwise<'a> {
    /// The 1×1 convolution's filter and bias (`k` input channels, `n` expanded ones).
    pub expand: &'a PackedB,
    /// The clamp of the 1×1 convolution's output (its fused activation).
    pub expand_range: (f32, f32),
    /// The depthwise convolution over the `n` expanded channels, with its filter and bias.
    pub depthwise: &'a Depthwise,
    pub filter: &'a [f32],
    pub bias: Option<&'a [f32]>,
}

impl ExpandedDepthwise<'_> {
    /// Whether an expanded tensor of `values` floats is worth making a band at a time: when it
    /// would not stay in a core's cache between the two convolutions.
    pub fn pays_for(values: usize) -> bool {
        values * 4 >= WORTH_FUSING_BYTES
    }

    /// The depthwise convolution's output `y` for one image `x` (the 1×1 convolution's input),
    /// then `then` over each band of it. Panics if a slice is shorter than the geometry says;
    /// callers check the shapes first.
    pub fn run(&self, x: &[f32], y: &mut [f32], then: ThenApply) {
        self.run_in_bands_of(BAND_BYTES, x, y, then)
    }

    fn run_in_bands_of(&self, band_bytes: usize, x: &[f32], y: &mut [f32], then: ThenApply) {
        let d = self.depthwise;
        let (k, width) = (self.expand.k(), d.cols.input);
        let row_len = d.cols.output * d.out_channels();
        assert!(self.expand.n() == d.channels && x.len() >= d.rows.input * width * k);
        let y = &mut y[..d.rows.output * row_len];
        // One part of the rows a thread: each part expands again the input rows at its start
        // that the part before also reads, a few rows of the image's tens.
        thread_pool::for_each_band_of(y, row_len, thread_pool::threads(), |offset, rows| {
            self.rows_from(band_bytes, x, offset / row_len, rows);
            if let Some(then) = then {
                then(rows);
            }
        });
    }

    /// Output rows `first…` (as many as `y` holds), a few at a time: the input rows they read
    /// expanded into the thread's buffer, keeping those the next few read again.
    fn rows_from(&self, band_bytes: usize, x: &[f32], first: usize, y: &mut [f32]) {
        thread_local! {
            static EXPANDED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
        }
        let d = self.depthwise;
        let (k, width) = (self.expand.k(), d.cols.input);
        let expanded_row = width * self.expand.n();
        let row_len = d.cols.output * d.out_channels();
        let window = (d.rows.window - 1) * d.rows.dilation + 1;
        let fit = (band_bytes / (4 * expanded_row).max(1)).max(window);
        let step = (fit - window) / d.rows.stride + 1;
        let most_rows = (step - 1) * d.rows.stride + window;
        let count = y.len() / row_len;
        EXPANDED.with_borrow_mut(|buffer| {
            buffer.resize(most_rows * expanded_row, 0.0);
            let mut held: Range<usize> = 0..0;
            for start in (first..first + count).step_by(step) {
                let rows = start..(start + step).min(first + count);
                let needed = d.input_rows(rows.clone());
                // Rows held that these read again, when they start the band (near the top of
                // a dilated filter, the first row read can move back).
                let kept = needed.start..needed.end.min(held.end);
                let made = match kept.is_empty() || needed.start < held.start {
                    true => needed.clone(),
                    false => {
                        let from = (kept.start - held.start) * expanded_row;
                        let to = (kept.start - needed.start) * expanded_row;
                        buffer.copy_within(from..from + kept.len() * expanded_row, to);
                        kept.end..needed.end
                    }
                };
                let into = (made.start - needed.start) * expanded_row;
                self.expand.multiply_here(
                    &x[made.start * width * k..made.end * width * k],
                    made.len() * width,
                    &mut buffer[into..into + made.len() * expanded_row],
                    self.expand_range,
                );
                let band = &buffer[..needed.len() * expanded_row];
                let out = &mut y[(rows.start - first) * row_len..(rows.end - first) * row_len];
                d.rows_from(
                    (band, needed.start),
                    self.filter,
                    self.bias,
                    rows.start,
                    out,
                );
                held = needed;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::window::Axis;
    use crate::nn::layers::Padding;
    use crate::nn::simd::Level;

    /// The bits of the 1×1 convolution written whole, then the depthwise one over it, for
    /// windows of 3 and 5, strides 1 and 2, a dilation, both paddings, bands of one row to the
    /// whole image and channels the vector kernels take or leave to the general one.
    #[test]
    fn gives_the_bits_of_the_two_convolutions_one_after_the_other() {
        let value = |i: usize| ((i * 7919) % 31) as f32 / 8.0 - 1.9;
        // (height, width, input channels, expanded channels, window, stride, dilation, padding)
        let shapes = [
            (9, 7, 5, 20, 3, 1, 1, Padding::Same),
            (10, 11, 3, 33, 3, 2, 1, Padding::Same),
            (11, 8, 4, 16, 5, 2, 1, Padding::Valid),
            (13, 6, 8, 24, 3, 1, 2, Padding::Same),
            (12, 9, 6, 5, 3, 1, 1, Padding::Same),
            (3, 4, 2, 17, 5, 1, 1, Padding::Same),
        ];
        for (h, w, k, n, window, stride, dilation, padding) in shapes {
            let rows = Axis::dilated(h, window, stride, dilation, padding).unwrap();
            let cols = Axis::dilated(w, window, stride, dilation, padding).unwrap();
            let x: Vec<f32> = (0..h * w * k).map(value).collect();
            let weights: Vec<f32> = (0..n * k).map(|i| value(i + 5)).collect();
            let expand_bias: Vec<f32> = (0..n).map(|i| value(i + 9)).collect();
            let filter: Vec<f32> = (0..window * window * n).map(|i| value(i + 2)).collect();
            let bias: Vec<f32> = (0..n).map(|i| value(i + 13)).collect();
            for level in Level::available() {
                let expand = PackedB::at_level(level, &weights, n, k, Some(&expand_bias));
                let depthwise = Depthwise {
                    rows,
                    cols,
                    channels: n,
                    multiplier: 1,
                    min: -1.5,
                    max: 2.5,
                    level,
                };
                let mut expanded = vec![f32::NAN; h * w * n];
                expand.multiply(&x, h * w, &mut expanded, (0.0, 6.0), None);
                let mut want = vec![f32::NAN; rows.output * cols.output * n];
                depthwise.run(&expanded, &filter, Some(&bias), &mut want, None);
                let fused = ExpandedDepthwise {
                    expand: &expand,
                    expand_range: (0.0, 6.0),
                    depthwise: &depthwise,
                    filter: &filter,
                    bias: Some(&bias),
                };
                for band_rows in [1, 2, 3, 5, h] {
                    let mut got = vec![f32::NAN; want.len()];
                    let negate = |y: &mut [f32]| y.iter_mut().for_each(|v| *v = -*v);
                    fused.run_in_bands_of(band_rows * w * n * 4, &x, &mut got, Some(&negate));
                    let got: Vec<u32> = got.iter().map(|v| (-v).to_bits()).collect();
                    let want: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
                    let differ = (0..want.len()).find(|&i| got[i] != want[i]);
                    assert!(
                        differ.is_none(),
                        "{level}: {h}×{w}×{k}→{n}, window {window}, stride {stride}, dilation \
                         {dilation}, bands of {band_rows} rows: value {differ:?} differs"
                    );
                }
            }
        }
    }
}
