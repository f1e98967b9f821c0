//! Quantized depthwise convolution: each output channel sums its own input channel's window,
//! `(x − x_zero) × (w − w_zero)` in 32 bits, then requantizes with its own multiplier.

use super::{Quantized, Requantize};
use crate::nn::layers::window::Axis;
use crate::nn::thread_pool::{bands, for_each_band_of};

/// Outputs from which a depthwise convolution splits its rows over the threads.
const PARALLEL_OUTPUTS: usize = 1 << 12;

pub(crate) struct QuantizedDepthwise {
    pub rows: Axis,
    pub cols: Axis,
    pub channels: usize,
    pub multiplier: usize,
    /// `[height][width][channels × multiplier]`, zero points subtracted.
    pub filter: Vec<i32>,
    pub bias: Vec<i32>,
    /// Added to each input value: minus its zero point.
    pub input_offset: i32,
}

impl QuantizedDepthwise {
    pub fn out_channels(&self) -> usize {
        self.channels * self.multiplier
    }

    /// The output columns whose every column tap lies inside the image.
    fn inner_columns(&self) -> std::ops::Range<usize> {
        let cols = &self.cols;
        let first = cols.pad_before.div_ceil(cols.stride);
        let reach = (cols.window - 1) * cols.dilation;
        let end = match (cols.input + cols.pad_before).checked_sub(reach + 1) {
            Some(last_origin) => (last_origin / cols.stride + 1).min(cols.output),
            None => 0,
        };
        first..end.max(first)
    }

    /// One image: `x` is `rows.input × cols.input × channels`, `out` the output image.
    pub fn run<T: Quantized, U: Quantized>(&self, x: &[T], out: &mut [U], stage: &Requantize) {
        assert!(stage.scaling.len() >= self.out_channels());
        let oc = self.out_channels();
        // A whole row at a time: the multipliers are loaded once per row, not per pixel.
        self.rows_then(x, out, |sums, line| stage.store_rows(0..oc, sums, line));
    }

    /// As [`QuantizedDepthwise::run`], each pixel's sums (bias included) turned into its
    /// outputs by `finish(sums, outputs)`.
    pub fn run_then<T: Quantized, O: Send>(
        &self,
        x: &[T],
        out: &mut [O],
        finish: impl Fn(&[i32], &mut [O]) + Sync,
    ) {
        let oc = self.out_channels();
        self.rows_then(x, out, |sums, line| {
            for (pixel, sums) in line.chunks_exact_mut(oc).zip(sums.chunks_exact(oc)) {
                finish(sums, pixel);
            }
        });
    }

    /// Each output row's sums (bias included) turned into its outputs by
    /// `finish(sums, outputs)`, the rows split over the threads.
    fn rows_then<T: Quantized, O: Send>(
        &self,
        x: &[T],
        out: &mut [O],
        finish: impl Fn(&[i32], &mut [O]) + Sync,
    ) {
        let oc = self.out_channels();
        assert!(
            x.len() >= self.rows.input * self.cols.input * self.channels
                && out.len() >= self.rows.output * self.cols.output * oc
                && self.filter.len() >= self.rows.window * self.cols.window * oc
                && self.bias.len() >= oc
        );
        let image = &x[..self.rows.input * self.cols.input * self.channels];
        let row_len = self.cols.output * oc;
        let out = &mut out[..self.rows.output * row_len];
        let tiles = Tiles::for_kernel(self);
        let starts = WindowStarts::new(self);
        // Split from fewer values than element-wise operators: a thread alone read the other
        // core's half of its input (MobileNetV2's 7×7×576 layer took longer on two threads).
        let parts = bands(out.len(), PARALLEL_OUTPUTS);
        for_each_band_of(out, row_len, parts, |offset, band| {
            let mut sums = vec![0i32; row_len];
            for (r, line) in band.chunks_exact_mut(row_len).enumerate() {
                row_sums(self, image, offset / row_len + r, tiles, &starts, &mut sums);
                finish(&sums, line);
            }
        });
    }
}

/// How the inner pixels' sums are made: by the portable code at the selected level, or by
/// AVX-512's 16-bit products.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Tiles {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx512 {
        vnni: bool,
    },
}

