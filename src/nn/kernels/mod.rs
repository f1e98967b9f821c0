//! The engine's compute kernels: plain functions over slices (the layers keep the state: saved
//! activations, scratch, gradients). Each checks the bounds it relies on before any unchecked
//! code runs; the SIMD ones are compiled per instruction set (`crate::nn::simd`).

pub(crate) mod conv;
pub(crate) mod depthwise;
pub mod gemm;
