//! The fused cross-entropy on host buffers for the CPU backends: one node of the autodiff
//! graph over NdArray or Flex ([`autodiff_loss`]), and the gradients the surrogate of other
//! autodiff backends over them takes ([`host_gradients`]).
//!
//! On NdArray and Flex every `[rows, V]` intermediate of the tensor route is a fresh tensor,
//! allocated, page-faulted in, and on Flex zeroed and then copied once more to realign it. Here
//! `x` and `W` are read in place and `peterrec_kernels::cross_entropy` computes the loss and the
//! tracked inputs' gradients in one reused buffer of logits; the backward step hands them over
//! without a copy.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData, TensorPrimitive};
use peterrec_kernels::cross_entropy::{
    gradients, Gradients as HostGradients, Inputs as HostInputs, WeightLayout as Layout,
};

use super::host::{host_values, note_host_run, register, values, HostBackend, Saved};

/// The inputs of the fused loss on the inner backend.
pub(super) struct Parts<B: Backend> {
    /// `[n, C]`.
    pub(super) x: Tensor<B, 2>,
    /// `[C, V]` or `[V, C]`, see `layout`.
    pub(super) w: Tensor<B, 2>,
    /// `[V]`.
    pub(super) b: Option<Tensor<B, 1>>,
    /// `[n]`.
    pub(super) t: Tensor<B, 1, Int>,
    pub(super) layout: Layout,
    pub(super) v: usize,
    /// Rows per chunk.
    pub(super) rows: usize,
}

/// The mean loss (`[1]`) and its gradients with respect to `x`, `w` (in `w`'s layout) and `b`.
pub(super) struct TensorGradients<B: Backend> {
    pub(super) loss: Tensor<B, 1>,
    pub(super) x: Tensor<B, 2>,
    pub(super) w: Tensor<B, 2>,
    pub(super) b: Option<Tensor<B, 1>>,
}

/// The loss and gradients of the fused cross-entropy computed on host buffers, for `B` the CPU
/// backend `backend` (at least one row), as tensors for the surrogate route.
pub(super) fn host_gradients<B: Backend>(
    parts: Parts<B>,
    backend: HostBackend,
) -> TensorGradients<B> {
    let Parts {
        x,
        w,
        b,
        t,
        layout,
        v,
        rows,
    } = parts;
    let device = x.device();
    let [n, c] = x.dims();
    let w_dims = w.dims();
    let b = b.map(|b| host_values(b, backend));
    let targets = target_indices(t);
    let (x_host, w_host) = (host_values(x, backend), host_values(w, backend));
    let grads = gradients(HostInputs {
        x: &x_host,
        w: &w_host,
        layout,
        b: b.as_deref(),
        targets: &targets,
        v,
        rows,
        want_x: true,
        want_w: true,
        want_b: true,
    });
    TensorGradients {
        loss: Tensor::from_data(TensorData::new(vec![grads.loss], [1]), &device),
        x: Tensor::from_data(TensorData::new(grads.x, [n, c]), &device),
        w: Tensor::from_data(TensorData::new(grads.w, w_dims), &device),
        b: grads
            .b
            .map(|gb| Tensor::from_data(TensorData::new(gb, [v]), &device)),
    }
}

/// A targets tensor's values as indices.
///
/// # Panics
/// If a target is negative (the callers check the range `0..V` against the weight).
fn target_indices<B: Backend>(targets: Tensor<B, 1, Int>) -> Vec<usize> {
    targets
        .into_data()
        .convert::<i64>()
        .into_vec::<i64>()
        .expect("integer targets")
        .into_iter()
        .map(|t| usize::try_from(t).expect("targets lie in 0..V"))
        .collect()
}

/// What the backward step of [`autodiff_loss`] keeps: the gradients, already computed.
struct SavedInner<I: Backend> {
    grads: HostGradients,
    x_dims: [usize; 2],
    w_dims: [usize; 2],
    device: I::Device,
}

/// The backward step of the host fused cross-entropy (parents: `x`, `W` and, with a bias, `b`):
/// the saved gradients scaled by the upstream one.
#[derive(Debug)]
struct FusedBackward;