impl Tiles {
    fn for_kernel(d: &QuantizedDepthwise) -> Tiles {
        #[cfg(target_arch = "x86_64")]
        {
            // A fold, not `all`: without the early exit it vectorises (this runs every call).
            let narrow = || {
                d.filter
                    .iter()
                    .fold(true, |n, &w| n & (w == w as i16 as i32))
            };
            if super::avx512bw() && narrow() {
                return Tiles::Avx512 {
                    vnni: std::is_x86_feature_detected!("avx512vnni"),
                };
            }
        }
        let _ = d;
        Tiles::Portable
    }
}

/// The sums (bias included) of every pixel of output row `oy`.
pub(super) fn row_sums<T: Quantized>(
    d: &QuantizedDepthwise,
    image: &[T],
    oy: usize,
    tiles: Tiles,
    starts: &WindowStarts,
    sums: &mut [i32],
) {
    match tiles {
        Tiles::Portable => T::depthwise_row(d, image, oy, starts, sums),
        // SAFETY: `Tiles::for_kernel` chose these only where the processor has them.
        #[cfg(target_arch = "x86_64")]
        Tiles::Avx512 { vnni: true } => unsafe { x86::row_sums_vnni(d, image, oy, starts, sums) },
        #[cfg(target_arch = "x86_64")]
        Tiles::Avx512 { vnni: false } => unsafe {
            x86::row_sums_avx512bw(d, image, oy, starts, sums)
        },
    }
}

crate::nn::simd::compiled_per_level! {
    /// The sums (bias included) of every pixel of output row `oy` of an int8 image.
    pub(super) fn row_sums_i8(
        d: &QuantizedDepthwise,
        image: &[i8],
        oy: usize,
        starts: &WindowStarts,
        sums: &mut [i32],
    ) =
        row_sums_portable
}

crate::nn::simd::compiled_per_level! {
    /// The sums (bias included) of every pixel of output row `oy` of a uint8 image.
    pub(super) fn row_sums_u8(
        d: &QuantizedDepthwise,
        image: &[u8],
        oy: usize,
        starts: &WindowStarts,
        sums: &mut [i32],
    ) =
        row_sums_portable
}

/// Channels per tile: one AVX-512 register of sums, two AVX2 or four NEON ones.
const TILE_CHANNELS: usize = 16;
/// Output pixels per tile: each tap's weights are loaded once for all of them.
const TILE_PIXELS: usize = 8;

/// The sums of [`TILE_PIXELS`] pixels from `ox` and [`TILE_CHANNELS`] channels from `c0`
/// (multiplier 1), every column tap inside the image and the row taps `rows`, from `start`
/// (the channels' [`row_starts`]).
trait Tile {
    /// # Safety
    /// The processor has what the implementation's instructions need.
    #[allow(clippy::too_many_arguments)]
    unsafe fn sums<T: Quantized>(
        d: &QuantizedDepthwise,
        image: &[T],
        oy: usize,
        rows: std::ops::Range<usize>,
        ox: usize,
        c0: usize,
        start: &[i32; TILE_CHANNELS],
        sums: &mut [i32],
    );
}

struct PortableTile;

/// The tile in plain code, for the compiler to vectorise at the selected level, its sums kept
/// in registers over the whole window.
impl Tile for PortableTile {
    #[inline(always)]
    unsafe fn sums<T: Quantized>(
        d: &QuantizedDepthwise,
        image: &[T],
        oy: usize,
        rows: std::ops::Range<usize>,
        ox: usize,
        c0: usize,
        start: &[i32; TILE_CHANNELS],
        sums: &mut [i32],
    ) {
        let (c, cols) = (d.channels, &d.cols);
        let load = |at: usize| -> [i32; TILE_CHANNELS] {
            let v = &d.filter[at..][..TILE_CHANNELS];
            std::array::from_fn(|l| v[l])
        };
        let mut acc = [*start; TILE_PIXELS];
        let first_column = ox * cols.stride - cols.pad_before;
        // The tile's input: from its first column to past its last tap, on every row it reads.
        let span = (TILE_PIXELS - 1) * cols.stride + (cols.window - 1) * cols.dilation + 1;
        for ky in rows {
            let iy = oy * d.rows.stride + ky * d.rows.dilation - d.rows.pad_before;
            let line = &image[(iy * cols.input + first_column) * c..][..span * c];
            for kx in 0..cols.window {
                let w = load((ky * cols.window + kx) * c + c0);
                for (p, acc) in acc.iter_mut().enumerate() {
                    let x =
                        &line[(p * cols.stride + kx * cols.dilation) * c + c0..][..TILE_CHANNELS];
                    for l in 0..TILE_CHANNELS {
                        acc[l] = acc[l].wrapping_add(x[l].get().wrapping_mul(w[l]));
                    }
                }
            }
        }
        for (p, acc) in acc.iter().enumerate() {
            sums[(ox + p) * c + c0..][..TILE_CHANNELS].copy_from_slice(acc);
        }
    }
}

