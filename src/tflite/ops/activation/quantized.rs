//! LOGISTIC, TANH and HARD_SWISH on int8 and uint8: each of the 256 stored inputs mapped once,
//! when prepared, to its stored output, then a table lookup per value. LOGISTIC and TANH fill
//! the table as LiteRT's reference kernels do (dequantize, the float function, multiply by the
//! inverse output scale, round); HARD_SWISH with LiteRT's 16-bit fixed-point arithmetic.

use super::Kind;
use crate::nn::kernels::quantized::fixed_point::{rounding_divide_by_pot, Multiplier};
use crate::nn::kernels::quantized::Quantized;
use crate::nn::thread_pool::for_each_band;
use crate::tflite::ops::quantized::{affine, multiplier, type_range, Affine};
use crate::tflite::tensor::{Data, Tensor};

pub(super) struct Table {
    /// Indexed by the stored input's bits (`value as u8`).
    outputs: [i32; 256],
    /// The same as stored bytes (two's complement for int8), for the AVX-512 lookup.
    #[cfg(target_arch = "x86_64")]
    bytes: [u8; 256],
    /// The stored inputs' range.
    range: (i32, i32),
}

impl Table {
    pub fn new(kind: Kind, x: &Tensor, y: &Tensor) -> Result<Self, String> {
        if y.dtype() != x.dtype() {
            return Err(format!(
                "a {} input makes a {} output",
                x.dtype(),
                y.dtype()
            ));
        }
        let (from, to) = (affine(x, "input")?, affine(y, "output")?);
        let (lo, hi) = type_range(x.dtype())?;
        let f: Box<dyn Fn(i32) -> i32> = match kind {
            Kind::Logistic => {
                if to.scale as f64 != 1.0 / 256.0 {
                    return Err(
                        "a quantized LOGISTIC's output scale must be 1/256, as LiteRT \
                                requires"
                            .into(),
                    );
                }
                Box::new(move |v| through_float(v, from, to, |r| 1.0 / (1.0 + (-r).exp())))
            }
            Kind::Tanh => Box::new(move |v| through_float(v, from, to, f32::tanh)),
            Kind::HardSwish => {
                let h = HardSwish::new(from, to)?;
                Box::new(move |v| h.apply(v))
            }
            _ => {
                return Err(format!(
                    "petal runs LOGISTIC, TANH and HARD_SWISH on {}, not this activation",
                    x.dtype()
                ))
            }
        };
        let mut outputs = [0; 256];
        for v in lo..=hi {
            outputs[(v as u8) as usize] = f(v).clamp(lo, hi);
        }
        Ok(Table::of(outputs, (lo, hi)))
    }

    fn of(outputs: [i32; 256], range: (i32, i32)) -> Table {
        Table {
            outputs,
            #[cfg(target_arch = "x86_64")]
            bytes: outputs.map(|v| v as u8),
            range,
        }
    }

    /// The table of `f(v, table(v))` for each stored input `v`.
    pub fn then_with_input(&self, f: impl Fn(i32, i32) -> i32) -> Table {
        let (lo, hi) = self.range;
        let mut outputs = [0; 256];
        for v in lo..=hi {
            let at = (v as u8) as usize;
            outputs[at] = f(v, self.outputs[at]);
        }
        Table::of(outputs, self.range)
    }

    pub fn run(&self, x: &Data, y: &mut Data) -> Result<(), String> {
        match (x, y) {
            (Data::I8(x), Data::I8(y)) => self.map(x, y),
            (Data::U8(x), Data::U8(y)) => self.map(x, y),
            _ => return Err("the tensors are not of the types prepared".into()),
        }
        Ok(())
    }

    fn map<T: Quantized>(&self, x: &[T], y: &mut [T]) {
        for_each_band(y, 1, |first, y| self.map_band(&x[first..], y));
    }

