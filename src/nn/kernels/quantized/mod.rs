//! Integer kernels for quantized models (int8 and uint8), exact to LiteRT's reference
//! arithmetic: products accumulate in 32 bits, so their order does not matter, and only the
//! requantization of each sum ([`Requantize`]) must follow the reference step by step.

pub(crate) mod depthwise;
pub(crate) mod dynamic_range;
pub(crate) mod fields;
pub mod fixed_point;
pub(crate) mod gemm;
pub(crate) mod padded;
#[cfg(target_arch = "x86_64")]
pub(crate) mod requantize_avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod requantize_avx512;

use fixed_point::scale;
pub use fixed_point::Multiplier;
use std::ops::Range;

/// A stored quantized value: int8 or uint8.
pub trait Quantized: Copy + Default + Send + Sync + 'static {
    const MIN: i32;
    const MAX: i32;
    fn get(self) -> i32;
    /// `v`, which the caller clamped to `MIN..=MAX`.
    fn narrow(v: i32) -> Self;
    /// The stored values as bytes (two's complement for int8), for the AVX-512 byte kernels.
    #[cfg(target_arch = "x86_64")]
    fn bytes_mut(values: &mut [Self]) -> &mut [u8];
    /// [`Quantized::bytes_mut`], read only.
    #[cfg(target_arch = "x86_64")]
    fn bytes(values: &[Self]) -> &[u8];
    /// Rows of sums of `channels` requantized by [`store_fixed_portable`] at the selected
    /// level.
    fn store_fixed(
        r: &Requantize,
        m: &Multipliers,
        channels: Range<usize>,
        sums: &[i32],
        out: &mut [Self],
    );
    /// Adds each `sums.len()`-value line of `x` onto `sums` (a MEAN over all but the last
    /// axis), at the selected instruction set.
    fn column_sums(x: &[Self], sums: &mut [i32]);
    /// The depthwise sums of one output row, at the selected instruction set
    /// ([`depthwise::row_sums`] picks the AVX-512 tiles before this).
    fn depthwise_row(
        d: &depthwise::QuantizedDepthwise,
        image: &[Self],
        oy: usize,
        starts: &depthwise::WindowStarts,
        sums: &mut [i32],
    );
}

impl Quantized for i8 {
    const MIN: i32 = i8::MIN as i32;
    const MAX: i32 = i8::MAX as i32;
    #[inline(always)]
    fn get(self) -> i32 {
        self as i32
    }
    #[inline(always)]
    fn narrow(v: i32) -> Self {
        v as i8
    }
    #[cfg(target_arch = "x86_64")]
    fn bytes_mut(values: &mut [Self]) -> &mut [u8] {
        // SAFETY: i8 and u8 have the same size and alignment, and every bit pattern is valid
        // for both.
        unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr() as *mut u8, values.len()) }
    }
    #[cfg(target_arch = "x86_64")]
    fn bytes(values: &[Self]) -> &[u8] {
        // SAFETY: as for `bytes_mut`.
        unsafe { std::slice::from_raw_parts(values.as_ptr() as *const u8, values.len()) }
    }
    fn store_fixed(
        r: &Requantize,
        m: &Multipliers,
        channels: Range<usize>,
        sums: &[i32],
        out: &mut [Self],
    ) {
        store_fixed_i8(r, m, channels, sums, out)
    }
    fn depthwise_row(
        d: &depthwise::QuantizedDepthwise,
        image: &[Self],
        oy: usize,
        starts: &depthwise::WindowStarts,
        sums: &mut [i32],
    ) {
        depthwise::row_sums_i8(d, image, oy, starts, sums)
    }
    fn column_sums(x: &[Self], sums: &mut [i32]) {
        column_sums_i8(x, sums)
    }
}

impl Quantized for u8 {
    const MIN: i32 = 0;
    const MAX: i32 = u8::MAX as i32;
    #[inline(always)]
    fn get(self) -> i32 {
        self as i32
    }
    #[inline(always)]
    fn narrow(v: i32) -> Self {
        v as u8
    }
    #[cfg(target_arch = "x86_64")]
    fn bytes_mut(values: &mut [Self]) -> &mut [u8] {
        values
    }
    #[cfg(target_arch = "x86_64")]
    fn bytes(values: &[Self]) -> &[u8] {
        values
    }
    fn store_fixed(
        r: &Requantize,
        m: &Multipliers,
        channels: Range<usize>,
        sums: &[i32],
        out: &mut [Self],
    ) {
        store_fixed_u8(r, m, channels, sums, out)
    }
    fn depthwise_row(
        d: &depthwise::QuantizedDepthwise,
        image: &[Self],
        oy: usize,
        starts: &depthwise::WindowStarts,
        sums: &mut [i32],
    ) {
        depthwise::row_sums_u8(d, image, oy, starts, sums)
    }
    fn column_sums(x: &[Self], sums: &mut [i32]) {
        column_sums_u8(x, sums)
    }
}

