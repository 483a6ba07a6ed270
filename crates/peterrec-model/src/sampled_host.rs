//! The sampled-softmax cross-entropy of the pretraining head on host buffers, for the CPU
//! backends: one node of the autodiff graph in place of about twenty tensor operations.
//!
//! [`crate::loss::sampled_softmax_loss`] over Burn tensors gathers the negatives' and the true
//! items' columns of the `[C, V]` head (`select`), multiplies, adds the bias and the `−log Q`
//! correction, masks accidental hits, concatenates, takes a log-softmax and picks column 0; its
//! backward pass walks all of that again and scatters into two zero-filled `[C, V]` gradients.
//! Here, with `n` rows, `S` shared negatives and `u` the upstream scale:
//!
//! - the negatives' columns are gathered into `W_S` (`[C, S]`) and each row's true column into
//!   `T` (`[C, n]`), walking the head row by row;
//! - `Z = [z₀ | h·W_S]` (`[n, 1 + S]`, one `gemm` call into columns `1..`) with
//!   `z₀[r] = h[r]·T[:, r]`, plus the bias, minus `log Q`, hits masked to `−10⁹`;
//! - each row becomes `G = softmax(Z[r]) / n` in place ([`crate::softmax_rows::softmax_row`]),
//!   with `1/n` taken off column 0 (the one-hot part), and the loss is the mean of
//!   `logsumexp(Z[r]) − z₀[r]`;
//! - `∂h = G[:, 1..]·W_Sᵀ + G[:, 0] ⊙ Tᵀ`, `∂W_S = hᵀ·G[:, 1..]` and `∂T[:, r] = G[r, 0]·h[r]`
//!   (two `gemm` calls and two passes) are kept, and the backward step scales them by `u` and
//!   scatters `∂W_S`, `∂T` and the bias gradient into one dense `[C, V]` and one `[V]` gradient.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use gemm::gemm;
use rayon::prelude::*;

use crate::fused_host::parallelism;
use crate::host::{cast, note_host_run, register, values, Route, Saved};
use crate::softmax_rows::softmax_row;

/// The logit given to a negative that equals the row's true item (as the tensor version).
const HIT_LOGIT: f32 = -1.0e9;

/// Rows per Rayon task in the row passes.
const ROWS_PER_TASK: usize = 256;

/// The candidates of a sampled-softmax loss: each row's true item and the shared negatives,
/// with their `log Q` corrections.
pub(crate) struct Candidates<'a> {
    /// `[n]` true items, each below `V`.
    pub targets: &'a [usize],
    /// `[S]` negatives, each below `V`.
    pub negatives: &'a [usize],
    /// `[n]` `log Q` of each true item.
    pub true_log_q: &'a [f32],
    /// `[S]` `log Q` of each negative.
    pub neg_log_q: &'a [f32],
}

/// The mean sampled-softmax cross-entropy of `h·W + b` (a `[1]` tensor), on a host `route` (an
/// autodiff one when training).
///
/// # Shapes
/// - h: `[n, C]` (at least one row)
/// - w: `[C, V]`
/// - b: `[V]`
pub(crate) fn sampled_cross_entropy<B: Backend>(
    route: Route,
    h: Tensor<B, 2>,
    w: Tensor<B, 2>,
    b: Tensor<B, 1>,
    candidates: &Candidates<'_>,
) -> Tensor<B, 1> {
    note_host_run();
    match route {
        Route::AutodiffNdArray => cast(autodiff_loss::<burn::backend::NdArray<f32>>(
            cast(h),
            cast(w),
            cast(b),
            candidates,
        )),
        #[cfg(feature = "flex")]
        Route::AutodiffFlex => cast(autodiff_loss::<burn::backend::Flex>(
            cast(h),
            cast(w),
            cast(b),
            candidates,
        )),
        Route::Host => {
            let device = h.device();
            let v = w.dims()[1];
            let (h, w, b) = (
                h.into_primitive().tensor(),
                w.into_primitive().tensor(),
                b.into_primitive().tensor(),
            );
            let parts = compute(
                &values::<B>(&h),
                &values::<B>(&w),
                &values::<B>(&b),
                v,
                candidates,
            );
            Tensor::from_data(TensorData::new(vec![parts.loss], [1]), &device)
        }
        Route::Tensor => unreachable!("the tensor route does not come here"),
    }
}

/// The loss and the unscaled gradients of its candidates.
struct Parts {
    loss: f32,
    /// `[n, C]`.
    gh: Vec<f32>,
    /// `[C, S]`: the gradient of the negatives' columns.
    g_neg: Vec<f32>,
    /// `[C, n]`: the gradient of each row's true column.
    g_true: Vec<f32>,
    /// `[S]` and `[n]`: the bias gradient of the negatives and of each row's true item.
    gb_neg: Vec<f32>,
    gb_true: Vec<f32>,
}

