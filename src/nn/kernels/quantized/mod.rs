//! Integer kernels for quantized models (int8 and uint8), exact to LiteRT's reference
//! arithmetic: products accumulate in 32 bits, so their order does not matter, and only the
//! requantization of each sum ([`Requantize`]) must follow the reference step by step.

pub(crate) mod depthwise;
pub(crate) mod dynamic_range;
pub(crate) mod fields;
pub mod fixed_point;
pub(crate) mod gemm;

pub use fixed_point::Multiplier;

/// A stored quantized value: int8 or uint8.
pub trait Quantized: Copy + Default + Send + Sync + 'static {
    const MIN: i32;
    const MAX: i32;
    fn get(self) -> i32;
    /// `v`, which the caller clamped to `MIN..=MAX`.
    fn narrow(v: i32) -> Self;
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
    Fixed(Vec<Multiplier>),
    /// `round(sum × scale)` in double precision, as LiteRT's reference FULLY_CONNECTED does.
    Real(Vec<f64>),
}

impl Scaling {
    pub fn len(&self) -> usize {
        match self {
            Scaling::Fixed(m) => m.len(),
            Scaling::Real(r) => r.len(),
        }
    }
}

impl Requantize {
    /// One sum of channel `channel`, as [`Requantize::store`] requantizes it.
    #[cfg(test)]
    pub fn apply(&self, sum: i32, channel: usize) -> i32 {
        let scaled = match &self.scaling {
            Scaling::Fixed(m) => m[channel].apply(sum),
            Scaling::Real(r) => (sum as f64 * r[channel]).round() as i32,
        };
        scaled
            .saturating_add(self.zero_point)
            .clamp(self.min, self.max)
    }

    /// Requantizes one output pixel's (or row's) sums, one per channel.
    #[inline(always)]
    pub fn store<T: Quantized>(&self, sums: &[i32], out: &mut [T]) {
        let finish =
            |v: i32| T::narrow(v.saturating_add(self.zero_point).clamp(self.min, self.max));
        match &self.scaling {
            Scaling::Fixed(m) => {
                for ((o, &s), m) in out.iter_mut().zip(sums).zip(m) {
                    *o = finish(m.apply(s));
                }
            }
            Scaling::Real(r) => {
                for ((o, &s), r) in out.iter_mut().zip(sums).zip(r) {
                    *o = finish((s as f64 * r).round() as i32);
                }
            }
        }
    }
}
