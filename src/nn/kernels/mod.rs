//! The engine's compute kernels: plain functions over slices (the layers keep the state: saved
//! activations, scratch, gradients). Each checks the bounds it relies on before any unchecked
//! code runs; the SIMD ones are compiled per instruction set (`crate::nn::simd`).

pub(crate) mod conv;
pub(crate) mod depthwise;
mod depthwise_vector;
pub(crate) mod elementwise;
pub(crate) mod expanded_depthwise;
pub mod gemm;
pub(crate) mod packed_gemm;
pub(crate) mod quantized;

/// An element-wise function a kernel applies, in place, to each block of its output as it
/// finishes it, while the block is in the core's cache: the activation operator after a
/// TensorFlow Lite convolution, fused into it.
pub(crate) type ThenApply<'a> = Option<&'a (dyn Fn(&mut [f32]) + Sync)>;

/// `std::min(std::max(v, lo), hi)`: TensorFlow Lite's clamp for fused activations, which keeps a
/// NaN (Rust's `f32::max` would turn it into `lo`).
#[inline(always)]
pub(crate) fn clamp(v: f32, lo: f32, hi: f32) -> f32 {
    let v = if v < lo { lo } else { v };
    if hi < v {
        hi
    } else {
        v
    }
}
