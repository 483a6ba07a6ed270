//! The dilated convolution on host buffers for the CPU backends: the tap gather, the product
//! with the bias folded in, and a backward step that scatters the taps' gradient back without
//! an intermediate zero-filled tensor.
//!
//! As Burn tensor operations ([`crate::conv`]) a convolution is: append a zero row (a copy of
//! the input), gather the taps (`select`), multiply, add the bias (a pass), and backward a
//! zero-filled `[rows + 1, C]` gradient, a scatter-add into it and a slice off the zero row, with
//! Flex realigning each product's output (a zero-fill and a copy). At shape B that was about 4 ms
//! forward and 6 ms backward per convolution on top of its 25 ms of products, 16 convolutions a
//! step (measured on Flex, `docs/benchmarks.md`). Here:
//!
//! - forward: the taps are gathered into one `[B·O, k·C]` buffer (rows split over Rayon's
//!   threads, zeros written for positions outside the sequence), the output starts as the bias
//!   in every row and one `gemm` call adds `taps · W`;
//! - backward: `∂b` is the column sums of `∂y`, `∂W = tapsᵀ · ∂y` (one `gemm`, the taps kept
//!   from the forward pass only when `W` trains), and `∂x` is `∂y · Wᵀ` (one `gemm` into a
//!   `[B·O, k·C]` buffer) scattered back to the input rows, sequences split over the threads
//!   (a sequence's taps read only its own rows, so no two threads write one row).
//!
//! The autodiff node keeps only what its backward step needs: the taps when `W` trains, `W`
//! when the input needs a gradient (a frozen PeterRec backbone keeps no taps).

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
use crate::positions::TapPlan;

/// The shapes of one convolution call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    batch: usize,
    inputs: usize,
    outputs: usize,
    k: usize,
    c_in: usize,
    c_out: usize,
}

impl Dims {
    /// Width of a taps row, `k·C_in`.
    fn width(&self) -> usize {
        self.k * self.c_in
    }
}

/// `x` convolved by `weight` (`[k·C_in, C_out]`) and `bias` along `plan`, on the host route
/// `route` (not [`Route::Tensor`]).
///
/// # Shapes
/// - x: `[batch, plan.inputs(), C_in]`
/// - output: `[batch, plan.outputs(), C_out]`
pub(crate) fn conv<B: Backend>(
    route: Route,
    x: Tensor<B, 3>,
    weight: Tensor<B, 2>,
    bias: Tensor<B, 1>,
    plan: &TapPlan,
) -> Tensor<B, 3> {
    let [batch, inputs, c_in] = x.dims();
    let dims = Dims {
        batch,
        inputs,
        outputs: plan.outputs(),
        k: plan.kernel_size(),
        c_in,
        c_out: weight.dims()[1],
    };
    note_host_run();
    let sources: Arc<[Option<usize>]> = plan.sources().into();
    let x = x.reshape([batch * inputs, c_in]);
    let y: Tensor<B, 2> = match route {
        Route::AutodiffNdArray => cast(autodiff_conv::<burn::backend::NdArray<f32>>(
            cast(x),
            cast(weight),
            cast(bias),
            sources,
            dims,
        )),
        #[cfg(feature = "flex")]
        Route::AutodiffFlex => cast(autodiff_conv::<burn::backend::Flex>(
            cast(x),
            cast(weight),
            cast(bias),
            sources,
            dims,
        )),
        Route::Host => {
            let device = x.device();
            let (x, w, b) = (
                x.into_primitive().tensor(),
                weight.into_primitive().tensor(),
                bias.into_primitive().tensor(),
            );
            let taps = gather(&values::<B>(&x), &sources, dims);
            let y = forward(&taps, &values::<B>(&w), &values::<B>(&b), dims);
            Tensor::from_data(
                TensorData::new(y, [batch * dims.outputs, dims.c_out]),
                &device,
            )
        }
        Route::Tensor => unreachable!("the tensor route does not come here"),
    };
    y.reshape([batch, dims.outputs, dims.c_out])
}

/// The taps `[B·O, k·C_in]`: row `b·O + o`, columns `j·C_in..`, hold input row `b·I + s` for
/// source `s` of tap `j` of output `o`, or zeros.
fn gather(x: &[f32], sources: &[Option<usize>], d: Dims) -> Vec<f32> {
    let (c, width) = (d.c_in, d.width());
    let mut taps = vec![0.0f32; d.batch * d.outputs * width];
    taps.par_chunks_mut((d.outputs * width).max(1))
        .enumerate()
        .for_each(|(b, seq)| {
            let base = b * d.inputs;
            for (tap, source) in seq.chunks_mut(c).zip(sources) {
                if let Some(s) = source {
                    let at = (base + s) * c;
                    tap.copy_from_slice(&x[at..at + c]);
                }
            }
        });
    taps
}

