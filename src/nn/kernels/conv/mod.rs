//! Convolution: the direct kernels on a zero-padded image (`direct`, with their register tiles
//! in `tiles`), the fused 2×2 max-pool and its gradient (`pool`), and im2col + GEMM for the
//! shapes the direct kernels do not cover (`im2col`).

pub(crate) mod direct;
pub(crate) mod im2col;
pub(crate) mod pool;
mod tiles;
