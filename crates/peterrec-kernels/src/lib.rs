//! # peterrec-kernels
//!
//! The CPU host kernels of peterrec, over plain `f32` slices and shapes: what the model crate's
//! host routes for Burn's NdArray and Flex backends compute once they have borrowed their
//! tensors' buffers. Nothing here knows about Burn or the model's types.
//!
//! - [`gemm`]: strided matrix views and products ([`gemm::product`], [`gemm::new_product`]).
//! - [`softmax`]: the in-place row softmax with its log-sum-exp.
//! - [`cross_entropy`]: the full softmax cross-entropy of `x·W + b` and its gradients.
//! - [`sampled`]: the sampled-softmax cross-entropy and its gradients.
//! - [`conv`]: the dilated convolution as a tap gather and one product, and its backward pass.
//! - [`patch`]: the bottleneck adapter `W_up·GELU(W_down·x + b_down) + b_up`.
//! - [`norm`]: `relu(LayerNorm(x))` row by row, forward and backward.
//! - [`adam`]: Adam's update of a parameter and its moments in one pass.
//! - [`topk`]: top-k selection of score rows.
//! - `cuda` (feature `cuda-probe`) and `alloc` (feature `mimalloc`): safe wrappers of the two
//!   foreign calls the rest of the workspace makes.
//!
//! The public API is safe: lengths are checked against the shapes (the functions panic on a
//! mismatch, as documented), and the few `unsafe` blocks stay inside.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod adam;
#[cfg(feature = "mimalloc")]
pub mod alloc;
pub mod conv;
pub mod cross_entropy;
#[cfg(feature = "cuda-probe")]
pub mod cuda;
pub mod gemm;
pub mod norm;
pub mod patch;
pub mod sampled;
pub mod softmax;
pub mod topk;

use rayon::prelude::*;

/// Σ over rows of a row-major matrix with `n` columns (the gradient of a bias added to every
/// row). A trailing partial row is ignored.
pub fn column_sums(values: &[f32], n: usize) -> Vec<f32> {
    let mut sums = vec![0.0f32; n];
    for row in values.chunks_exact(n.max(1)) {
        sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
    }
    sums
}

/// `values ← factor · values`, split over Rayon's threads; nothing when `factor` is 1.
pub fn scale(values: &mut [f32], factor: f32) {
    if factor != 1.0 {
        values.par_iter_mut().for_each(|v| *v *= factor);
    }
}