/// `y = taps · W + b` (`[B·O, C_out]`).
fn forward(taps: &[f32], w: &[f32], b: &[f32], d: Dims) -> Vec<f32> {
    let (m, n, k) = (d.batch * d.outputs, d.c_out, d.width());
    assert_eq!(taps.len(), m * k, "taps are [B·O, k·C]");
    assert_eq!(w.len(), k * n, "the weight is [k·C, C_out]");
    assert_eq!(b.len(), n, "the bias is [C_out]");
    let mut y: Vec<f32> = Vec::with_capacity(m * n);
    for _ in 0..m {
        y.extend_from_slice(b);
    }
    if m > 0 {
        // SAFETY: `y` holds `m·n` values; the views address `[m, k]` and `[k, n]` row-major
        // matrices of `taps` and `w`, whose lengths are checked above.
        unsafe { product(&mut y, m, n, k, View::rows(taps, k), View::rows(w, n), true) };
    }
    y
}

/// What the backward step keeps.
struct SavedInner<I: Backend> {
    /// The taps, when the weight trains.
    taps: Option<Vec<f32>>,
    /// The weight, when the input needs a gradient.
    weight: Option<I::FloatTensorPrimitive>,
    sources: Arc<[Option<usize>]>,
    dims: Dims,
    device: I::Device,
}

/// The backward step of the host convolution (parents: input, weight, bias).
#[derive(Debug)]
struct ConvBackward;

impl<I: Backend> Backward<I, 3> for ConvBackward {
    type State = Saved<SavedInner<I>>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let saved = ops.state.0;
        let d = saved.dims;
        let (m, n, width) = (d.batch * d.outputs, d.c_out, d.width());
        let upstream = grads.consume::<I>(&ops.node);
        let gy = values::<I>(&upstream);
        assert_eq!(gy.len(), m * n, "the upstream gradient is [B·O, C_out]");
        let device = &saved.device;
        if let Some(node) = node_b {
            register::<I>(grads, node.id, column_sums(&gy, n), vec![n], device);
        }
        if let Some(node) = node_w {
            let taps = saved
                .taps
                .as_ref()
                .expect("taps kept when the weight trains");
            // SAFETY: `tapsᵀ` is `[width, m]` over `taps` (`m·width` values), `gy` is `[m, n]`.
            let gw = unsafe {
                new_product(
                    width,
                    n,
                    m,
                    View::transposed(taps, width),
                    View::rows(&gy, n),
                )
            };
            register::<I>(grads, node.id, gw, vec![width, n], device);
        }
        if let Some(node) = node_x {
            let w = values::<I>(
                saved
                    .weight
                    .as_ref()
                    .expect("weight kept when the input trains"),
            );
            // SAFETY: `gy` is `[m, n]`, `Wᵀ` is `[n, width]` over `w` (`width·n` values).
            let gtaps =
                unsafe { new_product(m, width, n, View::rows(&gy, n), View::transposed(&w, n)) };
            let gx = scatter(&gtaps, &saved.sources, d);
            register::<I>(grads, node.id, gx, vec![d.batch * d.inputs, d.c_in], device);
        }
    }
}

/// `∂x` from the taps' gradient: the reverse of [`gather`], summing where taps share a row.
fn scatter(gtaps: &[f32], sources: &[Option<usize>], d: Dims) -> Vec<f32> {
    let (c, width) = (d.c_in, d.width());
    let mut gx = vec![0.0f32; d.batch * d.inputs * c];
    if d.inputs == 0 || c == 0 {
        return gx;
    }
    gx.par_chunks_mut(d.inputs * c)
        .zip(gtaps.par_chunks((d.outputs * width).max(1)))
        .for_each(|(gx, seq)| {
            for (tap, source) in seq.chunks(c).zip(sources) {
                if let Some(s) = source {
                    gx[s * c..(s + 1) * c]
                        .iter_mut()
                        .zip(tap)
                        .for_each(|(g, t)| *g += t);
                }
            }
        });
    gx
}

/// The host convolution as one node of the autodiff graph over the host backend `I`.
fn autodiff_conv<I: Backend>(
    x: Tensor<Autodiff<I>, 2>,
    weight: Tensor<Autodiff<I>, 2>,
    bias: Tensor<Autodiff<I>, 1>,
    sources: Arc<[Option<usize>]>,
    dims: Dims,
) -> Tensor<Autodiff<I>, 2> {
    let (x, weight, bias) = (
        x.into_primitive().tensor(),
        weight.into_primitive().tensor(),
        bias.into_primitive().tensor(),
    );
    let nodes = [x.node.clone(), weight.node.clone(), bias.node.clone()];
    let x_tracked = !x.node.requirement.is_none();
    let w_tracked = !weight.node.requirement.is_none();
    let device = I::float_device(&x.primitive);
    let taps = gather(&values::<I>(&x.primitive), &sources, dims);
    drop(x);
    let y = forward(
        &taps,
        &values::<I>(&weight.primitive),
        &values::<I>(&bias.primitive),
        dims,
    );
    let y = I::float_from_data(
        TensorData::new(y, [dims.batch * dims.outputs, dims.c_out]),
        &device,
    );
    let output = match ConvBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let saved = Saved(Arc::new(SavedInner {
                taps: w_tracked.then_some(taps),
                weight: x_tracked.then_some(weight.primitive),
                sources,
                dims,
                device,
            }));
            prep.finish(saved, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(output))
}