/// Whether the selected level is AVX-512 and the processor also has its byte and word
/// instructions and their 128-bit forms.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx512bw() -> bool {
    use crate::nn::simd::Level;
    static BW: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let level = Level::selected();
    level == Level::Avx512
        && level.is_available()
        && *BW.get_or_init(|| {
            std::is_x86_feature_detected!("avx512bw") && std::is_x86_feature_detected!("avx512vl")
        })
}

/// Whether the selected level is AVX2 or AVX-512, and the processor has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2_fma() -> bool {
    use crate::nn::simd::Level;
    matches!(Level::selected(), Level::Avx2 | Level::Avx512) && Level::Avx2.is_available()
}

/// How a 32-bit sum becomes a stored output: scaled by its channel's multiplier, moved to the
/// output's zero point and clamped to the fused activation's range.
#[derive(Debug, Clone)]
pub struct Requantize {
    pub scaling: Scaling,
    pub zero_point: i32,
    pub min: i32,
    pub max: i32,
}

/// One multiplier per output channel, in the form the op's reference kernel applies it.
#[derive(Debug, Clone)]
pub enum Scaling {
    /// Fixed point, as most quantized kernels requantize.
    Fixed(Multipliers),
    /// `round(sum × scale)` in double precision, as LiteRT's reference FULLY_CONNECTED does.
    Real(Vec<f64>),
}

/// [`Multiplier`]s laid out per channel for a branch-free, vectorisable loop: the fraction,
/// the left shift as a factor, and the right shift with its rounding mask.
#[derive(Debug, Clone)]
pub struct Multipliers {
    values: Vec<i32>,
    left_factors: Vec<i32>,
    /// The left shifts themselves, for AVX-512's variable shift.
    #[cfg(target_arch = "x86_64")]
    left_shifts: Vec<i32>,
    /// For AVX-512's single-precision first try: each multiplier's value, `fraction ×
    /// 2^(shift − 31)`, rounded to single precision, and half its right shift's step,
    /// `2^−(1 + right shift)` (0 without one).
    #[cfg(target_arch = "x86_64")]
    real_values: Vec<f32>,
    #[cfg(target_arch = "x86_64")]
    half_steps: Vec<f32>,
    right_shifts: Vec<i32>,
    masks: Vec<i32>,
}