/// Loss and gradients on the host (see the module docs).
///
/// # Panics
/// If the slices' lengths disagree, or an item is not below `v`.
fn compute(h: &[f32], w: &[f32], b: &[f32], v: usize, cand: &Candidates<'_>) -> Parts {
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
        // SAFETY: `z` holds `n·(1+S)` values and columns `1..=S` of each row are written
        // (row stride `1+S`); `h` is `[n, C]`, `w_neg` is `[C, S]`, both row-major.
        unsafe {
            gemm(
                n,
                s,
                c,
                z.as_mut_ptr().add(1),
                1,
                width as isize,
                false,
                h.as_ptr(),
                1,
                c as isize,
                w_neg.as_ptr(),
                1,
                s as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism(n, s, c),
            )
        };
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
        // SAFETY: `gh` is `[n, C]`; `G[:, 1..]` is `[n, S]` over `z` (row stride `1+S`, from
        // column 1); `W_Sᵀ` is `[S, C]` over `w_neg` (`[C, S]` row-major).
        unsafe {
            gemm(
                n,
                c,
                s,
                gh.as_mut_ptr(),
                1,
                c as isize,
                false,
                z.as_ptr().add(1),
                1,
                width as isize,
                w_neg.as_ptr(),
                s as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism(n, c, s),
            );
            // `g_neg` is `[C, S]`; `hᵀ` is `[C, n]` over `h`; `G[:, 1..]` as above.
            gemm(
                c,
                s,
                n,
                g_neg.as_mut_ptr(),
                1,
                s as isize,
                false,
                h.as_ptr(),
                c as isize,
                1,
                z.as_ptr().add(1),
                1,
                width as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism(c, s, n),
            );
        }
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
    Parts {
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

/// What the backward step keeps.
struct SavedInner<I: Backend> {
    parts: Parts,
    targets: Vec<usize>,
    negatives: Vec<usize>,
    c: usize,
    v: usize,
    device: I::Device,
}

/// The backward step of the host sampled softmax (parents: `h`, `W`, `b`).
#[derive(Debug)]
struct SampledBackward;

impl<I: Backend> Backward<I, 3> for SampledBackward {
    type State = Saved<SavedInner<I>>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_h, node_w, node_b] = ops.parents;
        let saved = ops.state.0;
        let upstream = grads.consume::<I>(&ops.node);
        let u = values::<I>(&upstream)[0];
        let (p, c, v) = (&saved.parts, saved.c, saved.v);
        let n = saved.targets.len();
        let device = &saved.device;
        if let Some(node) = node_h {
            register::<I>(
                grads,
                node.id,
                p.gh.iter().map(|g| g * u).collect(),
                vec![n, c],
                device,
            );
        }
        if let Some(node) = node_w {
            let s = saved.negatives.len();
            let mut gw = vec![0.0f32; c * v];
            gw.par_chunks_mut(v).enumerate().for_each(|(k, row)| {
                for (&j, &g) in saved.negatives.iter().zip(&p.g_neg[k * s..(k + 1) * s]) {
                    row[j] += u * g;
                }
                for (&t, &g) in saved.targets.iter().zip(&p.g_true[k * n..(k + 1) * n]) {
                    row[t] += u * g;
                }
            });
            register::<I>(grads, node.id, gw, vec![c, v], device);
        }
        if let Some(node) = node_b {
            let mut gb = vec![0.0f32; v];
            for (&j, &g) in saved.negatives.iter().zip(&p.gb_neg) {
                gb[j] += u * g;
            }
            for (&t, &g) in saved.targets.iter().zip(&p.gb_true) {
                gb[t] += u * g;
            }
            register::<I>(grads, node.id, gb, vec![v], device);
        }
    }
}

