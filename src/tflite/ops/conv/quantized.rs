//! Quantized CONV_2D (int8, per-channel filters; uint8 with zero-pointed filters): receptive
//! fields widened with the zero point subtracted, times the widened filter, each sum
//! requantized with its channel's multiplier.

use super::Geometry;
use crate::nn::kernels::quantized::fields::{
    byte_fields, byte_rows, receptive_fields, widened_rows,
};
use crate::nn::kernels::quantized::gemm::QuantizedWeights;
use crate::nn::kernels::quantized::padded::PaddedImage;
use crate::nn::kernels::quantized::Quantized;
use crate::tflite::ops::fused_activation::Fused;
use crate::tflite::ops::quantized::{bias, with_quantized, ProductQuantization, Requantization};
use crate::tflite::ops::Inputs;
use crate::tflite::tensor::Data;

pub(super) struct QuantizedConv {
    weights: QuantizedWeights,
    quantization: ProductQuantization,
    /// When VNNI reads windows straight from a padded image: the channels of its pixels (the
    /// input's, rounded up to four so that each kernel row is whole quads), for which the
    /// filter is laid out.
    direct_channels: Option<usize>,
}

impl QuantizedConv {
    /// `window` is the filter's (height, width, channels); `undilated` whether its taps are
    /// neighbours.
    pub fn new(
        inputs: &Inputs,
        filters: usize,
        (kh, kw, c): (usize, usize, usize),
        undilated: bool,
        activation: Fused,
    ) -> Result<Self, String> {
        let filter = inputs.value(1).ok_or("the filter must be a constant")?;
        let quantization =
            ProductQuantization::new(inputs, 0, filters, activation, Requantization::FixedPoint)?;
        let bias = bias(inputs, 2, filters)?;
        let zeros = &quantization.filter_zero_points;
        let shape = (kh, kw, c);
        let (weights, direct_channels) = with_quantized!(&filter.data,
            w => packed_filter(w, filters, shape, undilated, zeros, Some(&bias)),
            return Err(format!("the filter must be INT8 or UINT8, got {}", filter.dtype())));
        Ok(QuantizedConv {
            weights,
            quantization,
            direct_channels,
        })
    }

    /// Whether [`QuantizedConv::run`] can max-pool its output: when VNNI reads the windows
    /// straight from a padded image.
    pub fn can_pool(&self, g: &Geometry) -> bool {
        self.direct_channels.is_some() && !g.pointwise
    }

    /// The convolution, max-pooled by `pool` (rows, columns) when it is not (1, 1), which
    /// [`QuantizedConv::can_pool`] allows.
    pub fn run(
        &self,
        g: &Geometry,
        pool: (usize, usize),
        x: &Data,
        y: &mut Data,
    ) -> Result<(), String> {
        let mismatch = || "the tensors are not of the types prepared".to_string();
        with_quantized!(x, x => with_quantized!(y, y => { self.images(g, pool, x, y); Ok(()) },
            Err(mismatch())), Err(mismatch()))
    }

    /// One image by the VNNI product: the values shifted to unsigned bytes.
    fn image_as_bytes<T: Quantized, U: Quantized>(
        &self,
        g: &Geometry,
        pool: (usize, usize),
        x: &[T],
        y: &mut [U],
    ) {
        let shift = -T::MIN;
        let offset = shift - self.quantization.input_offset;
        let stride = self.weights.byte_stride();
        let stage = &self.quantization.stage;
        if let (Some(c4), false) = (self.direct_channels, g.pointwise) {
            let edge = (shift, offset as u8);
            let image = PaddedImage::new(x, &g.rows, &g.cols, g.channels, c4, edge);
            self.weights.convolve_bytes(&image, offset, y, stage, pool);
        } else if g.pointwise {
            let rows =
                |range, fields: &mut [u8]| byte_rows(x, g.channels, range, shift, stride, fields);
            self.weights
                .multiply_bytes(rows, g.pixels(), offset, y, stage);
        } else {
            let rows = |range, fields: &mut [u8]| {
                let edge = (shift, offset as u8);
                byte_fields(x, &g.rows, &g.cols, g.channels, range, edge, stride, fields)
            };
            self.weights
                .multiply_bytes(rows, g.pixels(), offset, y, stage);
        }
    }

