//! QUANTIZE: float values to int8 or uint8 (rounded to the nearest step, ties away from zero),
//! or stored values from one quantization to another (int8 to uint8 at a uint8 model's output,
//! uint8 to int8 at its input), with LiteRT's integer requantization.

use super::quantized::{affine, multiplier, with_quantized, Affine};
use super::{Inputs, Op, Out};
use crate::nn::kernels::quantized::{Multiplier, Quantized};
use crate::nn::thread_pool::for_each_band;
use crate::tflite::schema::BuiltinOptions;
use crate::tflite::tensor::{DType, Data, Tensor};

pub(super) fn build(_: Option<&BuiltinOptions>) -> Result<Box<dyn Op>, String> {
    Ok(Box::new(Quantize { conversion: None }))
}

enum Conversion {
    FromFloat(Affine),
    Requantize {
        from_zero_point: i32,
        multiplier: Multiplier,
        to_zero_point: i32,
    },
}

struct Quantize {
    conversion: Option<Conversion>,
}

impl Op for Quantize {
    fn prepare(&mut self, inputs: &Inputs) -> Result<Vec<Out>, String> {
        inputs.expect_count(1..=1)?;
        let x = inputs.get(0)?;
        let y = inputs.output(0)?;
        if !matches!(y.dtype(), DType::I8 | DType::U8) {
            return Err(format!(
                "petal quantizes to INT8 and UINT8, not {}",
                y.dtype()
            ));
        }
        let to = affine(y, "output")?;
        self.conversion = Some(match x.dtype() {
            DType::F32 => Conversion::FromFloat(to),
            DType::I8 | DType::U8 => {
                let from = affine(x, "input")?;
                Conversion::Requantize {
                    from_zero_point: from.zero_point,
                    multiplier: multiplier(from.scale as f64 / to.scale as f64, "requantization")?,
                    to_zero_point: to.zero_point,
                }
            }
            other => {
                return Err(format!(
                    "petal quantizes FLOAT32, INT8 and UINT8 inputs, not {other}"
                ))
            }
        });
        Ok(vec![Out::new(y.dtype(), x.shape.clone())])
    }

    fn eval(&mut self, inputs: &[Option<&Tensor>], outputs: &mut [Tensor]) -> Result<(), String> {
        let conversion = self.conversion.as_ref().ok_or("not prepared")?;
        let x = inputs[0].ok_or("the input is missing")?;
        let out = &mut outputs[0].data;
        match (conversion, &x.data) {
            (Conversion::FromFloat(to), Data::F32(x)) => match out {
                Data::I8(y) => for_each_band(y, 1, |first, y| {
                    if !bytes_from_float::<i8>(&x[first..], *to, y) {
                        to_i8(&x[first..], *to, y)
                    }
                }),
                Data::U8(y) => for_each_band(y, 1, |first, y| {
                    if !bytes_from_float::<u8>(&x[first..], *to, y) {
                        to_u8(&x[first..], *to, y)
                    }
                }),
                _ => return Err(mismatch()),
            },
            (
                &Conversion::Requantize {
                    from_zero_point,
                    multiplier,
                    to_zero_point,
                },
                data,
            ) => {
                let step = |v: i32| multiplier.apply(v - from_zero_point) + to_zero_point;
                with_quantized!(data, x => with_quantized!(out, y => requantize(x, step, y),
                    return Err(mismatch())), return Err(mismatch()))
            }
            _ => return Err(mismatch()),
        }
        Ok(())
    }
}

fn mismatch() -> String {
    "the tensors are not of the types prepared".into()
}

/// LiteRT's `AffineQuantize`: `round(x / scale) + zero point` in float32, clamped.
#[inline(always)]
fn from_float<T: Quantized>(x: &[f32], to: Affine, y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        let steps = (x / to.scale).round() as i32;
        *y = T::narrow(steps.saturating_add(to.zero_point).clamp(T::MIN, T::MAX));
    }
}

