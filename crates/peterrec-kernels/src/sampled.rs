//! The sampled-softmax cross-entropy of a `[C, V]` head on host buffers.
//!
//! With `n` rows, `S` negatives shared by all rows, and `log Q` corrections:
//!
//! - the negatives' columns are gathered into `W_S` (`[C, S]`) and each row's true column into
//!   `T` (`[C, n]`), walking the head row by row;
//! - `Z = [z₀ | h·W_S]` (`[n, 1 + S]`, one product into columns `1..`) with
//!   `z₀[r] = h[r]·T[:, r]`, plus the bias, minus `log Q`, hits masked to `−10⁹`;
//! - each row becomes `G = softmax(Z[r]) / n` in place ([`crate::softmax::softmax_row`]), with
//!   `1/n` taken off column 0 (the one-hot part), and the loss is the mean of
//!   `logsumexp(Z[r]) − z₀[r]`;
//! - `∂h = G[:, 1..]·W_Sᵀ + G[:, 0] ⊙ Tᵀ`, `∂W_S = hᵀ·G[:, 1..]` and `∂T[:, r] = G[r, 0]·h[r]`
//!   (two products and two passes) are returned; [`weight_gradient`] and [`bias_gradient`]
//!   scatter them, scaled, into a dense `[C, V]` and `[V]` gradient.

use rayon::prelude::*;

use crate::gemm::{product, MatMut, MatRef};
use crate::softmax::softmax_row;

/// The logit given to a negative that equals the row's true item.
pub const HIT_LOGIT: f32 = -1.0e9;

/// Rows per Rayon task in the row passes.
const ROWS_PER_TASK: usize = 256;

/// The candidates of a sampled-softmax loss: each row's true item and the shared negatives,
/// with their `log Q` corrections.
#[derive(Clone, Copy, Debug)]
pub struct Candidates<'a> {
    /// `[n]` true items, each below `V`.
    pub targets: &'a [usize],
    /// `[S]` negatives, each below `V`.
    pub negatives: &'a [usize],
    /// `[n]` `log Q` of each true item.
    pub true_log_q: &'a [f32],
    /// `[S]` `log Q` of each negative.
    pub neg_log_q: &'a [f32],
}

/// The loss and the unscaled gradients of its candidates.
#[derive(Clone, Debug)]
pub struct Gradients {
    /// The mean loss.
    pub loss: f32,
    /// `[n, C]`: the gradient of `h`.
    pub gh: Vec<f32>,
    /// `[C, S]`: the gradient of the negatives' columns.
    pub g_neg: Vec<f32>,
    /// `[C, n]`: the gradient of each row's true column.
    pub g_true: Vec<f32>,
    /// `[S]`: the bias gradient of the negatives.
    pub gb_neg: Vec<f32>,
    /// `[n]`: the bias gradient of each row's true item.
    pub gb_true: Vec<f32>,
}

