//! The dilated convolution on host buffers for the CPU backends: the tap gather, the product
//! with the bias folded in, and a backward step that scatters the taps' gradient back without
//! an intermediate zero-filled tensor (`peterrec_kernels::conv`).
//!
//! As Burn tensor operations ([`crate::conv`]) a convolution is: append a zero row (a copy of
//! the input), gather the taps (`select`), multiply, add the bias (a pass), and backward a
//! zero-filled `[rows + 1, C]` gradient, a scatter-add into it and a slice off the zero row, with
//! Flex realigning each product's output (a zero-fill and a copy).
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
use peterrec_kernels::column_sums;
use peterrec_kernels::conv::{forward, gather, input_gradient, weight_gradient, ConvDims as Dims};

use super::host::{cast, note_host_run, register, values, Route, Saved};
use crate::positions::TapPlan;

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
            let gw = weight_gradient(taps, &gy, d);
            register::<I>(grads, node.id, gw, vec![width, n], device);
        }
        if let Some(node) = node_x {
            let w = values::<I>(
                saved
                    .weight
                    .as_ref()
                    .expect("weight kept when the input trains"),
            );
            let gx = input_gradient(&gy, &w, &saved.sources, d);
            register::<I>(grads, node.id, gx, vec![d.batch * d.inputs, d.c_in], device);
        }
    }
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