/// The host sampled softmax as one node of the autodiff graph over the host backend `I`.
fn autodiff_loss<I: Backend>(
    h: Tensor<Autodiff<I>, 2>,
    w: Tensor<Autodiff<I>, 2>,
    b: Tensor<Autodiff<I>, 1>,
    cand: &Candidates<'_>,
) -> Tensor<Autodiff<I>, 1> {
    let [c, v] = w.dims();
    let (h, w, b) = (
        h.into_primitive().tensor(),
        w.into_primitive().tensor(),
        b.into_primitive().tensor(),
    );
    let nodes = [h.node.clone(), w.node.clone(), b.node.clone()];
    let device = I::float_device(&h.primitive);
    let parts = compute(
        &values::<I>(&h.primitive),
        &values::<I>(&w.primitive),
        &values::<I>(&b.primitive),
        v,
        cand,
    );
    let loss = I::float_from_data(TensorData::new(vec![parts.loss], [1]), &device);
    let output = match SampledBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let saved = Saved(Arc::new(SavedInner {
                parts,
                targets: cand.targets.to_vec(),
                negatives: cand.negatives.to_vec(),
                c,
                v,
                device,
            }));
            prep.finish(saved, loss)
        }
        OpsKind::UnTracked(prep) => prep.finish(loss),
    };
    Tensor::from_primitive(TensorPrimitive::Float(output))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lm::tensor_sampled_loss;
    use burn::backend::NdArray;
    use burn::tensor::{Distribution, Int};

    type I = NdArray<f32>;
    type A = Autodiff<I>;

    fn max_diff<const D: usize>(a: Tensor<I, D>, b: Tensor<I, D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// Loss and gradients (`h`, `W`, `b`) of `upstream · loss` by the host route and by the
    /// tensor route.
    #[allow(clippy::type_complexity)]
    fn both(
        n: usize,
        c: usize,
        v: usize,
        negatives: &[u32],
        upstream: f32,
        head_trains: bool,
    ) -> Vec<(
        f32,
        Tensor<I, 2>,
        Option<Tensor<I, 2>>,
        Option<Tensor<I, 1>>,
    )> {
        let d = Default::default();
        let h0 = Tensor::<I, 2>::random([n, c], Distribution::Normal(0.0, 1.0), &d);
        let w0 = Tensor::<I, 2>::random([c, v], Distribution::Normal(0.0, 0.7), &d);
        let b0 = Tensor::<I, 1>::random([v], Distribution::Normal(0.0, 0.3), &d);
        // Targets cycle through the catalogue, so some rows hit a negative.
        let targets: Vec<usize> = (0..n).map(|r| (r * 7 + 3) % v).collect();
        let true_log_q: Vec<f32> = targets
            .iter()
            .map(|&t| -(1.0 + t as f32 / v as f32))
            .collect();
        let neg_log_q: Vec<f32> = negatives
            .iter()
            .map(|&j| -(2.0 + j as f32 / v as f32))
            .collect();
        [true, false]
            .into_iter()
            .map(|host| {
                let h = Tensor::<A, 2>::from_inner(h0.clone()).require_grad();
                let (mut w, mut b) = (
                    Tensor::<A, 2>::from_inner(w0.clone()),
                    Tensor::<A, 1>::from_inner(b0.clone()),
                );
                if head_trains {
                    (w, b) = (w.require_grad(), b.require_grad());
                }
                let loss = if host {
                    let negatives: Vec<usize> = negatives.iter().map(|&j| j as usize).collect();
                    let cand = Candidates {
                        targets: &targets,
                        negatives: &negatives,
                        true_log_q: &true_log_q,
                        neg_log_q: &neg_log_q,
                    };
                    sampled_cross_entropy(
                        Route::AutodiffNdArray,
                        h.clone(),
                        w.clone(),
                        b.clone(),
                        &cand,
                    )
                } else {
                    let ids: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
                    let t = Tensor::<A, 1, Int>::from_data(TensorData::new(ids.clone(), [n]), &d);
                    tensor_sampled_loss(
                        h.clone(),
                        w.clone(),
                        Some(b.clone()),
                        t,
                        &ids,
                        negatives,
                        true_log_q.clone(),
                        neg_log_q.clone(),
                    )
                };
                let value = loss.clone().into_scalar();
                let grads = loss.mul_scalar(upstream).backward();
                (
                    value,
                    h.grad(&grads).unwrap(),
                    w.grad(&grads),
                    b.grad(&grads),
                )
            })
            .collect()
    }

    #[test]
    fn matches_the_tensor_route_in_value_and_gradients() {
        // 300 rows: two row tasks; negatives with a repeat, and items that are some rows'
        // targets (accidental hits).
        // 300 × 211 × 128: products past the threshold where `gemm` splits over threads.
        let many: Vec<u32> = (0..211).map(|j| (j * 13 % 500) as u32).collect();
        for (n, c, v, negatives, upstream) in [
            (300, 6, 50, vec![3u32, 10, 17, 17, 40, 0], 1.0f32),
            (5, 6, 50, vec![24u32], 2.5),
            (
                9,
                6,
                50,
                vec![1u32, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13],
                1.0,
            ),
            (300, 128, 500, many, 1.0),
        ] {
            let mut runs = both(n, c, v, &negatives, upstream, true);
            let (l2, h2, w2, b2) = runs.pop().unwrap();
            let (l1, h1, w1, b1) = runs.pop().unwrap();
            let case = format!("n={n} c={c} S={}", negatives.len());
            assert!(
                (l1 - l2).abs() < 1e-5 * l2.abs().max(1.0),
                "{case}: loss {l1} vs {l2}"
            );
            assert!(max_diff(h1, h2) < 1e-5, "{case}: ∂h");
            assert!(max_diff(w1.unwrap(), w2.unwrap()) < 1e-5, "{case}: ∂W");
            assert!(max_diff(b1.unwrap(), b2.unwrap()) < 1e-5, "{case}: ∂b");
        }
    }

    #[test]
    fn a_frozen_head_gets_no_gradient() {
        let mut runs = both(12, 4, 30, &[2, 5, 9], 1.0, false);
        let (_, h2, w2, b2) = runs.pop().unwrap();
        let (_, h1, w1, b1) = runs.pop().unwrap();
        assert!(w1.is_none() && b1.is_none() && w2.is_none() && b2.is_none());
        assert!(max_diff(h1, h2) < 1e-5);
    }

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
        let parts = compute(&h, &w, &b, 3, &cand);
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
    }

    #[test]
    fn without_negatives_the_loss_and_gradients_are_zero() {
        let cand = Candidates {
            targets: &[1, 0],
            negatives: &[],
            true_log_q: &[-1.0, -2.0],
            neg_log_q: &[],
        };
        let parts = compute(
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
