//! `relu(LayerNorm(x))`, fused into one pass forward and one backward on the CPU backends.
//!
//! Every residual block normalises each convolution's output and rectifies it. Burn 0.21's
//! `LayerNorm` under autodiff decomposes into ten recorded operations (mean, subtract, square,
//! mean, add, square root, divide, scale, shift, then the ReLU), each a pass over the
//! activations forward and one or more backward.
//!
//! [`layer_norm_relu`] computes the same function on host buffers for NdArray and Flex (with
//! `f32` tensors, recognised by their types) as a single operation of the autodiff graph with
//! its own backward step ([`burn::backend::autodiff::ops::Backward`]): the forward pass keeps
//! the input and each row's mean and `1/σ`; the backward pass recomputes `x̂` from them
//! (`peterrec_kernels::norm` has the row passes and the formulas).
//!
//! Other backends (CUDA, `f64`) run Burn's `LayerNorm` and `relu`, the same function.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, NdArray};
use burn::nn::LayerNorm;
use burn::tensor::backend::Backend;
use burn::tensor::{activation::relu, Tensor, TensorData, TensorPrimitive};
use peterrec_kernels::norm::{backward_rows, forward_rows};

use super::host::{cast, note_host_run, register, route_for, values, Route, Saved};

/// `relu(ln.forward(x))`, with `epsilon` the LayerNorm's epsilon (Burn 0.21 keeps it private,
/// so the caller passes the value it built `ln` with).
///
/// # Shapes
/// - input: `[..., channels]`
/// - output: `[..., channels]`
pub fn layer_norm_relu<B: Backend, const D: usize>(
    ln: &LayerNorm<B>,
    epsilon: f64,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    let Some(beta) = ln.beta.as_ref() else {
        return relu(ln.forward(x));
    };
    let dims = x.dims();
    let c = dims[D - 1];
    let (gamma, beta) = (ln.gamma.val(), beta.val());
    // Empty inputs and a LayerNorm of another width (Burn's error) take the tensor route.
    if x.shape().num_elements() == 0 || gamma.dims() != [c] || beta.dims() != [c] {
        return relu(ln.forward(x));
    }
    let n = x.shape().num_elements() / c;
    let eps = epsilon as f32;
    let route = route_for::<B>(&[x.dtype(), gamma.dtype(), beta.dtype()]);
    if !matches!(route, Route::Tensor) {
        note_host_run();
    }
    let y: Tensor<B, 2> = match route {
        Route::AutodiffNdArray => cast(autodiff_op::<NdArray<f32>>(
            cast(x.reshape([n, c])),
            cast(gamma),
            cast(beta),
            eps,
        )),
        #[cfg(feature = "flex")]
        Route::AutodiffFlex => cast(autodiff_op::<burn::backend::Flex>(
            cast(x.reshape([n, c])),
            cast(gamma),
            cast(beta),
            eps,
        )),
        Route::Host => host_forward(x.reshape([n, c]), gamma, beta, eps),
        Route::Tensor => return relu(ln.forward(x)),
    };
    y.reshape(dims)
}

/// The forward pass without autodiff (inference on NdArray or Flex).
fn host_forward<B: Backend>(
    x: Tensor<B, 2>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    eps: f32,
) -> Tensor<B, 2> {
    let device = x.device();
    let [n, c] = x.dims();
    let (x, gamma, beta) = (
        x.into_primitive().tensor(),
        gamma.into_primitive().tensor(),
        beta.into_primitive().tensor(),
    );
    let mut y = vec![0.0f32; n * c];
    let mut stats = vec![[0.0f32; 2]; n];
    forward_rows(
        &values::<B>(&x),
        &mut stats,
        &values::<B>(&gamma),
        &values::<B>(&beta),
        eps,
        &mut y,
    );
    Tensor::from_data(TensorData::new(y, [n, c]), &device)
}

/// What the backward step keeps: the input (`x̂` is recomputed from it), each row's statistics,
/// and the parameters.
struct SavedInner<I: Backend> {
    /// `[n, C]`, the input as it came in.
    x: I::FloatTensorPrimitive,
    /// `[n]`: each row's mean and `1/σ`.
    stats: Vec<[f32; 2]>,
    /// `[C]`: `γ` and `β`.
    gamma: Vec<f32>,
    beta: Vec<f32>,
    device: I::Device,
}

