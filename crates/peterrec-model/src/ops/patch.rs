//! A model patch's bottleneck `W_up·GELU(W_down·x + b_down) + b_up` on host buffers for the CPU
//! backends: one node of the autodiff graph with its own backward step.
//!
//! As Burn tensor operations a patch records two products with their bias additions and the six
//! operations of the tanh GELU (`patch::gelu_tanh`), each a pass over `[rows, C/4]` or
//! `[rows, C]` values forward and more backward; PeterRec has one or two patches per block. Here
//! `peterrec_kernels::patch` computes the forward pass (keeping the pre-activation and the
//! activation) and, in the backward step, only what a tracked parent needs (a frozen first
//! block's input gets no `∂x`).

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use peterrec_kernels::column_sums;
use peterrec_kernels::patch::{
    down_weight_gradient, forward, input_gradient, pre_activation_gradient, up_weight_gradient,
    PatchDims as Dims, PatchForward, PatchWeights,
};

use super::host::{cast, note_host_run, register, values, Route, Saved};

/// The patch's parameters, `[C, b]`, `[b]`, `[b, C]`, `[C]`.
pub(crate) struct PatchParams<B: Backend> {
    pub down_w: Tensor<B, 2>,
    pub down_b: Tensor<B, 1>,
    pub up_w: Tensor<B, 2>,
    pub up_b: Tensor<B, 1>,
}

/// The bottleneck of a model patch on the host route `route` (not [`Route::Tensor`]).
///
/// # Shapes
/// - x: `[batch, length, C]`
/// - output: `[batch, length, C]`
pub(crate) fn delta<B: Backend>(route: Route, x: Tensor<B, 3>, p: PatchParams<B>) -> Tensor<B, 3> {
    note_host_run();
    let [batch, length, c] = x.dims();
    let d = Dims {
        rows: batch * length,
        c,
        b: p.down_w.dims()[1],
    };
    let x = x.reshape([d.rows, c]);
    let y: Tensor<B, 2> = match route {
        Route::AutodiffNdArray => cast(autodiff_delta::<burn::backend::NdArray<f32>>(
            cast(x),
            cast(p),
            d,
        )),
        #[cfg(feature = "flex")]
        Route::AutodiffFlex => cast(autodiff_delta::<burn::backend::Flex>(cast(x), cast(p), d)),
        Route::Host => {
            let device = x.device();
            let prim = |t: Tensor<B, 2>| t.into_primitive().tensor();
            let prim1 = |t: Tensor<B, 1>| t.into_primitive().tensor();
            let (x, dw, db, uw, ub) = (
                prim(x),
                prim(p.down_w),
                prim1(p.down_b),
                prim(p.up_w),
                prim1(p.up_b),
            );
            let weights = PatchWeights {
                down_w: &values::<B>(&dw),
                down_b: &values::<B>(&db),
                up_w: &values::<B>(&uw),
                up_b: &values::<B>(&ub),
            };
            let y = forward(&values::<B>(&x), weights, d).y;
            Tensor::from_data(TensorData::new(y, [d.rows, c]), &device)
        }
        Route::Tensor => unreachable!("the tensor route does not come here"),
    };
    y.reshape([batch, length, c])
}

/// What the backward step keeps.
struct SavedInner<I: Backend> {
    /// The input, when `W_down` trains.
    x: Option<I::FloatTensorPrimitive>,
    /// The pre-activation and the activation.
    p: Vec<f32>,
    a: Vec<f32>,
    down_w: I::FloatTensorPrimitive,
    up_w: I::FloatTensorPrimitive,
    dims: Dims,
    device: I::Device,
}

/// The backward step of the host patch (parents: x, `W_down`, `b_down`, `W_up`, `b_up`).
#[derive(Debug)]
struct PatchBackward;

impl<I: Backend> Backward<I, 5> for PatchBackward {
    type State = Saved<SavedInner<I>>;

    fn backward(self, ops: Ops<Self::State, 5>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_dw, node_db, node_uw, node_ub] = ops.parents;
        let saved = ops.state.0;
        let Dims { rows, c, b } = saved.dims;
        let upstream = grads.consume::<I>(&ops.node);
        let g = values::<I>(&upstream);
        assert_eq!(g.len(), rows * c, "the upstream gradient is [rows, C]");
        let device = &saved.device;
        if let Some(node) = node_ub {
            register::<I>(grads, node.id, column_sums(&g, c), vec![c], device);
        }
        if let Some(node) = node_uw {
            let guw = up_weight_gradient(&saved.a, &g, saved.dims);
            register::<I>(grads, node.id, guw, vec![b, c], device);
        }
        if node_x.is_none() && node_dw.is_none() && node_db.is_none() {
            return;
        }
        // ∂p = (g·W_upᵀ) ⊙ GELU′(p).
        let uw = values::<I>(&saved.up_w);
        let gp = pre_activation_gradient(&g, &uw, &saved.p, saved.dims);
        drop(g);
        if let Some(node) = node_db {
            register::<I>(grads, node.id, column_sums(&gp, b), vec![b], device);
        }
        if let Some(node) = node_dw {
            let x = values::<I>(saved.x.as_ref().expect("x kept when W_down trains"));
            let gdw = down_weight_gradient(&x, &gp, saved.dims);
            register::<I>(grads, node.id, gdw, vec![c, b], device);
        }
        if let Some(node) = node_x {
            let dw = values::<I>(&saved.down_w);
            let gx = input_gradient(&gp, &dw, saved.dims);
            register::<I>(grads, node.id, gx, vec![rows, c], device);
        }
    }
}

/// The host patch as one node of the autodiff graph over the host backend `I`.
fn autodiff_delta<I: Backend>(
    x: Tensor<Autodiff<I>, 2>,
    p: PatchParams<Autodiff<I>>,
    d: Dims,
) -> Tensor<Autodiff<I>, 2> {
    let x = x.into_primitive().tensor();
    let dw = p.down_w.into_primitive().tensor();
    let db = p.down_b.into_primitive().tensor();
    let uw = p.up_w.into_primitive().tensor();
    let ub = p.up_b.into_primitive().tensor();
    let nodes = [
        x.node.clone(),
        dw.node.clone(),
        db.node.clone(),
        uw.node.clone(),
        ub.node.clone(),
    ];
    let dw_tracked = !dw.node.requirement.is_none();
    let device = I::float_device(&x.primitive);
    let weights = PatchWeights {
        down_w: &values::<I>(&dw.primitive),
        down_b: &values::<I>(&db.primitive),
        up_w: &values::<I>(&uw.primitive),
        up_b: &values::<I>(&ub.primitive),
    };
    let PatchForward { pre, act: a, y } = forward(&values::<I>(&x.primitive), weights, d);
    let y = I::float_from_data(TensorData::new(y, [d.rows, d.c]), &device);
    let output = match PatchBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let saved = Saved(Arc::new(SavedInner {
                x: dw_tracked.then_some(x.primitive),
                p: pre,
                a,
                down_w: dw.primitive,
                up_w: uw.primitive,
                dims: d,
                device,
            }));
            prep.finish(saved, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(output))
}
