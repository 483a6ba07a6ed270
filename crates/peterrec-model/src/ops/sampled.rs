//! The sampled-softmax cross-entropy of the pretraining head on host buffers, for the CPU
//! backends: one node of the autodiff graph in place of about twenty tensor operations.
//!
//! [`crate::loss::sampled_softmax_loss`] over Burn tensors gathers the negatives' and the true
//! items' columns of the `[C, V]` head (`select`), multiplies, adds the bias and the `−log Q`
//! correction, masks accidental hits, concatenates, takes a log-softmax and picks column 0; its
//! backward pass walks all of that again and scatters into two zero-filled `[C, V]` gradients.
//! Here `peterrec_kernels::sampled` computes the loss and the candidates' gradients from the
//! buffers read in place, and the backward step scales them by the upstream gradient and
//! scatters them into one dense `[C, V]` and one `[V]` gradient.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use peterrec_kernels::sampled::{bias_gradient, gradients, weight_gradient, Gradients as Parts};

pub(crate) use peterrec_kernels::sampled::Candidates;

use super::host::{cast, note_host_run, register, values, Route, Saved};

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
            let parts = gradients(
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
            let gw = weight_gradient(p, &saved.targets, &saved.negatives, c, v, u);
            register::<I>(grads, node.id, gw, vec![c, v], device);
        }
        if let Some(node) = node_b {
            let gb = bias_gradient(p, &saved.targets, &saved.negatives, v, u);
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
    let parts = gradients(
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
}
