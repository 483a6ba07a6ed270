//! A model patch's bottleneck `W_up·GELU(W_down·x + b_down) + b_up` on host buffers for the CPU
//! backends: one node of the autodiff graph with its own backward step.
//!
//! As Burn tensor operations a patch records two products with their bias additions and the six
//! operations of the tanh GELU (`patch::gelu_tanh`), each a pass over `[rows, C/4]` or
//! `[rows, C]` values forward and more backward; PeterRec has one or two patches per block. Here
//! the forward pass is two `gemm` calls (each output starting as its bias) with the GELU in
//! between, keeping the pre-activation and the activation; the backward step is
//!
//! ```text
//! ∂b_up = Σ_rows g,  ∂W_up = aᵀ·g,  ∂a = g·W_upᵀ,  ∂p = ∂a ⊙ GELU′(p),
//! ∂b_down = Σ_rows ∂p,  ∂W_down = xᵀ·∂p,  ∂x = ∂p·W_downᵀ
//! ```
//!
//! computing only what a tracked parent needs (a frozen first block's input gets no `∂x`).

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use rayon::prelude::*;

use crate::fused_host::{new_product, product, View};
use crate::host::{cast, column_sums, note_host_run, register, values, Route, Saved};
use crate::softmax_rows::exp_nonpositive;

/// `2·√(2/π)` and that times 0.044715: GELU(x) = x·σ(LINEAR·x + CUBIC·x³).
const LINEAR: f32 = 2.0 * 0.797_884_6;
const CUBIC: f32 = LINEAR * 0.044715;

/// Values per Rayon task in the element-wise passes.
const TASK: usize = 1 << 14;

/// The logistic function without a libm call (the `exp` of [`exp_nonpositive`] on `−|z|`).
#[inline(always)]
fn sigmoid(z: f32) -> f32 {
    let e = exp_nonpositive(-z.abs());
    let s = 1.0 / (1.0 + e);
    if z >= 0.0 {
        s
    } else {
        e * s
    }
}

/// The tanh GELU and its derivative at `p`.
#[inline(always)]
fn gelu_and_slope(p: f32) -> (f32, f32) {
    let s = sigmoid(p * (LINEAR + CUBIC * p * p));
    (
        p * s,
        s + p * s * (1.0 - s) * (LINEAR + 3.0 * CUBIC * p * p),
    )
}

/// The shapes of one patch call: `rows` rows of `c` channels, bottleneck `b`.
#[derive(Debug, Clone, Copy)]
struct Dims {
    rows: usize,
    c: usize,
    b: usize,
}

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
            let (_, _, y) = forward(
                &values::<B>(&x),
                [
                    &values::<B>(&dw),
                    &values::<B>(&db),
                    &values::<B>(&uw),
                    &values::<B>(&ub),
                ],
                d,
            );
            Tensor::from_data(TensorData::new(y, [d.rows, c]), &device)
        }
        Route::Tensor => unreachable!("the tensor route does not come here"),
    };
    y.reshape([batch, length, c])
}

/// `(p, a, y)`: the pre-activation `x·W_down + b_down`, `a = GELU(p)` and `y = a·W_up + b_up`.
fn forward(x: &[f32], [dw, db, uw, ub]: [&[f32]; 4], d: Dims) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let Dims { rows, c, b } = d;
    assert_eq!(x.len(), rows * c, "x is [rows, C]");
    assert!(
        dw.len() == c * b && db.len() == b,
        "the down projection is [C, b] and [b]"
    );
    assert!(
        uw.len() == b * c && ub.len() == c,
        "the up projection is [b, C] and [C]"
    );
    let mut p = rows_of(db, rows);
    let mut y = rows_of(ub, rows);
    if rows > 0 && b > 0 && c > 0 {
        // SAFETY: `p` is `[rows, b]`, `x` is `[rows, C]`, `dw` is `[C, b]` (lengths checked).
        unsafe {
            product(
                &mut p,
                rows,
                b,
                c,
                View::rows(x, c),
                View::rows(dw, b),
                true,
            )
        };
    }
    let mut a = vec![0.0f32; p.len()];
    a.par_chunks_mut(TASK)
        .zip(p.par_chunks(TASK))
        .for_each(|(a, p)| {
            for (a, &p) in a.iter_mut().zip(p) {
                *a = gelu_and_slope(p).0;
            }
        });
    if rows > 0 && b > 0 && c > 0 {
        // SAFETY: `y` is `[rows, C]`, `a` is `[rows, b]`, `uw` is `[b, C]`.
        unsafe {
            product(
                &mut y,
                rows,
                c,
                b,
                View::rows(&a, b),
                View::rows(uw, c),
                true,
            )
        };
    }
    (p, a, y)
}

/// `rows` copies of `row`, one after the other.
fn rows_of(row: &[f32], rows: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * row.len());
    for _ in 0..rows {
        out.extend_from_slice(row);
    }
    out
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
            // SAFETY: `aᵀ` is `[b, rows]` over `a` (`[rows, b]`); `g` is `[rows, C]`.
            let guw = unsafe {
                new_product(b, c, rows, View::transposed(&saved.a, b), View::rows(&g, c))
            };
            register::<I>(grads, node.id, guw, vec![b, c], device);
        }
        if node_x.is_none() && node_dw.is_none() && node_db.is_none() {
            return;
        }
        // ∂p = (g·W_upᵀ) ⊙ GELU′(p).
        let uw = values::<I>(&saved.up_w);
        // SAFETY: `g` is `[rows, C]`; `W_upᵀ` is `[C, b]` over `uw` (`[b, C]`).
        let mut gp =
            unsafe { new_product(rows, b, c, View::rows(&g, c), View::transposed(&uw, c)) };
        drop(g);
        gp.par_chunks_mut(TASK)
            .zip(saved.p.par_chunks(TASK))
            .for_each(|(gp, p)| {
                for (gp, &p) in gp.iter_mut().zip(p) {
                    *gp *= gelu_and_slope(p).1;
                }
            });
        if let Some(node) = node_db {
            register::<I>(grads, node.id, column_sums(&gp, b), vec![b], device);
        }
        if let Some(node) = node_dw {
            let x = values::<I>(saved.x.as_ref().expect("x kept when W_down trains"));
            // SAFETY: `xᵀ` is `[C, rows]` over `x` (`[rows, C]`); `gp` is `[rows, b]`.
            let gdw =
                unsafe { new_product(c, b, rows, View::transposed(&x, c), View::rows(&gp, b)) };
            register::<I>(grads, node.id, gdw, vec![c, b], device);
        }
        if let Some(node) = node_x {
            let dw = values::<I>(&saved.down_w);
            // SAFETY: `gp` is `[rows, b]`; `W_downᵀ` is `[b, C]` over `dw` (`[C, b]`).
            let gx =
                unsafe { new_product(rows, c, b, View::rows(&gp, b), View::transposed(&dw, b)) };
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
    let (pre, a, y) = forward(
        &values::<I>(&x.primitive),
        [
            &values::<I>(&dw.primitive),
            &values::<I>(&db.primitive),
            &values::<I>(&uw.primitive),
            &values::<I>(&ub.primitive),
        ],
        d,
    );
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
