//! The activation TensorFlow Lite fuses into an op's output, as the clamp its kernels apply.

use crate::tflite::schema::ActivationFunctionType;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Fused {
    min: f32,
    max: f32,
}

impl Fused {
    pub const NONE: Fused = Fused {
        min: f32::NEG_INFINITY,
        max: f32::INFINITY,
    };

    pub fn new(f: ActivationFunctionType) -> Result<Fused, String> {
        let (min, max) = match f {
            ActivationFunctionType::None => return Ok(Fused::NONE),
            ActivationFunctionType::Relu => (0.0, f32::INFINITY),
            ActivationFunctionType::Relu6 => (0.0, 6.0),
            ActivationFunctionType::ReluN1To1 => (-1.0, 1.0),
            other => {
                return Err(format!(
                    "fused activation {other:?} is not supported (petal fuses NONE, RELU, RELU6 \
                     and RELU_N1_TO_1, as TensorFlow Lite's float kernels do)"
                ))
            }
        };
        Ok(Fused { min, max })
    }

    /// The lowest and highest values the output may take.
    pub fn range(self) -> (f32, f32) {
        (self.min, self.max)
    }

    pub fn is_none(self) -> bool {
        self == Fused::NONE
    }

    #[inline(always)]
    pub fn clamp(self, v: f32) -> f32 {
        crate::nn::kernels::clamp(v, self.min, self.max)
    }

    pub fn apply(self, values: &mut [f32]) {
        if !self.is_none() {
            values.iter_mut().for_each(|v| *v = self.clamp(*v));
        }
    }
}