/// The backward step of [`layer_norm_relu`] (parents: input, `γ`, `β`).
#[derive(Debug)]
struct LayerNormReluBackward;

impl<I: Backend> Backward<I, 3> for LayerNormReluBackward {
    type State = Saved<SavedInner<I>>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let saved = ops.state.0;
        let upstream = grads.consume::<I>(&ops.node);
        let c = saved.gamma.len();
        let mut gx = vec![0.0f32; saved.stats.len() * c];
        let (dgamma, dbeta) = backward_rows(
            &values::<I>(&upstream),
            &values::<I>(&saved.x),
            &saved.stats,
            &saved.gamma,
            &saved.beta,
            &mut gx,
        );
        drop(upstream);
        let device = &saved.device;
        if let Some(node) = node_x {
            let n = gx.len() / c;
            register::<I>(grads, node.id, gx, vec![n, c], device);
        }
        if let Some(node) = node_gamma {
            register::<I>(grads, node.id, dgamma, vec![c], device);
        }
        if let Some(node) = node_beta {
            register::<I>(grads, node.id, dbeta, vec![c], device);
        }
    }
}

/// [`layer_norm_relu`] as one node of the autodiff graph over the host backend `I`.
fn autodiff_op<I: Backend>(
    x: Tensor<Autodiff<I>, 2>,
    gamma: Tensor<Autodiff<I>, 1>,
    beta: Tensor<Autodiff<I>, 1>,
    eps: f32,
) -> Tensor<Autodiff<I>, 2> {
    let [n, c] = x.dims();
    let x = x.into_primitive().tensor();
    let gamma = gamma.into_primitive().tensor();
    let beta = beta.into_primitive().tensor();
    let nodes = [x.node.clone(), gamma.node.clone(), beta.node.clone()];
    let device = I::float_device(&x.primitive);
    let gamma = values::<I>(&gamma.primitive).into_owned();
    let beta = values::<I>(&beta.primitive).into_owned();
    let mut y = vec![0.0f32; n * c];
    let mut stats = vec![[0.0f32; 2]; n];
    forward_rows(
        &values::<I>(&x.primitive),
        &mut stats,
        &gamma,
        &beta,
        eps,
        &mut y,
    );
    let y = I::float_from_data(TensorData::new(y, [n, c]), &device);
    let output = match LayerNormReluBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let saved = Saved(Arc::new(SavedInner {
                x: x.primitive,
                stats,
                gamma,
                beta,
                device,
            }));
            prep.finish(saved, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(output))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::AutodiffModule;
    use burn::module::Module;
    use burn::nn::LayerNormConfig;

    type B = Autodiff<NdArray<f32>>;
    const EPS: f64 = 1e-8;

    /// Normal samples from a fixed stream (`seed`): the ReLU makes the gradients discontinuous,
    /// so an unseeded value landing on its edge could make a run fail once in a while.
    fn normal<B2: Backend, const D: usize>(
        dims: [usize; D],
        mean: f64,
        std: f64,
        seed: u64,
    ) -> Tensor<B2, D> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n: usize = dims.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| {
                // Box–Muller.
                let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (mean + std * z) as f32
            })
            .collect();
        Tensor::from_data(TensorData::new(values, dims), &Default::default())
    }

    fn max_abs_diff<const D: usize>(a: Tensor<NdArray<f32>, D>, b: Tensor<NdArray<f32>, D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// A LayerNorm with random `γ` around 1 and `β` around 0 (so the ReLU cuts some values).
    fn layer_norm(c: usize, trainable: bool) -> LayerNorm<B> {
        let d = Default::default();
        let mut ln = LayerNormConfig::new(c).with_epsilon(EPS).init::<B>(&d);
        ln.gamma = ln
            .gamma
            .map(|_| normal::<B, 1>([c], 1.0, 0.5, 1).require_grad());
        ln.beta = ln
            .beta
            .map(|b| b.map(|_| normal::<B, 1>([c], 0.0, 0.5, 2).require_grad()));
        if trainable {
            ln
        } else {
            ln.no_grad()
        }
    }

    /// Value and gradients of `Σ w ⊙ f(x)` for the fused op and for `relu(ln(x))`; returns the
    /// largest differences (value, ∂x, ∂γ, ∂β; the last two `None` when frozen).
    fn compare(dims: [usize; 3], trainable: bool) -> (f32, f32, Option<(f32, f32)>) {
        let ln = layer_norm(dims[2], trainable);
        let x0 = normal::<NdArray<f32>, 3>(dims, 0.3, 2.0, 3);
        let w = normal::<NdArray<f32>, 3>(dims, 0.0, 1.0, 4);
        let run = |fused: bool| {
            let x = Tensor::<B, 3>::from_inner(x0.clone()).require_grad();
            let before = crate::ops::host::host_runs();
            let y = if fused {
                layer_norm_relu(&ln, EPS, x.clone())
            } else {
                relu(ln.forward(x.clone()))
            };
            assert_eq!(
                crate::ops::host::host_runs() > before,
                fused,
                "the host route ran"
            );
            let grads = (y.clone() * Tensor::<B, 3>::from_inner(w.clone()))
                .sum()
                .backward();
            let gx = x.grad(&grads).expect("x is tracked");
            let gp = ln.gamma.val().grad(&grads).map(|gg| {
                let gb = ln.beta.as_ref().unwrap().val().grad(&grads).unwrap();
                (gg, gb)
            });
            (y.inner(), gx, gp)
        };
        let (y1, gx1, gp1) = run(true);
        let (y2, gx2, gp2) = run(false);
        let params = match (gp1, gp2) {
            (Some((g1, b1)), Some((g2, b2))) => Some((max_abs_diff(g1, g2), max_abs_diff(b1, b2))),
            (None, None) => None,
            _ => panic!("the two paths disagree on which parameters have gradients"),
        };
        (max_abs_diff(y1, y2), max_abs_diff(gx1, gx2), params)
    }

    #[test]
    fn matches_layer_norm_then_relu_in_value_and_gradients() {
        // 37 channels: the eight-lane sums and their remainder; 140 rows: three Rayon tasks.
        for dims in [[3, 5, 37], [2, 70, 16], [1, 1, 8]] {
            let (y, gx, params) = compare(dims, true);
            let (gg, gb) = params.expect("trainable parameters have gradients");
            assert!(y < 1e-5, "{dims:?}: values differ by {y}");
            assert!(gx < 1e-4, "{dims:?}: input gradients differ by {gx}");
            assert!(
                gg < 1e-4 && gb < 1e-4,
                "{dims:?}: γ/β gradients differ by {gg}/{gb}"
            );
        }
    }

    #[test]
    fn frozen_parameters_get_no_gradient() {
        let (y, gx, params) = compare([2, 6, 12], false);
        assert!(params.is_none());
        assert!(y < 1e-5 && gx < 1e-4, "value {y}, input gradient {gx}");
    }

    #[test]
    fn some_values_are_cut_and_the_cut_ones_pass_no_gradient() {
        let ln = layer_norm(16, true);
        let x = normal::<B, 2>([40, 16], 0.0, 1.0, 5).require_grad();
        let y = layer_norm_relu(&ln, EPS, x.clone());
        let grads = y.clone().sum().backward();
        let zero: Vec<f32> = y
            .inner()
            .equal_elem(0.0)
            .float()
            .into_data()
            .to_vec()
            .unwrap();
        let cut = zero.iter().filter(|&&z| z == 1.0).count();
        assert!(
            cut > 40 && cut < 600,
            "{cut} of 640 values cut: the test needs both kinds"
        );
        // The β gradient counts the values that passed the ReLU, per channel.
        let gb: Vec<f32> = ln
            .beta
            .as_ref()
            .unwrap()
            .val()
            .grad(&grads)
            .unwrap()
            .to_data()
            .to_vec()
            .unwrap();
        let passed: f32 = zero.iter().map(|z| 1.0 - z).sum();
        assert_eq!(gb.iter().sum::<f32>(), passed);
    }

    #[test]
    fn inference_matches_without_autodiff() {
        type I = NdArray<f32>;
        let ln = layer_norm(24, true).valid();
        let x = normal::<I, 3>([2, 9, 24], 0.0, 3.0, 6);
        let before = crate::ops::host::host_runs();
        let fused = layer_norm_relu(&ln, EPS, x.clone());
        assert!(crate::ops::host::host_runs() > before);
        assert!(matches!(crate::ops::host::route::<I>(), Route::Host));
        assert!(max_abs_diff(fused, relu(ln.forward(x))) < 1e-5);
    }
}