#[inline(always)]
fn row_sums_portable<T: Quantized>(
    d: &QuantizedDepthwise,
    image: &[T],
    oy: usize,
    starts: &WindowStarts,
    sums: &mut [i32],
) {
    // SAFETY: the portable tile needs nothing of the processor.
    unsafe { row_sums_with::<T, PortableTile>(d, image, oy, starts, sums) }
}

/// # Safety
/// The processor has what `K` needs.
#[inline(always)]
unsafe fn row_sums_with<T: Quantized, K: Tile>(
    d: &QuantizedDepthwise,
    image: &[T],
    oy: usize,
    starts: &WindowStarts,
    sums: &mut [i32],
) {
    let oc = d.channels * d.multiplier;
    let inner = d.inner_columns();
    let tiled = d.multiplier == 1 && oc.is_multiple_of(TILE_CHANNELS) && inner.len() >= TILE_PIXELS;
    for (ox, pixel) in sums[..d.cols.output * oc].chunks_exact_mut(oc).enumerate() {
        if !(tiled && inner.contains(&ox)) {
            pixel_sums(d, image, oy, ox, pixel);
        }
    }
    if tiled {
        let rows = d.rows.taps(oy).0;
        let starts = starts.for_rows(d, rows.clone());
        let last = inner.end - TILE_PIXELS;
        for ox in inner.clone().step_by(TILE_PIXELS) {
            for (c0, start) in (0..oc).step_by(TILE_CHANNELS).zip(starts.as_chunks().0) {
                // The last tile ends at the last inner column, redoing a few pixels.
                K::sums(d, image, oy, rows.clone(), ox.min(last), c0, start, sums);
            }
        }
    }
}

/// The sums of output pixel (`oy`, `ox`), any geometry.
#[inline(always)]
fn pixel_sums<T: Quantized>(
    d: &QuantizedDepthwise,
    image: &[T],
    oy: usize,
    ox: usize,
    sums: &mut [i32],
) {
    let (c, m, offset) = (d.channels, d.multiplier, d.input_offset);
    let oc = c * m;
    sums.copy_from_slice(&d.bias[..oc]);
    for ky in 0..d.rows.window {
        let Some(iy) = d.rows.source(oy, ky) else {
            continue;
        };
        for kx in 0..d.cols.window {
            let Some(ix) = d.cols.source(ox, kx) else {
                continue;
            };
            let input = &image[(iy * d.cols.input + ix) * c..][..c];
            let taps = &d.filter[(ky * d.cols.window + kx) * oc..][..oc];
            if m == 1 {
                for ((s, &v), &w) in sums.iter_mut().zip(input).zip(taps) {
                    *s = s.wrapping_add((v.get() + offset).wrapping_mul(w));
                }
            } else {
                for ((s, w), &v) in sums
                    .chunks_exact_mut(m)
                    .zip(taps.chunks_exact(m))
                    .zip(input)
                {
                    let v = v.get() + offset;
                    for (s, &w) in s.iter_mut().zip(w) {
                        *s = s.wrapping_add(v.wrapping_mul(w));
                    }
                }
            }
        }
    }
}

/// What the tiles of an output row start from, for every channel: the bias and the products
/// of the input offset, which is not added to each value, over the row taps used. Made once
/// per operator for the rows whose whole window lies inside the image, and for the others
/// per row (per tile, this chain of multiplies cost a quarter of the tiles' time).
pub(crate) struct WindowStarts(Vec<i32>);

impl WindowStarts {
    fn new(d: &QuantizedDepthwise) -> WindowStarts {
        WindowStarts(match d.multiplier {
            1 => row_starts(d, 0..d.rows.window),
            _ => Vec::new(),
        })
    }

    fn for_rows(
        &self,
        d: &QuantizedDepthwise,
        rows: std::ops::Range<usize>,
    ) -> std::borrow::Cow<'_, [i32]> {
        match rows == (0..d.rows.window) {
            true => std::borrow::Cow::Borrowed(&self.0),
            false => std::borrow::Cow::Owned(row_starts(d, rows)),
        }
    }
}

