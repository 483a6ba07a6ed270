//! The Burn side of the host operations: which route a backend takes, the borrowed tensor
//! buffers, the autodiff nodes with their backward steps, and the tensor-operation route of the
//! other backends. The arithmetic itself is `peterrec_kernels`'.
//!
//! On NdArray and Flex (with the `flex` feature) with `f32` tensors, each operation here runs on
//! host buffers read in place and is one node of the autodiff graph with its own backward step;
//! on any other backend or element type it is Burn's tensor operations, the same function.
//!
//! - [`cross_entropy`]: the full-softmax head's fused linear + cross-entropy
//!   (`cross_entropy_host`: its autodiff node and surrogate inputs);
//! - [`sampled`]: the sampled-softmax head's cross-entropy;
//! - [`conv`]: the dilated convolution of [`crate::conv`];
//! - [`patch`]: the bottleneck of [`crate::patch`];
//! - [`norm_relu`]: `relu(LayerNorm(x))` of the residual blocks;
//! - [`adam`]: Adam fused into one pass per parameter;
//! - [`host`]: routing and buffer access.

pub(crate) mod adam;
pub(crate) mod conv;
pub(crate) mod cross_entropy;
mod cross_entropy_host;
pub(crate) mod host;
pub(crate) mod norm_relu;
pub(crate) mod patch;
pub(crate) mod sampled;
