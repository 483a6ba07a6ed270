//! Top-k selection of score rows, on the host where the scores are read to be returned (Burn
//! 0.21's `topk_with_indices` sorts every row completely). The selection itself is
//! `peterrec_kernels::topk`'s.

/// The `k` highest scores of one row with their indices, best first (ties: lower index first;
/// NaNs ordered as in `f32::total_cmp`: a positive NaN above `+∞`, a negative one, such as
/// x86's `∞ − ∞`, below `−∞`). Returns all of them when `k ≥ len`.
pub fn top_k(scores: &[f32], k: usize) -> Vec<(u32, f32)> {
    peterrec_kernels::topk::top_k(scores, k)
}

/// [`top_k`] of each row of a row-major `[rows, cols]` score matrix.
pub fn top_k_rows(scores: &[f32], cols: usize, k: usize) -> Vec<Vec<(u32, f32)>> {
    peterrec_kernels::topk::top_k_rows(scores, cols, k)
}