impl Multipliers {
    pub fn new(multipliers: &[Multiplier]) -> Self {
        let right = |m: &Multiplier| (-m.shift).max(0);
        Multipliers {
            values: multipliers.iter().map(|m| m.value).collect(),
            left_factors: multipliers.iter().map(|m| 1 << m.shift.max(0)).collect(),
            #[cfg(target_arch = "x86_64")]
            left_shifts: multipliers.iter().map(|m| m.shift.max(0)).collect(),
            #[cfg(target_arch = "x86_64")]
            real_values: multipliers
                .iter()
                .map(|m| (m.value as f64 * 2f64.powi(m.shift - 31)) as f32)
                .collect(),
            #[cfg(target_arch = "x86_64")]
            half_steps: multipliers
                .iter()
                .map(|m| match right(m) {
                    0 => 0.0,
                    r => 2f32.powi(-1 - r),
                })
                .collect(),
            right_shifts: multipliers.iter().map(right).collect(),
            masks: multipliers
                .iter()
                .map(|m| ((1i64 << right(m)) - 1) as i32)
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the single-precision requantization (`requantize_avx512::SinglePrecision`) is
    /// exact for these channels with this zero point: each multiplier below one half (a right
    /// shift and no left one) or zero, and the zero point within ±255. From one half up, a sum
    /// near the int32 limits could scale past what single precision converts back.
    #[cfg(target_arch = "x86_64")]
    fn single_precision(&self, channels: Range<usize>, zero_point: i32) -> bool {
        let below_half = |c: usize| {
            self.left_shifts[c] == 0 && (self.right_shifts[c] > 0 || self.values[c] == 0)
        };
        zero_point.abs() <= 255 && channels.into_iter().all(below_half)
    }

    /// [`Multiplier::apply`] for channel `c`, without branches. The fraction is positive (at
    /// least 2^30, or 0), so the doubling high multiply never saturates.
    #[cfg(test)]
    fn apply(&self, sum: i32, c: usize) -> i32 {
        let (v, l) = (self.values[c], self.left_factors[c]);
        scale(sum, v, l, self.right_shifts[c], self.masks[c])
    }
}

impl Scaling {
    pub fn fixed(multipliers: &[Multiplier]) -> Self {
        Scaling::Fixed(Multipliers::new(multipliers))
    }

    pub fn len(&self) -> usize {
        match self {
            Scaling::Fixed(m) => m.len(),
            Scaling::Real(r) => r.len(),
        }
    }
}

impl Requantize {
    /// One sum of channel `channel`, as [`Requantize::store_rows`] requantizes it.
    #[cfg(test)]
    pub fn apply(&self, sum: i32, channel: usize) -> i32 {
        // LiteRT adds the zero point to the fixed-point result in plain int32 arithmetic,
        // which wraps past the limits (only a hostile bias takes a sum there).
        let moved = match &self.scaling {
            Scaling::Fixed(m) => m.apply(sum, channel).wrapping_add(self.zero_point),
            Scaling::Real(r) => {
                ((sum as f64 * r[channel]).round() as i32).saturating_add(self.zero_point)
            }
        };
        moved.clamp(self.min, self.max)
    }

    /// Requantizes consecutive rows of the sums of `channels` (a range of the output's
    /// channels), one sum per channel: one call for a block of output pixels, so that choosing the
    /// instruction set and loading the multipliers is paid per block, not per pixel.
    pub fn store_rows<T: Quantized>(&self, channels: Range<usize>, sums: &[i32], out: &mut [T]) {
        self.store_pooled_rows(channels, 1, sums, out)
    }

    /// [`Requantize::store_rows`] of the maxima of each `pool` neighbouring rows of sums (a
    /// row of pixels max-pooled, those past the last whole window left out). Requantization
    /// never decreases, so this gives the requantized values' maxima.
    pub fn store_pooled_rows<T: Quantized>(
        &self,
        channels: Range<usize>,
        pool: usize,
        sums: &[i32],
        out: &mut [T],
    ) {
        let channels = channels.start..channels.end.min(self.scaling.len());
        let width = channels.len().max(1);
        match &self.scaling {
            #[cfg(target_arch = "x86_64")]
            Scaling::Fixed(m) if avx512bw() => {
                // SAFETY: the processor has AVX-512F, BW and VL, checked just now.
                let bytes = T::bytes_mut(out);
                unsafe { requantize_avx512::store_bytes(self, m, channels, pool, sums, bytes) }
            }
            _ if pool > 1 => {
                let pooled = max_pooled_rows(sums, width, pool);
                self.store_rows(channels, &pooled, out)
            }
            #[cfg(target_arch = "x86_64")]
            Scaling::Fixed(m) if avx2_fma() => {
                // SAFETY: the processor has AVX2 and FMA, checked just now.
                let bytes = T::bytes_mut(out);
                unsafe { requantize_avx2::store_bytes(self, m, channels, sums, bytes) }
            }
            Scaling::Fixed(m) => T::store_fixed(self, m, channels, sums, out),
            Scaling::Real(r) => {
                for (sums, out) in sums.chunks(width).zip(out.chunks_mut(width)) {
                    for ((o, &s), r) in out.iter_mut().zip(sums).zip(&r[channels.clone()]) {
                        let v = ((s as f64 * r).round() as i32).saturating_add(self.zero_point);
                        *o = T::narrow(v.clamp(self.min, self.max));
                    }
                }
            }
        }
    }
}

/// The maxima of each `pool` neighbouring rows of `width` sums, those past the last whole
/// window left out.
fn max_pooled_rows(sums: &[i32], width: usize, pool: usize) -> Vec<i32> {
    let windows = sums.chunks_exact(width * pool);
    windows
        .flat_map(|window| {
            (0..width).map(move |c| window.iter().skip(c).step_by(width).max().copied())
        })
        .map(|max| max.unwrap_or(i32::MIN))
        .collect()
}

/// The fixed-point requantization loop, compiled per instruction set for each output type.
#[inline(always)]
fn store_fixed_portable<T: Quantized>(
    r: &Requantize,
    m: &Multipliers,
    channels: Range<usize>,
    sums: &[i32],
    out: &mut [T],
) {
    let width = channels.len().max(1);
    for (sums, out) in sums.chunks(width).zip(out.chunks_mut(width)) {
        let c = channels.clone();
        let multipliers = m.values[c.clone()].iter().zip(&m.left_factors[c.clone()]);
        let shifts = m.right_shifts[c.clone()].iter().zip(&m.masks[c]);
        for (((o, &sum), (&value, &left)), (&right, &mask)) in
            out.iter_mut().zip(sums).zip(multipliers).zip(shifts)
        {
            let v = scale(sum, value, left, right, mask).wrapping_add(r.zero_point);
            *o = T::narrow(v.clamp(r.min, r.max));
        }
    }
}

#[inline(always)]
fn column_sums_portable<T: Quantized>(x: &[T], sums: &mut [i32]) {
    for line in x.chunks_exact(sums.len().max(1)) {
        for (s, v) in sums.iter_mut().zip(line) {
            *s = s.wrapping_add(v.get());
        }
    }
}

crate::nn::simd::compiled_per_level! {
    fn column_sums_i8(x: &[i8], sums: &mut [i32]) = column_sums_portable
}

crate::nn::simd::compiled_per_level! {
    fn column_sums_u8(x: &[u8], sums: &mut [i32]) = column_sums_portable
}

crate::nn::simd::compiled_per_level! {
    fn store_fixed_i8(
        r: &Requantize,
        m: &Multipliers,
        channels: Range<usize>,
        sums: &[i32],
        out: &mut [i8],
    ) =
        store_fixed_portable
}

crate::nn::simd::compiled_per_level! {
    fn store_fixed_u8(
        r: &Requantize,
        m: &Multipliers,
        channels: Range<usize>,
        sums: &[i32],
        out: &mut [u8],
    ) =
        store_fixed_portable
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every instruction set's requantization gives the reference's integers, for fractions
    /// with every shift a multiplier can have (left shifts, none, right shifts of 1 to 31,
    /// zero), sums over the whole int32 range and near the roundings' ties, in int8 and uint8,
    /// with whole and partial channel groups and rows.
    #[test]
    fn stored_values_equal_the_reference_for_every_shift() {
        let reals: Vec<f64> = (-34..=5)
            .flat_map(|e| [0.5, 0.623, 0.9999, 0.75].map(|f| f * 2f64.powi(e)))
            .chain([0.0])
            .collect();
        let multipliers: Vec<Multiplier> =
            reals.iter().map(|&r| Multiplier::new(r).unwrap()).collect();
        let channels = multipliers.len();
        let mut state = 0x2545_f491_u32;
        let mut random = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as i32
        };
        let special = (0..31).flat_map(|k| [1 << k, (1 << k) + 1, (1 << k) - 1]);
        let special: Vec<i32> = special
            .flat_map(|v: i32| [v, -v])
            .chain([0, i32::MIN, i32::MAX, i32::MIN + 1])
            .collect();
        let rows = 13;
        let sums: Vec<i32> = (0..channels * rows)
            .map(|i| match i % 3 {
                0 => special[i / 3 % special.len()],
                1 => random() >> (i % 29),
                _ => random(),
            })
            .collect();
        for output in [(-3, -128, 127), (17, 0, 255)] {
            assert_stored_as_the_reference(&multipliers, &sums, output);
        }
    }

    /// Sums near the int32 limits scaled by multipliers just below one (which single precision
    /// rounds to one), as a hostile bias could make them, give the reference's values: those
    /// that the zero point takes past the limits wrap, as LiteRT's int32 addition does.
    #[test]
    fn sums_at_the_limits_by_multipliers_near_one_equal_the_reference() {
        let multipliers: Vec<Multiplier> = [0.99999997, 0.9999999, 0.5000001, 0.49999997]
            .map(|r| Multiplier::new(r).unwrap())
            .to_vec();
        let sums: Vec<i32> = [i32::MAX, i32::MAX - 100, i32::MIN, i32::MIN + 300]
            .iter()
            .flat_map(|&s| [s; 4])
            .collect();
        for output in [
            (100, -128, 127),
            (-100, -128, 127),
            (255, 0, 255),
            (0, 0, 255),
        ] {
            assert_stored_as_the_reference(&multipliers, &sums, output);
        }
    }

    /// Rows of `sums` (one per multiplier) stored with the `(zero point, min, max)` of int8 or
    /// uint8 equal [`Requantize::apply`]'s values, whichever path stores them.
    fn assert_stored_as_the_reference(
        multipliers: &[Multiplier],
        sums: &[i32],
        (zero_point, min, max): (i32, i32, i32),
    ) {
        let stage = Requantize {
            scaling: Scaling::fixed(multipliers),
            zero_point,
            min,
            max,
        };
        let channels = multipliers.len();
        let got: Vec<i32> = if min < 0 {
            let mut out = vec![0i8; sums.len()];
            stage.store_rows(0..channels, sums, &mut out);
            out.iter().map(|&v| v as i32).collect()
        } else {
            let mut out = vec![0u8; sums.len()];
            stage.store_rows(0..channels, sums, &mut out);
            out.iter().map(|&v| v as i32).collect()
        };
        for (i, (&sum, got)) in sums.iter().zip(got).enumerate() {
            let c = i % channels;
            assert_eq!(
                got,
                stage.apply(sum, c),
                "sum {sum} of channel {c} ({:?}), zero point {zero_point}",
                multipliers[c]
            );
        }
    }

    /// Sums at and around every rounding point of the stored range (where the single-precision
    /// first try of AVX-512 must hand over to the fixed-point arithmetic), for multipliers of
    /// every right shift and zero points at both ends of each type, equal the reference.
    #[test]
    fn stored_values_equal_the_reference_at_every_rounding_point() {
        let multipliers: Vec<Multiplier> = (0..24)
            .flat_map(|e| [0.5000001, 0.61803, 0.7, 0.99999].map(|f| f * 2f64.powi(-e)))
            .map(|r| Multiplier::new(r).unwrap())
            .collect();
        // Per channel, the sums nearest each point where the output steps, and their
        // neighbours: output values −300…300, from both signs' rounding constants.
        let steps_near = |m: &Multiplier, k: i64| -> Vec<i32> {
            let q = 31 - m.shift.min(0);
            let starts = match q {
                31 => vec![1i64 << 30],
                _ => vec![(1 << 30) + (1 << (q - 1)), (1 << (q - 1)) - (1 << 30)],
            };
            starts
                .into_iter()
                .flat_map(|b| {
                    let x = ((k << q) - b) as f64 / m.value as f64;
                    (-2..=2).map(move |d| (x.round() as i64 + d) as i32)
                })
                .collect()
        };
        let columns: Vec<Vec<i32>> = multipliers
            .iter()
            .map(|m| (-300..=300).flat_map(|k| steps_near(m, k)).collect())
            .collect();
        let rows = columns.iter().map(Vec::len).min().unwrap();
        let sums: Vec<i32> = (0..rows)
            .flat_map(|r| columns.iter().map(move |c| c[r]))
            .collect();
        for output in [
            (-128, -128, 127),
            (127, -128, 127),
            (0, 0, 255),
            (255, 0, 255),
        ] {
            assert_stored_as_the_reference(&multipliers, &sums, output);
        }
    }

    /// Pooled rows requantize to the maxima of the rows requantized one by one, whichever
    /// path stores them (fixed point: AVX-512 where the processor has it; double precision:
    /// the portable one), odd trailing rows left out.
    #[test]
    fn pooled_rows_are_the_maxima_of_the_requantized_rows() {
        let (channels, rows, pool) = (21, 7, 2);
        let sums: Vec<i32> = (0..channels * rows)
            .map(|i| (i as i32 * 7919 % 20011) - 10000)
            .collect();
        let multipliers: Vec<Multiplier> = (0..channels)
            .map(|c| Multiplier::new(0.003 + 0.0007 * c as f64).unwrap())
            .collect();
        let reals = (0..channels).map(|c| 0.003 + 0.0007 * c as f64).collect();
        for scaling in [Scaling::fixed(&multipliers), Scaling::Real(reals)] {
            let stage = Requantize {
                scaling,
                zero_point: -3,
                min: -128,
                max: 100,
            };
            let mut each = vec![0i8; channels * rows];
            stage.store_rows(0..channels, &sums, &mut each);
            let expected: Vec<i8> = (0..rows / pool)
                .flat_map(|r| {
                    let each = &each;
                    (0..channels).map(move |c| {
                        let row = |i: usize| each[(r * pool + i) * channels + c];
                        (0..pool).map(row).max().unwrap()
                    })
                })
                .collect();
            let mut pooled = vec![0i8; expected.len()];
            stage.store_pooled_rows(0..channels, pool, &sums, &mut pooled);
            assert_eq!(pooled, expected, "{:?}", stage.scaling);
        }
    }
}
