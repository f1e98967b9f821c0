//! petal's own training engine: layer-wise explicit forward and backward passes over NHWC
//! float32 batches, threads over the batch; convolutions by direct AVX-512 kernels (or im2col +
//! GEMM elsewhere), Dense by GEMM.

pub mod activation;
pub mod denormals;
pub mod init;
pub mod kernels;
pub mod layers;
pub mod loss;
pub mod model;
pub mod model_file;
pub mod optim;
pub mod presets;
pub mod shape;
pub mod simd;
pub mod thread_pool;
pub mod train;

pub use layers::Mode;
pub use model::{LayerTime, ModelConfig, Sequential};
pub use shape::Shape;
