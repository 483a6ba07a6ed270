//! A fused linear layer + softmax cross-entropy for training, with its gradient written out.
//!
//! The pretraining head computes `x·W + b` over the whole catalogue for every predicted position
//! and a softmax cross-entropy over it. Recorded op by op on an autodiff backend that is a chain
//! of `[n, V]` tensors (logits, max-shifted logits, `exp`, log-probabilities, and as many again
//! in the backward pass), each allocated, kept for the backward pass and walked once per op. At
//! the paper's shape (n = 6,400 positions, V = 50,000) one such tensor is 1.3 GB.
//!
//! [`linear_cross_entropy`] instead computes, on the inner (non-autodiff) backend and in row
//! chunks of at most [`CHUNK_ELEMENTS`] logits, the loss and the exact gradients
//! `G = (softmax(x·W + b) − onehot(t)) / n`, `∂x = G·Wᵀ`, `∂W = xᵀ·G`, `∂b = Σ G`, and hands
//! them to the autodiff graph through a *surrogate*: `Σ x⊙∂x + Σ W⊙∂W + Σ b⊙∂b`, whose
//! gradient with respect to `x`, `W` and `b` is exactly those tensors. The returned scalar is
//! `surrogate − detach(surrogate) + loss`: its value is the loss, its gradient the loss's
//! gradient, for any upstream scale. The autodiff graph holds only `[n, C]` tensors and tensors
//! shaped as the weight (`[C, V]`, or `[V, C]` for [`table_cross_entropy`]), never an `[n, V]`
//! one.
//!
//! On the CPU backends (NdArray, and Flex with the `flex` feature) with `f32` tensors, the same
//! arithmetic runs on host buffers instead of tensor operations: one reused `[rows, V]` buffer,
//! `gemm` products and an in-place, vectorised row softmax (`peterrec_kernels::cross_entropy`,
//! through `super::cross_entropy_host`). There the loss is one node of the autodiff graph with
//! its own backward step instead of the surrogate: the inputs are read in place, only the
//! tracked inputs' gradients are computed, and the backward step hands them over (scaled by the
//! upstream gradient when it is not 1), where the surrogate costs a copy of `x` and `W` and
//! four passes over weight-shaped tensors a step. Other backends (CUDA), `f64` tensors and
//! autodiff backends with another checkpointing strategy take the surrogate (the last over host
//! buffers).

use burn::tensor::{
    backend::{AutodiffBackend, Backend},
    DType, IndexingUpdateOp, Int, Tensor,
};

pub(crate) use peterrec_kernels::cross_entropy::WeightLayout;

use super::cross_entropy_host::{self, host_gradients, Parts, TensorGradients as Gradients};
use super::host::{cast, host_backend, route_for, Route};

/// Logits per chunk: rows are processed `CHUNK_ELEMENTS / V` at a time (at least one), which
/// bounds the transient `[rows, V]` buffer to 256 MiB of `f32`.
pub const CHUNK_ELEMENTS: usize = 64 << 20;

/// Mean softmax cross-entropy of `input·weight + bias` against `targets`, differentiable with
/// respect to `input`, `weight` and `bias` (see the module docs for how).
///
/// The value equals [`crate::loss::cross_entropy`] of the same logits; its gradients are the
/// analytic ones, computed without recording the `[n, V]` logits in the autodiff graph.
///
/// # Shapes
/// - input: `[n, C]` (already activated: the pretraining head passes `relu(hidden)`)
/// - weight: `[C, V]`
/// - bias: `[V]`
/// - targets: `[n]`, each in `0..V`
/// - output: `[1]`
pub fn linear_cross_entropy<B: AutodiffBackend>(
    input: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
    targets: Tensor<B, 1, Int>,
) -> Tensor<B, 1> {
    linear_cross_entropy_in_chunks(input, weight, bias, targets, CHUNK_ELEMENTS)
}