/// Loss and gradients of the mean sampled-softmax cross-entropy of `h·w + b` (see the module
/// docs), for `h: [n, C]`, `w: [C, v]`, `b: [v]`, row-major.
///
/// # Panics
/// If there is no row or no channel, the slices' lengths disagree, or an item is not below `v`.
pub fn gradients(h: &[f32], w: &[f32], b: &[f32], v: usize, cand: &Candidates<'_>) -> Gradients {
    let (n, s) = (cand.targets.len(), cand.negatives.len());
    let c = h.len() / n.max(1);
    assert!(n > 0 && c > 0, "at least one row and one channel");
    assert_eq!(h.len(), n * c, "h is [n, C]");
    assert_eq!(w.len(), c * v, "the head is [C, V]");
    assert_eq!(b.len(), v, "the bias is [V]");
    assert_eq!(cand.true_log_q.len(), n);
    assert_eq!(cand.neg_log_q.len(), s);
    assert!(
        cand.targets.iter().chain(cand.negatives).all(|&i| i < v),
        "items lie in 0..V"
    );
    let width = s + 1;
    let scale = 1.0 / n as f32;

    // The candidates' columns.
    let w_neg = columns(w, v, cand.negatives);
    let t_cols = columns(w, v, cand.targets);

    // Z = [z₀ | h·W_S], corrected and masked, then G in place.
    let mut z = vec![0.0f32; n * width];
    if s > 0 {
        product(
            MatMut::new(&mut z[1..], n, s, width),
            MatRef::rows(h, n, c),
            MatRef::rows(&w_neg, c, s),
            false,
        );
    }
    let neg_shift: Vec<f32> = cand
        .negatives
        .iter()
        .zip(cand.neg_log_q)
        .map(|(&j, &lq)| b[j] - lq)
        .collect();
    // Per-task sums added in order: the same loss however Rayon splits the work.
    let losses: Vec<f64> = z
        .par_chunks_mut(ROWS_PER_TASK * width)
        .zip(h.par_chunks(ROWS_PER_TASK * c))
        .enumerate()
        .map(|(task, (z, h))| {
            let first = task * ROWS_PER_TASK;
            let mut loss = 0.0f64;
            for (i, (row, h)) in z.chunks_mut(width).zip(h.chunks(c)).enumerate() {
                let r = first + i;
                let t = cand.targets[r];
                let z0: f32 = (0..c).map(|k| h[k] * t_cols[k * n + r]).sum::<f32>() + b[t]
                    - cand.true_log_q[r];
                row[0] = z0;
                for ((x, &shift), &j) in row[1..].iter_mut().zip(&neg_shift).zip(cand.negatives) {
                    *x = if j == t { HIT_LOGIT } else { *x + shift };
                }
                let lse = softmax_row(row, None, scale);
                row[0] -= scale;
                loss += f64::from(lse - z0);
            }
            loss
        })
        .collect();
    let loss: f64 = losses.iter().sum();

    // ∂h = G[:, 1..]·W_Sᵀ + G[:, 0] ⊙ Tᵀ, ∂W_S = hᵀ·G[:, 1..], ∂T[:, r] = G[r, 0]·h[r].
    let mut gh = vec![0.0f32; n * c];
    let mut g_neg = vec![0.0f32; c * s];
    if s > 0 {
        // `G[:, 1..]`: `[n, S]` over `z`, rows `1 + S` apart, from column 1.
        let g_s = MatRef::new(&z[1..], n, s, width, 1);
        product(
            MatMut::rows(&mut gh, n, c),
            g_s,
            MatRef::transposed(&w_neg, c, s),
            false,
        );
        product(
            MatMut::rows(&mut g_neg, c, s),
            MatRef::transposed(h, n, c),
            g_s,
            false,
        );
    }
    let g0: Vec<f32> = z.iter().step_by(width).copied().collect();
    gh.par_chunks_mut(c)
        .zip(&g0)
        .enumerate()
        .for_each(|(r, (gh, &g0))| {
            for (k, x) in gh.iter_mut().enumerate() {
                *x += g0 * t_cols[k * n + r];
            }
        });
    let mut g_true = vec![0.0f32; c * n];
    g_true.par_chunks_mut(n).enumerate().for_each(|(k, row)| {
        for ((x, &g0), r) in row.iter_mut().zip(&g0).zip(0..) {
            *x = g0 * h[r * c + k];
        }
    });
    let mut gb_neg = vec![0.0f32; s];
    for row in z.chunks(width) {
        gb_neg.iter_mut().zip(&row[1..]).for_each(|(a, g)| *a += g);
    }
    Gradients {
        loss: (loss / n as f64) as f32,
        gh,
        g_neg,
        g_true,
        gb_neg,
        gb_true: g0,
    }
}

/// Columns `cols` of the row-major `[C, V]` matrix `w`, as a row-major `[C, cols.len()]` one,
/// walking `w` row by row.
fn columns(w: &[f32], v: usize, cols: &[usize]) -> Vec<f32> {
    let c = w.len() / v.max(1);
    let mut out = vec![0.0f32; c * cols.len()];
    if !cols.is_empty() {
        out.par_chunks_mut(cols.len())
            .zip(w.par_chunks(v.max(1)))
            .for_each(|(out, row)| {
                for (x, &j) in out.iter_mut().zip(cols) {
                    *x = row[j];
                }
            });
    }
    out
}

/// The dense `[C, v]` head gradient `u·(∂W_S scattered to the negatives' columns + ∂T to the
/// true items' columns)`, rows split over Rayon's threads.
///
/// # Panics
/// If `grads` does not hold `[C, S]` and `[C, n]` gradients for these candidates, or an item is
/// not below `v`.
pub fn weight_gradient(
    grads: &Gradients,
    targets: &[usize],
    negatives: &[usize],
    c: usize,
    v: usize,
    u: f32,
) -> Vec<f32> {
    let (n, s) = (targets.len(), negatives.len());
    assert_eq!(grads.g_neg.len(), c * s, "∂W_S is [C, S]");
    assert_eq!(grads.g_true.len(), c * n, "∂T is [C, n]");
    let mut gw = vec![0.0f32; c * v];
    gw.par_chunks_mut(v.max(1))
        .enumerate()
        .for_each(|(k, row)| {
            for (&j, &g) in negatives.iter().zip(&grads.g_neg[k * s..(k + 1) * s]) {
                row[j] += u * g;
            }
            for (&t, &g) in targets.iter().zip(&grads.g_true[k * n..(k + 1) * n]) {
                row[t] += u * g;
            }
        });
    gw
}