    fn images<T: Quantized, U: Quantized>(
        &self,
        g: &Geometry,
        pool: (usize, usize),
        x: &[T],
        y: &mut [U],
    ) {
        let pixels = g.pixels();
        let (offset, stride) = (self.quantization.input_offset, self.weights.stride());
        let stage = &self.quantization.stage;
        let out_len = (g.rows.output / pool.0) * (g.cols.output / pool.1) * g.filters;
        for (x, y) in x
            .chunks_exact(g.image_len())
            .zip(y.chunks_exact_mut(out_len))
        {
            if self.weights.takes_bytes() {
                self.image_as_bytes(g, pool, x, y);
            } else if g.pointwise {
                let rows = |range, fields: &mut [i16]| {
                    widened_rows(x, g.channels, range, offset, stride, fields)
                };
                self.weights.multiply(rows, pixels, y, stage);
            } else {
                let rows = |range, fields: &mut [i16]| {
                    receptive_fields(
                        x, &g.rows, &g.cols, g.channels, range, offset, stride, fields,
                    )
                };
                self.weights.multiply(rows, pixels, y, stage);
            }
        }
    }
}

/// The filter (`filters` × `kh × kw × c`) packed for the product and, where VNNI can read the
/// windows straight from a padded image (int8 weights, more than one tap, undilated), the
/// channels of that image's pixels (the input's rounded up to four, so that each kernel row
/// is whole quads), for which the filter is then laid out.
pub(super) fn packed_filter<W: Quantized>(
    filter: &[W],
    filters: usize,
    (kh, kw, c): (usize, usize, usize),
    undilated: bool,
    zeros: &[i32],
    bias: Option<&[i32]>,
) -> (QuantizedWeights, Option<usize>) {
    let weights = QuantizedWeights::new(filter, filters, kh * kw * c, zeros, bias);
    if !(weights.takes_bytes() && undilated && kh * kw > 1) {
        return (weights, None);
    }
    let c4 = c.next_multiple_of(4);
    if c4 == c {
        return (weights, Some(c));
    }
    let padded = pad_channels(filter, c, c4);
    let weights = QuantizedWeights::new(&padded, filters, kh * kw * c4, zeros, bias);
    (weights, Some(c4))
}