/// Mean softmax cross-entropy of `input·tableᵀ` against `targets`: [`linear_cross_entropy`] for
/// a weight stored as rows, one per class (an item-embedding table), without a bias.
///
/// Passing `table.transpose()` to [`linear_cross_entropy`] computes the same thing, but every
/// whole-table pass then walks a transposed (strided) view: a copy of the table to pick the
/// target columns, and the gradient built in `[C, V]` and transposed back. Here the target rows
/// are picked directly and the table's gradient is built in its own layout.
///
/// # Shapes
/// - input: `[n, C]`
/// - table: `[V, C]`
/// - targets: `[n]`, each in `0..V`
/// - output: `[1]`
pub fn table_cross_entropy<B: AutodiffBackend>(
    input: Tensor<B, 2>,
    table: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
) -> Tensor<B, 1> {
    fused_in_chunks(
        input,
        table,
        WeightLayout::Rows,
        None,
        targets,
        CHUNK_ELEMENTS,
    )
}

/// [`linear_cross_entropy`] with at most `chunk_elements` logits (`rows × V`, at least one row)
/// alive at a time.
///
/// # Shapes
/// As [`linear_cross_entropy`].
pub fn linear_cross_entropy_in_chunks<B: AutodiffBackend>(
    input: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
    targets: Tensor<B, 1, Int>,
    chunk_elements: usize,
) -> Tensor<B, 1> {
    fused_in_chunks(
        input,
        weight,
        WeightLayout::Columns,
        bias,
        targets,
        chunk_elements,
    )
}

/// The fused loss for either weight layout (`weight` is `[C, V]` or `[V, C]`, see `layout`).
fn fused_in_chunks<B: AutodiffBackend>(
    input: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    layout: WeightLayout,
    bias: Option<Tensor<B, 1>>,
    targets: Tensor<B, 1, Int>,
    chunk_elements: usize,
) -> Tensor<B, 1> {
    let [n, _] = input.dims();
    let v = match layout {
        WeightLayout::Columns => weight.dims()[1],
        WeightLayout::Rows => weight.dims()[0],
    };
    if n == 0 {
        // No rows: a zero loss with no gradient, as the mean over nothing is taken to be.
        return Tensor::zeros([1], &input.device());
    }
    let rows = (chunk_elements / v.max(1)).clamp(1, n);
    let mut dtypes = vec![input.dtype(), weight.dtype()];
    dtypes.extend(bias.as_ref().map(|b| b.dtype()));
    match route_for::<B>(&dtypes) {
        Route::AutodiffNdArray => {
            return cast(cross_entropy_host::autodiff_loss::<
                burn::backend::NdArray<f32>,
            >(
                cast(input),
                cast(weight),
                bias.map(cast),
                cast(targets),
                layout,
                rows,
            ))
        }
        #[cfg(feature = "flex")]
        Route::AutodiffFlex => {
            return cast(cross_entropy_host::autodiff_loss::<burn::backend::Flex>(
                cast(input),
                cast(weight),
                bias.map(cast),
                cast(targets),
                layout,
                rows,
            ))
        }
        _ => {}
    }
    // Any other autodiff backend over a host one (another checkpointing strategy): the host
    // arithmetic through the surrogate; the rest: tensor operations.
    let parts = Parts {
        x: input.clone().inner(),
        w: weight.clone().inner(),
        b: bias.as_ref().map(|b| b.clone().inner()),
        t: targets.inner(),
        layout,
        v,
        rows,
    };
    let host =
        host_backend::<B::InnerBackend>().filter(|_| dtypes.iter().all(|&d| d == DType::F32));
    let grads = match host {
        Some(backend) => host_gradients(parts, backend),
        None => tensor_gradients(parts),
    };
    let loss = Tensor::<B, 1>::from_inner(grads.loss);
    let mut surrogate =
        (input * Tensor::from_inner(grads.x)).sum() + (weight * Tensor::from_inner(grads.w)).sum();
    if let (Some(bias), Some(gb)) = (bias, grads.b) {
        surrogate = surrogate + (bias * Tensor::<B, 1>::from_inner(gb)).sum();
    }
    surrogate.clone() - surrogate.detach() + loss
}