/// [`WindowStarts`] over the row taps `rows` (multiplier 1).
fn row_starts(d: &QuantizedDepthwise, rows: std::ops::Range<usize>) -> Vec<i32> {
    let (c, window) = (d.channels, d.cols.window);
    let mut starts = d.bias[..c].to_vec();
    for ky in rows {
        for taps in d.filter[ky * window * c..][..window * c].chunks_exact(c) {
            for (start, &w) in starts.iter_mut().zip(taps) {
                *start = start.wrapping_add(d.input_offset.wrapping_mul(w));
            }
        }
    }
    starts
}

/// Tiles whose products are 16-bit: each 32-bit lane holds an input value widened to it and a
/// weight in its low half only, so `vpmaddwd` (one instruction, where `vpmulld` is two on
/// most processors) gives their exact product, and VNNI's `vpdpwssd` adds it as well.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    /// # Safety
    /// The processor has AVX-512F and BW.
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
    pub(super) unsafe fn row_sums_avx512bw<T: Quantized>(
        d: &QuantizedDepthwise,
        image: &[T],
        oy: usize,
        starts: &WindowStarts,
        sums: &mut [i32],
    ) {
        row_sums_with::<T, Avx512Tile<false>>(d, image, oy, starts, sums)
    }

    /// # Safety
    /// The processor has AVX-512F, BW and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma")]
    pub(super) unsafe fn row_sums_vnni<T: Quantized>(
        d: &QuantizedDepthwise,
        image: &[T],
        oy: usize,
        starts: &WindowStarts,
        sums: &mut [i32],
    ) {
        row_sums_with::<T, Avx512Tile<true>>(d, image, oy, starts, sums)
    }

    struct Avx512Tile<const VNNI: bool>;

    impl<const VNNI: bool> Tile for Avx512Tile<VNNI> {
        #[inline(always)]
        unsafe fn sums<T: Quantized>(
            d: &QuantizedDepthwise,
            image: &[T],
            oy: usize,
            rows: std::ops::Range<usize>,
            ox: usize,
            c0: usize,
            start: &[i32; TILE_CHANNELS],
            sums: &mut [i32],
        ) {
            let (c, cols) = (d.channels, &d.cols);
            match (cols.window, cols.dilation, cols.stride) {
                (3, 1, 1) => {
                    return fixed::<T, VNNI, 3, 1>(d, image, oy, rows, ox, c0, start, sums)
                }
                (3, 1, 2) => {
                    return fixed::<T, VNNI, 3, 2>(d, image, oy, rows, ox, c0, start, sums)
                }
                (5, 1, 1) => {
                    return fixed::<T, VNNI, 5, 1>(d, image, oy, rows, ox, c0, start, sums)
                }
                (5, 1, 2) => {
                    return fixed::<T, VNNI, 5, 2>(d, image, oy, rows, ox, c0, start, sums)
                }
                _ => {}
            }
            let mut acc = [_mm512_loadu_si512(start.as_ptr() as *const _); TILE_PIXELS];
            let low_halves = _mm512_set1_epi32(0xffff);
            let first_column = ox * cols.stride - cols.pad_before;
            let span = (TILE_PIXELS - 1) * cols.stride + (cols.window - 1) * cols.dilation + 1;
            for ky in rows {
                let iy = oy * d.rows.stride + ky * d.rows.dilation - d.rows.pad_before;
                // Bounds checked here for the whole span the pixels below read.
                let line = image[(iy * cols.input + first_column) * c..][..span * c].as_ptr();
                for kx in 0..cols.window {
                    let taps = &d.filter[(ky * cols.window + kx) * c + c0..][..TILE_CHANNELS];
                    let w =
                        _mm512_and_si512(_mm512_loadu_si512(taps.as_ptr() as *const _), low_halves);
                    for (p, acc) in acc.iter_mut().enumerate() {
                        let at = (p * cols.stride + kx * cols.dilation) * c + c0;
                        let x = widened(line.add(at));
                        *acc = match VNNI {
                            true => pair_products_onto(*acc, x, w),
                            false => _mm512_add_epi32(*acc, _mm512_madd_epi16(x, w)),
                        };
                    }
                }
            }
            let sums = &mut sums[ox * c + c0..][..(TILE_PIXELS - 1) * c + TILE_CHANNELS];
            for (p, acc) in acc.into_iter().enumerate() {
                _mm512_storeu_si512(sums.as_mut_ptr().add(p * c) as *mut _, acc);
            }
        }
    }

    /// [`Avx512Tile::sums`] for the common windows, `K` (3 or 5) wide with a stride of 1 or 2
    /// and no dilation: each input pixel of a row widened once for all the taps that read it,
    /// and every index known at compile time, so that the whole tile stays in registers (11%
    /// less time in MobileNetV2's depthwise convolutions).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn fixed<T: Quantized, const VNNI: bool, const K: usize, const STRIDE: usize>(
        d: &QuantizedDepthwise,
        image: &[T],
        oy: usize,
        rows: std::ops::Range<usize>,
        ox: usize,
        c0: usize,
        start: &[i32; TILE_CHANNELS],
        sums: &mut [i32],
    ) {
        const WIDEST: usize = (TILE_PIXELS - 1) * 2 + 5;
        let span = (TILE_PIXELS - 1) * STRIDE + K;
        let c = d.channels;
        let mut acc = [_mm512_loadu_si512(start.as_ptr() as *const _); TILE_PIXELS];
        let low_halves = _mm512_set1_epi32(0xffff);
        let first_column = ox * STRIDE - d.cols.pad_before;
        for ky in rows {
            let iy = oy * d.rows.stride + ky * d.rows.dilation - d.rows.pad_before;
            let line = image[(iy * d.cols.input + first_column) * c..][..span * c].as_ptr();
            let mut x = [_mm512_setzero_si512(); WIDEST];
            for (i, x) in x.iter_mut().enumerate().take(span) {
                *x = widened(line.add(i * c + c0));
            }
            for kx in 0..K {
                let taps = d.filter[(ky * K + kx) * c + c0..][..TILE_CHANNELS].as_ptr();
                let w = _mm512_and_si512(_mm512_loadu_si512(taps as *const _), low_halves);
                for (p, acc) in acc.iter_mut().enumerate() {
                    let x = x[p * STRIDE + kx];
                    *acc = match VNNI {
                        true => pair_products_onto(*acc, x, w),
                        false => _mm512_add_epi32(*acc, _mm512_madd_epi16(x, w)),
                    };
                }
            }
        }
        let sums = &mut sums[ox * c + c0..][..(TILE_PIXELS - 1) * c + TILE_CHANNELS];
        for (p, acc) in acc.into_iter().enumerate() {
            _mm512_storeu_si512(sums.as_mut_ptr().add(p * c) as *mut _, acc);
        }
    }

    /// `acc` plus the sums of the 16-bit pair products of `a` and `b`: `vpdpwssd`, written out
    /// because LLVM splits `_mm512_dpwssd_epi32` into `vpmaddwd` and `vpaddd` when it tunes
    /// for no processor in particular, one instruction more per product.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vnni")]
    unsafe fn pair_products_onto(mut acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
        std::arch::asm!(
            "vpdpwssd {acc}, {a}, {b}",
            acc = inout(zmm_reg) acc,
            a = in(zmm_reg) a,
            b = in(zmm_reg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
        acc
    }

    /// Sixteen stored values from `at`, each sign- or zero-extended to 32 bits as its type is.
    #[inline(always)]
    unsafe fn widened<T: Quantized>(at: *const T) -> __m512i {
        let bytes = _mm_loadu_si128(at as *const __m128i);
        match T::MIN < 0 {
            true => _mm512_cvtepi8_epi32(bytes),
            false => _mm512_cvtepu8_epi32(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::kernels::quantized::{Multiplier, Scaling};
    use crate::nn::layers::Padding;

    /// Every way of making the tiles this processor has gives the portable code's sums, for
    /// int8 and uint8 images and negative weights.
    #[test]
    fn every_tile_kind_gives_the_portable_sums() {
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut kinds = vec![Tiles::Portable];
        #[cfg(target_arch = "x86_64")]
        if super::super::avx512bw() {
            kinds.push(Tiles::Avx512 { vnni: false });
            if std::is_x86_feature_detected!("avx512vnni") {
                kinds.push(Tiles::Avx512 { vnni: true });
            }
        }
        for (size, window, stride, dilation, channels) in [
            (21, 3, 1, 1, 32),
            (24, 3, 2, 1, 16),
            (22, 5, 1, 1, 16),
            (25, 5, 2, 1, 32),
            (27, 5, 1, 2, 48),
        ] {
            let axis = Axis::dilated(size, window, stride, dilation, Padding::Same).unwrap();
            let d = QuantizedDepthwise {
                rows: axis,
                cols: axis,
                channels,
                multiplier: 1,
                filter: (0..window * window * channels)
                    .map(|i| (i as i32 * 37) % 511 - 255)
                    .collect(),
                bias: (0..channels as i32).map(|c| c * 77 - 100).collect(),
                input_offset: -7,
            };
            let bytes: Vec<u8> = (0..size * size * channels)
                .map(|i| (i * 53 % 256) as u8)
                .collect();
            let signed: Vec<i8> = bytes.iter().map(|&v| v as i8).collect();
            let row = axis.output * channels;
            let starts = WindowStarts::new(&d);
            for oy in 0..axis.output {
                let mut expected = (vec![0; row], vec![0; row]);
                row_sums(&d, &bytes, oy, Tiles::Portable, &starts, &mut expected.0);
                row_sums(&d, &signed, oy, Tiles::Portable, &starts, &mut expected.1);
                for &kind in &kinds {
                    let mut got = (vec![0; row], vec![0; row]);
                    row_sums(&d, &bytes, oy, kind, &starts, &mut got.0);
                    row_sums(&d, &signed, oy, kind, &starts, &mut got.1);
                    assert_eq!(got, expected, "{kind:?}, row {oy} of {size}×{size}");
                }
            }
        }
    }

    #[test]
    fn sums_equal_the_definition_with_padding_strides_and_multipliers() {
        // The last four take the tiles: whole groups of 16 channels and rows wider than a tile.
        for (size, window, stride, dilation, multiplier, channels, padding) in [
            (7, 3, 1, 1, 1, 5, Padding::Same),
            (8, 3, 2, 1, 1, 20, Padding::Same),
            (9, 5, 2, 1, 2, 3, Padding::Valid),
            (21, 3, 1, 1, 1, 32, Padding::Same),
            (24, 3, 2, 1, 1, 16, Padding::Same),
            (27, 5, 1, 2, 1, 48, Padding::Same),
            (23, 3, 1, 1, 1, 16, Padding::Valid),
        ] {
            let axis = Axis::dilated(size, window, stride, dilation, padding).unwrap();
            let oc = channels * multiplier;
            let x: Vec<u8> = (0..size * size * channels)
                .map(|i| (i * 53 % 256) as u8)
                .collect();
            let d = QuantizedDepthwise {
                rows: axis,
                cols: axis,
                channels,
                multiplier,
                filter: (0..window * window * oc)
                    .map(|i| (i as i32 * 29) % 255 - 127)
                    .collect(),
                bias: (0..oc as i32).map(|c| c * 77 - 100).collect(),
                input_offset: -131,
            };
            let stage = Requantize {
                scaling: Scaling::fixed(
                    &(0..oc)
                        .map(|c| Multiplier::new(0.001 + 0.0001 * c as f64).unwrap())
                        .collect::<Vec<_>>(),
                ),
                zero_point: 3,
                min: -128,
                max: 100,
            };
            let mut out = vec![0i8; axis.output * axis.output * oc];
            d.run(&x, &mut out, &stage);
            // The same bytes read as int8, 128 lower, with the offset 128 higher: same sums.
            let signed: Vec<i8> = x.iter().map(|&v| (v ^ 0x80) as i8).collect();
            let mut signed_out = vec![0i8; out.len()];
            QuantizedDepthwise {
                input_offset: d.input_offset + 128,
                filter: d.filter.clone(),
                bias: d.bias.clone(),
                ..d
            }
            .run(&signed, &mut signed_out, &stage);
            assert_eq!(signed_out, out);
            for oy in 0..axis.output {
                for ox in 0..axis.output {
                    for o in 0..oc {
                        let mut sum = d.bias[o];
                        for ky in 0..window {
                            for kx in 0..window {
                                let (Some(iy), Some(ix)) =
                                    (axis.source(oy, ky), axis.source(ox, kx))
                                else {
                                    continue;
                                };
                                let v =
                                    x[(iy * size + ix) * channels + o / multiplier] as i32 - 131;
                                sum += v * d.filter[(ky * window + kx) * oc + o];
                            }
                        }
                        let got = out[(oy * axis.output + ox) * oc + o];
                        assert_eq!(got as i32, stage.apply(sum, o));
                    }
                }
            }
        }
    }
}