/// Each filter tap's `channels` values followed by zeros up to `to`: the layout of a padded
/// image's pixels (zero weights make the extra channels' values irrelevant).
fn pad_channels<W: Copy + Default>(weights: &[W], channels: usize, to: usize) -> Vec<W> {
    let mut padded = Vec::with_capacity(weights.len() / channels.max(1) * to);
    for tap in weights.chunks_exact(channels) {
        padded.extend_from_slice(tap);
        padded.resize(padded.len() + to - channels, W::default());
    }
    padded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::kernels::quantized::{Multiplier, Requantize, Scaling};
    use crate::nn::layers::window::Axis;
    use crate::nn::layers::Padding;

    /// Where the processor has AVX-512 VNNI (elsewhere the product takes receptive fields).
    #[test]
    fn windows_read_from_the_padded_image_equal_the_definition() {
        let shapes = [
            // height, width, channels, filters, window, stride, padding
            (7, 9, 3, 11, 3, 1, Padding::Same),
            (8, 6, 5, 20, 3, 2, Padding::Same),
            (9, 10, 16, 17, 3, 1, Padding::Valid),
            (6, 7, 4, 16, 2, 2, Padding::Valid),
            (5, 5, 8, 3, 5, 1, Padding::Same),
            // Panels taken two at a time, then a partial one.
            (6, 7, 8, 37, 3, 1, Padding::Same),
            (5, 6, 4, 64, 3, 2, Padding::Valid),
            // Few pixels for many panels (on up to 4 threads): the panels go to the threads.
            (7, 7, 8, 300, 3, 1, Padding::Same),
            (9, 8, 4, 270, 3, 2, Padding::Same),
        ];
        for (h, w, c, filters, k, stride, padding) in shapes {
            let rows = Axis::new(h, k, stride, padding).unwrap();
            let cols = Axis::new(w, k, stride, padding).unwrap();
            let x: Vec<i8> = (0..h * w * c).map(|i| (i * 53 % 256) as u8 as i8).collect();
            let depth = k * k * c;
            let weights: Vec<i8> = (0..filters * depth)
                .map(|i| (i * 91 % 255) as u8 as i8)
                .collect();
            let bias: Vec<i32> = (0..filters as i32).map(|f| f * 700 - 2000).collect();
            let multipliers: Vec<Multiplier> = (0..filters)
                .map(|f| Multiplier::new(0.0004 * (f + 1) as f64).unwrap())
                .collect();
            let stage = Requantize {
                scaling: Scaling::fixed(&multipliers),
                zero_point: 3,
                min: -128,
                max: 127,
            };
            let x_zero = -7;
            let mut expected = vec![0i8; rows.output * cols.output * filters];
            for (p, out) in expected.chunks_exact_mut(filters).enumerate() {
                let (oy, ox) = (p / cols.output, p % cols.output);
                for (f, o) in out.iter_mut().enumerate() {
                    let mut sum = bias[f];
                    for ky in 0..k {
                        for kx in 0..k {
                            let (Some(iy), Some(ix)) = (rows.source(oy, ky), cols.source(ox, kx))
                            else {
                                continue;
                            };
                            for ch in 0..c {
                                let v = x[(iy * w + ix) * c + ch] as i32 - x_zero;
                                sum += v * weights[f * depth + (ky * k + kx) * c + ch] as i32;
                            }
                        }
                    }
                    *o = stage.apply(sum, f) as i8;
                }
            }
            let c4 = c.next_multiple_of(4);
            let padded = pad_channels(&weights, c, c4);
            let product = QuantizedWeights::new(&padded, filters, k * k * c4, &[0], Some(&bias));
            if !product.takes_bytes() {
                return;
            }
            let offset = 128 + x_zero;
            let image = PaddedImage::new(&x, &rows, &cols, c, c4, (128, offset as u8));
            let mut out = vec![0i8; expected.len()];
            product.convolve_bytes(&image, offset, &mut out, &stage, (1, 1));
            assert_eq!(
                out, expected,
                "{h}×{w}×{c}, {filters} filters {k}×{k}/{stride}"
            );
            for pool in [(2, 2), (3, 2), (1, 3)] {
                let pooled = max_pooled(&expected, (rows.output, cols.output, filters), pool);
                let mut out = vec![0i8; pooled.len()];
                product.convolve_bytes(&image, offset, &mut out, &stage, pool);
                assert_eq!(out, pooled, "{h}×{w}×{c}, {filters} filters, pool {pool:?}");
            }
        }
    }

    /// MAX_POOL_2D by windows of `rows × cols` at the same strides, without padding.
    fn max_pooled(
        x: &[i8],
        (h, w, c): (usize, usize, usize),
        (rows, cols): (usize, usize),
    ) -> Vec<i8> {
        let (ph, pw) = (h / rows, w / cols);
        let mut out = vec![i8::MIN; ph * pw * c];
        for (p, out) in out.chunks_exact_mut(c).enumerate() {
            let (py, px) = (p / pw, p % pw);
            for (y, x_) in (0..rows).flat_map(|r| (0..cols).map(move |q| (r, q))) {
                let pixel = &x[((py * rows + y) * w + px * cols + x_) * c..][..c];
                for (o, &v) in out.iter_mut().zip(pixel) {
                    *o = (*o).max(v);
                }
            }
        }
        out
    }
}