/// [`from_float`] in AVX-512 where the selected level has it (and the zero point is one a
/// valid model has); `false` when it did nothing.
fn bytes_from_float<T: Quantized>(x: &[f32], to: Affine, y: &mut [T]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if crate::nn::kernels::quantized::avx512bw() && to.zero_point.abs() < 1 << 30 {
        use crate::nn::kernels::quantized::requantize_avx512::bytes_from_float as convert;
        let (bytes, range) = (T::bytes_mut(y), (T::MIN, T::MAX));
        // SAFETY: the processor has AVX-512F, BW and VL, checked just now.
        unsafe { convert(x, to.scale, to.zero_point, range, bytes) };
        return true;
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (x, to, y);
    false
}

crate::nn::simd::compiled_per_level! {
    /// [`from_float`] to int8, compiled for each instruction set (rounding is one instruction
    /// from SSE4.1 on, a call before).
    fn to_i8(x: &[f32], to: Affine, y: &mut [i8]) = from_float
}

crate::nn::simd::compiled_per_level! {
    /// [`from_float`] to uint8, compiled for each instruction set.
    fn to_u8(x: &[f32], to: Affine, y: &mut [u8]) = from_float
}

fn requantize<T: Quantized, U: Quantized>(x: &[T], step: impl Fn(i32) -> i32 + Sync, y: &mut [U]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = U::narrow(step(x.get()).clamp(U::MIN, U::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tflite::ops::run_to;
    use crate::tflite::tensor::Quantization;

    /// Where AVX-512 takes the conversion, it must give the portable loop's bytes: ties
    /// rounded away from zero, NaN as 0, infinities and huge values clamped, and the tail.
    #[test]
    fn the_vector_conversion_equals_the_portable_one() {
        let mut x: Vec<f32> = vec![
            0.5, -0.5, 1.5, -1.5, 2.5, -2.4999998, 0.49999997, 126.5, -128.5,
        ];
        x.extend([
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            3e9,
            -3e9,
            1e-30,
            -0.0,
        ]);
        x.extend((0..37).map(|i| i as f32 * 7.3 - 130.0));
        for (scale, zero_point) in [(1.0, 0), (0.5, -3), (0.37, 12), (3.0, -128)] {
            let to = Affine { scale, zero_point };
            let (mut fast, mut portable) = (vec![0i8; x.len()], vec![0i8; x.len()]);
            from_float(&x, to, &mut portable);
            if bytes_from_float(&x, to, &mut fast) {
                assert_eq!(fast, portable, "scale {scale}, zero point {zero_point}");
            }
            let (mut fast, mut portable) = (vec![0u8; x.len()], vec![0u8; x.len()]);
            let to = Affine {
                scale,
                zero_point: zero_point + 128,
            };
            from_float(&x, to, &mut portable);
            if bytes_from_float(&x, to, &mut fast) {
                assert_eq!(fast, portable, "uint8, scale {scale}");
            }
        }
    }

    fn quantized(dtype: DType, scale: f32, zero_point: i64) -> Tensor {
        Tensor {
            shape: vec![],
            data: dtype.empty(),
            quantization: Some(Quantization {
                scales: vec![scale],
                zero_points: vec![zero_point],
                axis: 0,
            }),
        }
    }

    #[test]
    fn floats_round_half_away_from_zero_and_clamp() {
        let x = Tensor::f32(vec![6], vec![0.25, -0.25, 0.75, 100.0, -100.0, f32::NAN]);
        let out = quantized(DType::I8, 0.5, -1);
        let y = run_to(build(None).unwrap(), &[&x], Some(&out)).unwrap();
        assert_eq!(y.data, Data::I8(vec![0, -2, 1, 127, -128, -1]));
    }

    #[test]
    fn int8_moves_to_uint8_and_back() {
        let mut x = quantized(DType::I8, 0.1, -128);
        x.shape = vec![4];
        x.data = Data::I8(vec![-128, -1, 0, 127]);
        let y = run_to(
            build(None).unwrap(),
            &[&x],
            Some(&quantized(DType::U8, 0.1, 0)),
        )
        .unwrap();
        assert_eq!(y.data, Data::U8(vec![0, 127, 128, 255]));
        let mut twice = quantized(DType::U8, 0.2, 10);
        twice.shape = vec![4];
        twice.data = Data::U8(vec![0, 10, 11, 255]);
        let z = run_to(
            build(None).unwrap(),
            &[&twice],
            Some(&quantized(DType::I8, 0.1, 0)),
        )
        .unwrap();
        assert_eq!(z.data, Data::I8(vec![-20, 0, 2, 127]));
    }
}