    fn map_band<T: Quantized>(&self, x: &[T], y: &mut [T]) {
        #[cfg(target_arch = "x86_64")]
        if vbmi() {
            // SAFETY: the processor has AVX-512F, BW and VBMI, checked just now.
            return unsafe { look_up_avx512(&self.bytes, T::bytes(x), T::bytes_mut(y)) };
        }
        for (y, v) in y.iter_mut().zip(x) {
            *y = T::narrow(self.outputs[(v.get() as u8) as usize]);
        }
    }
}

/// Whether the selected level is AVX-512 and the processor also has VBMI's byte permutes.
#[cfg(target_arch = "x86_64")]
fn vbmi() -> bool {
    static VBMI: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    crate::nn::kernels::quantized::avx512bw()
        && *VBMI.get_or_init(|| std::is_x86_feature_detected!("avx512vbmi"))
}

/// `y[i] = table[x[i]]`, 64 bytes at a time: two two-register byte permutes (the table's
/// halves, by the index's low seven bits) and a blend by its top bit.
///
/// # Safety
/// The processor must have AVX-512F, BW and VBMI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn look_up_avx512(table: &[u8; 256], x: &[u8], y: &mut [u8]) {
    use std::arch::x86_64::*;
    let quarter = |i: usize| _mm512_loadu_si512(table.as_ptr().add(64 * i) as *const _);
    let (t0, t1, t2, t3) = (quarter(0), quarter(1), quarter(2), quarter(3));
    let n = x.len().min(y.len());
    let mut i = 0;
    while i < n {
        let lanes = (n - i).min(64);
        let k: __mmask64 = match lanes {
            64 => !0,
            _ => (1u64 << lanes) - 1,
        };
        let index = _mm512_maskz_loadu_epi8(k, x.as_ptr().add(i) as *const i8);
        let low = _mm512_permutex2var_epi8(t0, index, t1);
        let high = _mm512_permutex2var_epi8(t2, index, t3);
        let v = _mm512_mask_blend_epi8(_mm512_movepi8_mask(index), low, high);
        _mm512_mask_storeu_epi8(y.as_mut_ptr().add(i) as *mut i8, k, v);
        i += lanes;
    }
}

/// LiteRT's `LUTPopulate`: the stored output of `f` at stored input `v`, in float32.
fn through_float(v: i32, from: Affine, to: Affine, f: impl Fn(f32) -> f32) -> i32 {
    let real = from.scale * (v - from.zero_point) as f32;
    let steps = (f(real) * (1.0 / to.scale)).round();
    (steps + to.zero_point as f32) as i32
}

/// LiteRT's quantized hard-swish, `x · relu6(x + 3) / 6`, in 16-bit fixed point: the input at
/// 7 more bits of resolution, a "reluish" factor in [0, 1] from it, and their product rescaled
/// to the output.
struct HardSwish {
    input_zero_point: i32,
    output_zero_point: i32,
    reluish: (i16, i32),
    output: (i16, i32),
}

impl HardSwish {
    fn new(from: Affine, to: Affine) -> Result<Self, String> {
        let hires_input_scale = (1.0f32 / 128.0) * from.scale;
        let reluish_scale = 3.0f32 / 32768.0;
        let to_16 = |real: f32| -> Result<(i16, i32), String> {
            let Multiplier { value, shift } = multiplier(real as f64, "hard-swish")?;
            // LiteRT's `DownScaleInt32ToInt16Multiplier`.
            let value = match value >= i32::MAX - (1 << 15) {
                true => i16::MAX,
                false => ((value + (1 << 15)) >> 16) as i16,
            };
            Ok((value, shift))
        };
        let output = to_16(hires_input_scale / to.scale)?;
        if output.1 > 0 {
            return Err("the output scale is too small for LiteRT's quantized hard-swish".into());
        }
        Ok(HardSwish {
            input_zero_point: from.zero_point,
            output_zero_point: to.zero_point,
            reluish: to_16(hires_input_scale / reluish_scale)?,
            output,
        })
    }

