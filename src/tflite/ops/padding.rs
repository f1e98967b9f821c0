//! TensorFlow Lite's SAME and VALID padding as the engine's window geometry.

use crate::nn::layers::window::Axis;
use crate::nn::layers::Padding;
use crate::tflite::schema;

/// The window along one axis, or an error naming the sizes when it does not fit.
pub(crate) fn window_axis(
    input: usize,
    window: usize,
    stride: i32,
    dilation: i32,
    padding: schema::Padding,
) -> Result<Axis, String> {
    let positive = |what: &str, v: i32| {
        usize::try_from(v)
            .ok()
            .filter(|&v| v >= 1)
            .ok_or_else(|| format!("{what} must be at least 1, got {v}"))
    };
    let (stride, dilation) = (positive("stride", stride)?, positive("dilation", dilation)?);
    let padding = match padding {
        schema::Padding::Same => Padding::Same,
        schema::Padding::Valid => Padding::Valid,
    };
    if window == 0 {
        return Err("a window of size 0".into());
    }
    Axis::dilated(input, window, stride, dilation, padding).ok_or_else(|| {
        format!(
            "a window of {window} (dilation {dilation}) does not fit an input of {input} with \
             {padding:?} padding"
        )
    })
}