impl FusedBackward {
    fn step<I: Backend, const N: usize>(ops: Ops<Saved<SavedInner<I>>, N>, grads: &mut Gradients) {
        // Parents: x, W and, when N is 3, b.
        let ids: Vec<Option<NodeId>> = ops
            .parents
            .iter()
            .map(|p| p.as_ref().map(|n| n.id))
            .collect();
        let upstream = grads.consume::<I>(&ops.node);
        let u = values::<I>(&upstream)[0];
        // The node is consumed once, so the gradients are moved out, not copied.
        let saved = Arc::try_unwrap(ops.state.0).unwrap_or_else(|shared| SavedInner {
            grads: shared.grads.clone(),
            x_dims: shared.x_dims,
            w_dims: shared.w_dims,
            device: shared.device.clone(),
        });
        let scaled = |mut g: Vec<f32>| {
            peterrec_kernels::scale(&mut g, u);
            g
        };
        let device = &saved.device;
        let HostGradients { x, w, b, .. } = saved.grads;
        if let Some(id) = ids[0] {
            register::<I>(grads, id, scaled(x), saved.x_dims.to_vec(), device);
        }
        if let Some(id) = ids[1] {
            register::<I>(grads, id, scaled(w), saved.w_dims.to_vec(), device);
        }
        if let (Some(id), Some(b)) = (ids.get(2).copied().flatten(), b) {
            let v = b.len();
            register::<I>(grads, id, scaled(b), vec![v], device);
        }
    }
}

impl<I: Backend> Backward<I, 2> for FusedBackward {
    type State = Saved<SavedInner<I>>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        Self::step(ops, grads);
    }
}

impl<I: Backend> Backward<I, 3> for FusedBackward {
    type State = Saved<SavedInner<I>>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        Self::step(ops, grads);
    }
}

/// The fused cross-entropy as one node of the autodiff graph over the host backend `I`: the
/// loss and the gradients of the tracked inputs are computed here, on buffers read in place, and
/// the backward step hands them over (scaled by the upstream gradient).
///
/// # Shapes
/// - x: `[n, C]` (at least one row)
/// - w: `[C, V]` or `[V, C]`, see `layout`
/// - b: `[V]`
/// - targets: `[n]`, each in `0..V`
/// - output: `[1]`
pub(super) fn autodiff_loss<I: Backend>(
    x: Tensor<Autodiff<I>, 2>,
    w: Tensor<Autodiff<I>, 2>,
    b: Option<Tensor<Autodiff<I>, 1>>,
    targets: Tensor<Autodiff<I>, 1, Int>,
    layout: Layout,
    rows: usize,
) -> Tensor<Autodiff<I>, 1> {
    note_host_run();
    let (x_dims, w_dims) = (x.dims(), w.dims());
    let v = match layout {
        Layout::Columns => w_dims[1],
        Layout::Rows => w_dims[0],
    };
    let targets = target_indices(targets);
    let (x, w) = (x.into_primitive().tensor(), w.into_primitive().tensor());
    let b = b.map(|b| b.into_primitive().tensor());
    let want_x = !x.node.requirement.is_none();
    let want_w = !w.node.requirement.is_none();
    let want_b = b.as_ref().is_some_and(|b| !b.node.requirement.is_none());
    let device = I::float_device(&x.primitive);
    let grads = {
        let b_values = b.as_ref().map(|b| values::<I>(&b.primitive));
        gradients(HostInputs {
            x: &values::<I>(&x.primitive),
            w: &values::<I>(&w.primitive),
            layout,
            b: b_values.as_deref(),
            targets: &targets,
            v,
            rows,
            want_x,
            want_w,
            want_b,
        })
    };
    let loss = I::float_from_data(TensorData::new(vec![grads.loss], [1]), &device);
    // Dropped unused when nothing upstream trains.
    let saved = Saved(Arc::new(SavedInner {
        grads,
        x_dims,
        w_dims,
        device,
    }));
    let output = match b {
        Some(b) => match FusedBackward
            .prepare::<NoCheckpointing>([x.node.clone(), w.node.clone(), b.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(saved, loss),
            OpsKind::UnTracked(prep) => prep.finish(loss),
        },
        None => match FusedBackward
            .prepare::<NoCheckpointing>([x.node.clone(), w.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(saved, loss),
            OpsKind::UnTracked(prep) => prep.finish(loss),
        },
    };
    Tensor::from_primitive(TensorPrimitive::Float(output))
}