/// [`Gradients`] by tensor operations, for any backend (at least one row).
fn tensor_gradients<B: Backend>(parts: Parts<B>) -> Gradients<B> {
    let Parts {
        x,
        w,
        b,
        t,
        layout,
        v,
        rows,
    } = parts;
    let [n, _] = x.dims();
    // `[C, V]` for the logits product, a view in either layout.
    let w_cv = match layout {
        WeightLayout::Columns => w.clone(),
        WeightLayout::Rows => w.clone().transpose(),
    };
    let b = b.map(|b| b.reshape([1, v]));
    let inner_device = x.device();
    let scale = 1.0 / n.max(1) as f32;

    let mut grad_x = Vec::with_capacity(n.div_ceil(rows));
    let mut grad_w: Option<Tensor<B, 2>> = None;
    let mut grad_b: Option<Tensor<B, 2>> = None;
    let mut loss_sum = Tensor::<B, 1>::zeros([1], &inner_device);
    // G = P/n − onehot/n. The P/n part is dense; the onehot part touches one class per row and
    // is applied below as row corrections (−(weights of class t)/n to ∂x, −x/n to the weights of
    // class t in ∂W — a column of `[C, V]`, a row of `[V, C]` — and −1/n to b[t]), which avoids
    // a gather and a scatter that copy the whole `[rows, V]` buffer on ndarray.
    // [n, C]: the weights of class t_i per row.
    let w_t = match layout {
        WeightLayout::Columns => w.clone().select(1, t.clone()).transpose(),
        WeightLayout::Rows => w.clone().select(0, t.clone()),
    };
    let mut picked_sum = (x.clone() * w_t.clone()).sum();
    if let Some(b) = &b {
        picked_sum = picked_sum + b.clone().reshape([v]).select(0, t.clone()).sum();
    }
    for start in (0..n).step_by(rows) {
        let len = rows.min(n - start);
        let xc = x.clone().narrow(0, start, len);
        let mut logits = xc.clone().matmul(w_cv.clone());
        if let Some(b) = &b {
            logits = logits + b.clone();
        }
        let max = logits.clone().max_dim(1);
        let exp = (logits - max.clone()).exp();
        let sum = exp.clone().sum_dim(1);
        loss_sum = loss_sum + (sum.clone().log() + max).sum();
        // G = P / n for these rows.
        let g = exp * sum.recip().mul_scalar(scale);
        grad_x.push(g.clone().matmul(w_cv.clone().transpose()));
        let gw = match layout {
            WeightLayout::Columns => xc.transpose().matmul(g.clone()),
            WeightLayout::Rows => g.clone().transpose().matmul(xc),
        };
        grad_w = Some(match grad_w {
            Some(acc) => acc + gw,
            None => gw,
        });
        if b.is_some() {
            let gb = g.sum_dim(0);
            grad_b = Some(match grad_b {
                Some(acc) => acc + gb,
                None => gb,
            });
        }
    }
    let loss = (loss_sum - picked_sum).mul_scalar(scale);
    let grad_x = Tensor::cat(grad_x, 0) - w_t.mul_scalar(scale);
    let onehot_w = Tensor::<B, 2>::zeros([v, x.dims()[1]], &inner_device).select_assign(
        0,
        t.clone(),
        x.mul_scalar(scale),
        IndexingUpdateOp::Add,
    );
    let onehot_w = match layout {
        WeightLayout::Columns => onehot_w.transpose(),
        WeightLayout::Rows => onehot_w,
    };
    let grad_w = grad_w.expect("at least one chunk") - onehot_w;
    let grad_b = grad_b.map(|gb| {
        gb.reshape([v]).select_assign(
            0,
            t.clone(),
            Tensor::full([n], -scale, &inner_device),
            IndexingUpdateOp::Add,
        )
    });
    Gradients {
        loss,
        x: grad_x,
        w: grad_w,
        b: grad_b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::cross_entropy;
    use crate::ops::host::HostBackend;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::{Distribution, TensorData};

    type B = Autodiff<NdArray<f32>>;

    fn max_abs_diff<const D: usize>(a: Tensor<NdArray<f32>, D>, b: Tensor<NdArray<f32>, D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// Value and gradients (input, weight, bias) against the op-by-op autodiff version, with an
    /// upstream scale, `chunk` logits per chunk.
    fn check(n: usize, c: usize, v: usize, upstream: f32, chunk: usize) {
        let d = Default::default();
        let x0 = Tensor::<NdArray<f32>, 2>::random([n, c], Distribution::Normal(0.0, 1.0), &d);
        let w0 = Tensor::<NdArray<f32>, 2>::random([c, v], Distribution::Normal(0.0, 1.0), &d);
        let b0 = Tensor::<NdArray<f32>, 1>::random([v], Distribution::Normal(0.0, 1.0), &d);
        let t: Vec<i64> = (0..n).map(|i| ((i * 7 + 3) % v) as i64).collect();
        let t = Tensor::<B, 1, Int>::from_data(TensorData::new(t, [n]), &d);
        let run = |fused: bool| {
            let x = Tensor::<B, 2>::from_inner(x0.clone()).require_grad();
            let w = Tensor::<B, 2>::from_inner(w0.clone()).require_grad();
            let b = Tensor::<B, 1>::from_inner(b0.clone()).require_grad();
            let loss = if fused {
                linear_cross_entropy_in_chunks(
                    x.clone(),
                    w.clone(),
                    Some(b.clone()),
                    t.clone(),
                    chunk,
                )
            } else {
                let logits = x.clone().matmul(w.clone()) + b.clone().reshape([1, v]);
                cross_entropy(logits, t.clone())
            };
            let value = loss.clone().into_scalar();
            let grads = loss.mul_scalar(upstream).backward();
            (
                value,
                x.grad(&grads).unwrap(),
                w.grad(&grads).unwrap(),
                b.grad(&grads).unwrap(),
            )
        };
        let (lf, xf, wf, bf) = run(true);
        let (lr, xr, wr, br) = run(false);
        assert!((lf - lr).abs() < 1e-4, "loss {lf} vs {lr}");
        assert!(max_abs_diff(xf, xr) < 1e-5);
        assert!(max_abs_diff(wf, wr) < 1e-5);
        assert!(max_abs_diff(bf, br) < 1e-5);
    }

    #[test]
    fn matches_autodiff_cross_entropy_in_one_chunk() {
        check(12, 5, 9, 3.0, CHUNK_ELEMENTS);
    }

    #[test]
    fn matches_autodiff_cross_entropy_across_chunks() {
        // 4 rows of 9 logits per chunk: chunks of 4, 4, 4 and 1 rows, accumulated.
        check(13, 5, 9, 0.5, 36);
        // Fewer logits than one row: one row per chunk.
        check(3, 4, 9, 1.0, 1);
    }

    /// The row layout (`[V, C]` table, no bias) against `cross_entropy(x·tableᵀ)`, in one chunk
    /// and across chunks, with repeated targets and an upstream scale.
    #[test]
    fn table_layout_matches_autodiff_cross_entropy() {
        let d = Default::default();
        let (n, c, v) = (11, 4, 7);
        let x0 = Tensor::<NdArray<f32>, 2>::random([n, c], Distribution::Normal(0.0, 1.0), &d);
        let e0 = Tensor::<NdArray<f32>, 2>::random([v, c], Distribution::Normal(0.0, 1.0), &d);
        // Targets 0, 3, 6, 2, 5, 1, 4, 0, ...: every class, some twice.
        let t: Vec<i64> = (0..n).map(|i| ((i * 3) % v) as i64).collect();
        let t = Tensor::<B, 1, Int>::from_data(TensorData::new(t, [n]), &d);
        let run = |chunk: Option<usize>| {
            let x = Tensor::<B, 2>::from_inner(x0.clone()).require_grad();
            let e = Tensor::<B, 2>::from_inner(e0.clone()).require_grad();
            let loss = match chunk {
                None => cross_entropy(x.clone().matmul(e.clone().transpose()), t.clone()),
                Some(CHUNK_ELEMENTS) => table_cross_entropy(x.clone(), e.clone(), t.clone()),
                Some(chunk) => fused_in_chunks(
                    x.clone(),
                    e.clone(),
                    WeightLayout::Rows,
                    None,
                    t.clone(),
                    chunk,
                ),
            };
            let value = loss.clone().into_scalar();
            let grads = loss.mul_scalar(2.5).backward();
            (value, x.grad(&grads).unwrap(), e.grad(&grads).unwrap())
        };
        let (lr, xr, er) = run(None);
        for chunk in [CHUNK_ELEMENTS, 3 * v, 1] {
            let (lf, xf, ef) = run(Some(chunk));
            assert!((lf - lr).abs() < 1e-4, "chunk {chunk}: loss {lf} vs {lr}");
            assert!(
                max_abs_diff(xf, xr.clone()) < 1e-5,
                "chunk {chunk}: input gradient"
            );
            assert!(
                max_abs_diff(ef, er.clone()) < 1e-5,
                "chunk {chunk}: table gradient"
            );
        }
    }

    /// The host path and the tensor path (which the CUDA backend takes) against each other on
    /// NdArray, for both layouts, with and without a bias, in one chunk and across chunks, with
    /// repeated targets and logits spread wide enough that the softmax is far from uniform.
    #[test]
    fn host_and_tensor_paths_agree() {
        type I = NdArray<f32>;
        let d = Default::default();
        let (n, c, v) = (13, 6, 37);
        let x = Tensor::<I, 2>::random([n, c], Distribution::Normal(0.0, 2.0), &d);
        // Targets 0, 3, 1, 4, 2, 0, ...: five classes, most of them twice or three times.
        let t: Vec<i64> = (0..n).map(|i| ((i * 3) % 5) as i64).collect();
        let t = Tensor::<I, 1, Int>::from_data(TensorData::new(t, [n]), &d);
        for layout in [WeightLayout::Columns, WeightLayout::Rows] {
            let w_dims = match layout {
                WeightLayout::Columns => [c, v],
                WeightLayout::Rows => [v, c],
            };
            let w = Tensor::<I, 2>::random(w_dims, Distribution::Normal(0.0, 1.0), &d);
            let biases = [
                None,
                Some(Tensor::<I, 1>::random(
                    [v],
                    Distribution::Normal(0.0, 1.0),
                    &d,
                )),
            ];
            for b in biases {
                for rows in [n, 4, 1] {
                    let parts = || Parts {
                        x: x.clone(),
                        w: w.clone(),
                        b: b.clone(),
                        t: t.clone(),
                        layout,
                        v,
                        rows,
                    };
                    let host = host_gradients(parts(), HostBackend::NdArray);
                    let tensor = tensor_gradients(parts());
                    let case = format!("{layout:?}, bias {}, {rows} rows", b.is_some());
                    let dl = max_abs_diff(host.loss, tensor.loss);
                    assert!(dl < 1e-5, "{case}: loss {dl}");
                    assert!(max_abs_diff(host.x, tensor.x) < 1e-6, "{case}: input");
                    assert!(max_abs_diff(host.w, tensor.w) < 1e-6, "{case}: weight");
                    assert_eq!(host.b.is_some(), b.is_some(), "{case}");
                    if let (Some(hb), Some(tb)) = (host.b, tensor.b) {
                        assert!(max_abs_diff(hb, tb) < 1e-6, "{case}: bias");
                    }
                }
            }
        }
    }

    /// The autodiff node with some inputs frozen, with and without a bias: the tracked ones get
    /// the op-by-op gradients (under an upstream scale), the frozen ones none; the host route
    /// ran.
    #[test]
    fn frozen_inputs_get_no_gradient() {
        let d = Default::default();
        let (n, c, v) = (7, 5, 11);
        let x0 = Tensor::<NdArray<f32>, 2>::random([n, c], Distribution::Normal(0.0, 1.0), &d);
        let w0 = Tensor::<NdArray<f32>, 2>::random([c, v], Distribution::Normal(0.0, 1.0), &d);
        let b0 = Tensor::<NdArray<f32>, 1>::random([v], Distribution::Normal(0.0, 1.0), &d);
        let t: Vec<i64> = (0..n).map(|i| ((i * 4 + 1) % v) as i64).collect();
        let t = Tensor::<B, 1, Int>::from_data(TensorData::new(t, [n]), &d);
        // (x tracked, W tracked, bias: None = no bias, Some(tracked))
        let cases = [
            (true, false, Some(true)),
            (false, true, Some(true)),
            (false, true, Some(false)),
            (false, false, Some(true)),
            (true, false, None),
            (false, true, None),
        ];
        for tracked in cases {
            let leaf = |t: Tensor<B, 2>, on: bool| if on { t.require_grad() } else { t };
            let run = |fused: bool| {
                let x = leaf(Tensor::from_inner(x0.clone()), tracked.0);
                let w = leaf(Tensor::from_inner(w0.clone()), tracked.1);
                let b = tracked.2.map(|on| {
                    let b = Tensor::<B, 1>::from_inner(b0.clone());
                    if on {
                        b.require_grad()
                    } else {
                        b
                    }
                });
                let runs = crate::ops::host::host_runs();
                let loss = if fused {
                    linear_cross_entropy(x.clone(), w.clone(), b.clone(), t.clone())
                } else {
                    let mut logits = x.clone().matmul(w.clone());
                    if let Some(b) = &b {
                        logits = logits + b.clone().reshape([1, v]);
                    }
                    cross_entropy(logits, t.clone())
                };
                assert_eq!(crate::ops::host::host_runs() - runs, usize::from(fused));
                let grads = loss.mul_scalar(1.5).backward();
                (
                    x.grad(&grads),
                    w.grad(&grads),
                    b.and_then(|b| b.grad(&grads)),
                )
            };
            let ((xf, wf, bf), (xr, wr, br)) = (run(true), run(false));
            assert_eq!(xf.is_some(), tracked.0, "{tracked:?}");
            assert_eq!(wf.is_some(), tracked.1, "{tracked:?}");
            assert_eq!(bf.is_some(), tracked.2 == Some(true), "{tracked:?}");
            for (f, r) in [(xf, xr), (wf, wr)] {
                if let (Some(f), Some(r)) = (f, r) {
                    assert!(max_abs_diff(f, r) < 1e-5, "{tracked:?}");
                }
            }
            if let (Some(f), Some(r)) = (bf, br) {
                assert!(max_abs_diff(f, r) < 1e-5, "{tracked:?}");
            }
        }
    }

    /// No rows: a zero loss and zero gradients on both layouts (the host path would otherwise
    /// see an input of zero columns).
    #[test]
    fn an_empty_batch_has_zero_loss_and_gradients() {
        let d = Default::default();
        let x = Tensor::<B, 2>::zeros([0, 4], &d).require_grad();
        let w = Tensor::<B, 2>::random([4, 9], Distribution::Normal(0.0, 1.0), &d).require_grad();
        let b = Tensor::<B, 1>::random([9], Distribution::Normal(0.0, 1.0), &d).require_grad();
        let t = Tensor::<B, 1, Int>::from_data(TensorData::new(Vec::<i64>::new(), [0]), &d);
        let loss = linear_cross_entropy(x.clone(), w.clone(), Some(b.clone()), t.clone());
        assert_eq!(loss.clone().into_scalar(), 0.0);
        let table =
            Tensor::<B, 2>::random([9, 4], Distribution::Normal(0.0, 1.0), &d).require_grad();
        let loss = loss + table_cross_entropy(x.clone(), table.clone(), t);
        assert_eq!(loss.clone().into_scalar(), 0.0);
        let grads = loss.backward();
        for grad in [w.grad(&grads), table.grad(&grads)].into_iter().flatten() {
            assert_eq!(grad.abs().max().into_scalar(), 0.0);
        }
    }
}