    fn apply(&self, v: i32) -> i32 {
        let input = (v - self.input_zero_point) as i16;
        let hires = input.wrapping_mul(128);
        let pre_output = high_mul_16(hires, self.output.0);
        let (multiplier, exponent) = self.reluish;
        let mut reluish = hires;
        if exponent > 0 {
            reluish = saturating_left_shift_16(reluish, exponent - 1);
        }
        reluish = high_mul_16(reluish, multiplier);
        if exponent > 0 {
            reluish = saturating_left_shift_16(reluish, 1);
        }
        if exponent < 0 {
            reluish = rounding_divide_by_pot(reluish as i32, -exponent) as i16;
        }
        // From [-1, 1] to [0, 1].
        let reluish = ((reluish as i32 + (1 << 15)) >> 1) as i16;
        let product = doubling_high_mul_16(reluish, pre_output);
        let out = rounding_divide_by_pot(product as i32, -self.output.1) as i16;
        out.wrapping_add(self.output_zero_point as i16) as i32
    }
}

/// gemmlowp's 16-bit `SaturatingRoundingDoublingHighMul`.
fn high_mul_16(a: i16, b: i16) -> i16 {
    if a == i16::MIN && b == i16::MIN {
        return i16::MAX;
    }
    let ab = a as i32 * b as i32;
    let nudge = if ab >= 0 { 1 << 14 } else { 1 - (1 << 14) };
    ((ab + nudge) / (1 << 15)) as i16
}

/// gemmlowp's 16-bit `SaturatingDoublingHighMul` (no rounding: truncates toward zero).
fn doubling_high_mul_16(a: i16, b: i16) -> i16 {
    if a == i16::MIN && b == i16::MIN {
        return i16::MAX;
    }
    ((a as i32 * b as i32) / (1 << 15)) as i16
}

fn saturating_left_shift_16(v: i16, shift: i32) -> i16 {
    (v as i64 * (1i64 << shift)).clamp(i16::MIN as i64, i16::MAX as i64) as i16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tflite::tensor::DType;

    #[test]
    fn hard_swish_is_close_to_its_float_definition() {
        let from = Affine {
            scale: 0.05,
            zero_point: -10,
        };
        let to = Affine {
            scale: 0.03,
            zero_point: -100,
        };
        let h = HardSwish::new(from, to).unwrap();
        for v in -128..=127 {
            let x = from.scale * (v - from.zero_point) as f32;
            let want = x * (x + 3.0).clamp(0.0, 6.0) / 6.0 / to.scale + to.zero_point as f32;
            let got = h.apply(v);
            if (-128.0..=127.0).contains(&want) {
                assert!((got as f32 - want).abs() <= 1.0, "{v}: {got} vs {want}");
            }
        }
        assert_eq!(type_range(DType::U8), Ok((0, 255)));
    }

    /// The lookup gives the table's values for every stored int8 and uint8 value, with a
    /// ragged tail, whichever way the processor looks them up.
    #[test]
    fn lookups_give_the_table() {
        let outputs: [i32; 256] = std::array::from_fn(|i| (i as i32 * 37 + 11) % 256 - 128);
        let table = Table::of(outputs, (-128, 127));
        let x: Vec<i8> = (0..1000).map(|i| (i * 7) as u8 as i8).collect();
        let mut y = vec![0i8; x.len()];
        table.map_band(&x, &mut y);
        for (&v, &got) in x.iter().zip(&y) {
            assert_eq!(got as i32, outputs[v as u8 as usize], "{v}");
        }
        let outputs: [i32; 256] = std::array::from_fn(|i| (i as i32 * 91) % 256);
        let table = Table::of(outputs, (0, 255));
        let x: Vec<u8> = (0..333).map(|i| (i * 5) as u8).collect();
        let mut y = vec![0u8; x.len()];
        table.map_band(&x, &mut y);
        for (&v, &got) in x.iter().zip(&y) {
            assert_eq!(got as i32, outputs[v as usize], "{v}");
        }
    }
}