/// The dense `[v]` bias gradient, `u` times the negatives' and the true items' parts.
///
/// # Panics
/// If an item is not below `v`.
pub fn bias_gradient(
    grads: &Gradients,
    targets: &[usize],
    negatives: &[usize],
    v: usize,
    u: f32,
) -> Vec<f32> {
    let mut gb = vec![0.0f32; v];
    for (&j, &g) in negatives.iter().zip(&grads.gb_neg) {
        gb[j] += u * g;
    }
    for (&t, &g) in targets.iter().zip(&grads.gb_true) {
        gb[t] += u * g;
    }
    gb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_row_by_hand() {
        // h = [1, 0], W columns: item 0 → (1, 0), item 1 → (0, 0), item 2 → (2, 0); no bias,
        // log Q = 0. Row target 0, negatives {1, 2}: logits [1, 0, 2].
        let (h, w, b) = (
            [1.0f32, 0.0],
            [1.0f32, 0.0, 2.0, 0.0, 0.0, 0.0],
            [0.0f32; 3],
        );
        let cand = Candidates {
            targets: &[0],
            negatives: &[1, 2],
            true_log_q: &[0.0],
            neg_log_q: &[0.0, 0.0],
        };
        let parts = gradients(&h, &w, &b, 3, &cand);
        let lse = (1.0f32.exp() + 1.0 + 2.0f32.exp()).ln();
        assert!((parts.loss - (lse - 1.0)).abs() < 1e-6);
        let p: Vec<f32> = [1.0f32, 0.0, 2.0].iter().map(|z| (z - lse).exp()).collect();
        assert!((parts.gb_true[0] - (p[0] - 1.0)).abs() < 1e-6);
        assert!((parts.gb_neg[0] - p[1]).abs() < 1e-6 && (parts.gb_neg[1] - p[2]).abs() < 1e-6);
        // ∂h = (p₀ − 1)·W[:, 0] + p₁·W[:, 1] + p₂·W[:, 2].
        let gh0 = (p[0] - 1.0) + 2.0 * p[2];
        assert!((parts.gh[0] - gh0).abs() < 1e-6 && parts.gh[1].abs() < 1e-6);
        // ∂W_S[:, j] = G[0, 1 + j]·h and ∂T[:, 0] = G[0, 0]·h, with h = (1, 0).
        assert!((parts.g_neg[0] - p[1]).abs() < 1e-6 && (parts.g_neg[1] - p[2]).abs() < 1e-6);
        assert!(parts.g_neg[2].abs() < 1e-7 && parts.g_neg[3].abs() < 1e-7);
        assert!((parts.g_true[0] - (p[0] - 1.0)).abs() < 1e-6 && parts.g_true[1].abs() < 1e-7);
        // Scattered, scaled by 2: column 0 gets ∂T, columns 1 and 2 the negatives' parts.
        let gw = weight_gradient(&parts, cand.targets, cand.negatives, 2, 3, 2.0);
        assert_eq!(
            gw[..3],
            [
                2.0 * parts.g_true[0],
                2.0 * parts.g_neg[0],
                2.0 * parts.g_neg[1]
            ]
        );
        let gb = bias_gradient(&parts, cand.targets, cand.negatives, 3, 2.0);
        assert_eq!(
            gb,
            [
                2.0 * parts.gb_true[0],
                2.0 * parts.gb_neg[0],
                2.0 * parts.gb_neg[1]
            ]
        );
    }

    #[test]
    fn without_negatives_the_loss_and_gradients_are_zero() {
        let cand = Candidates {
            targets: &[1, 0],
            negatives: &[],
            true_log_q: &[-1.0, -2.0],
            neg_log_q: &[],
        };
        let parts = gradients(
            &[0.5, -1.0, 2.0, 0.25],
            &[1.0, 2.0, 3.0, 4.0],
            &[0.1, 0.2],
            2,
            &cand,
        );
        assert_eq!(parts.loss, 0.0);
        assert!(parts
            .gh
            .iter()
            .chain(&parts.g_true)
            .chain(&parts.gb_true)
            .all(|&g| g == 0.0));
    }
}
