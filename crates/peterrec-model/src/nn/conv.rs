//! The dilated 1-D convolution of NextItNet, in matrix-multiplication form.
//!
//! # Formulation
//! Burn's `Conv1d` works on `[batch, channels, length]` and forces a layout swap around every
//! LayerNorm and Linear. This module keeps activations as `[batch, length, channels]`: one row
//! `select` gathers, for every position `t`, the `k` inputs at `t + j·d − left` (`left = (k−1)·d`
//! when causal, half of it when centred; an appended zero row stands for positions outside the
//! sequence) into `[B, L, k·C]`, and one `Linear(k·C → C_out)` with bias runs as a single
//! `[B·L, k·C]` matrix product ([`linear_rows`]). It is the same operator as a dilated
//! convolution (weight `W_lin[j·C + i, o] = W_conv[o, i, j]`), without the layout swaps, with
//! one gather instead of a zero-filled buffer per tap (pad + `narrow` + `cat`), and with one large
//! product for the whole batch instead of one small product per sequence. `benches/conv.rs`
//! compares it with `Conv1d`; the figures are in `docs/benchmarks.md`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{backend::Backend, Tensor};

use crate::init::{tn_param, zeros_param, DEFAULT_INIT_STD};
use crate::ops;
use crate::ops::host::{route_for, Route};
use crate::positions::{index_tensor, ConvGeometry, TapPlan};

/// Configuration of a [`DilatedConv1d`].
#[derive(Config, Debug)]
pub struct DilatedConv1dConfig {
    /// Input channels.
    pub channels_in: usize,
    /// Output channels.
    pub channels_out: usize,
    /// Kernel width `k`.
    #[config(default = 3)]
    pub kernel_size: usize,
    /// Dilation `d`.
    #[config(default = 1)]
    pub dilation: usize,
    /// Causal (left padding only: output `t` sees inputs `≤ t`) or centred (symmetric padding).
    #[config(default = true)]
    pub causal: bool,
    /// Standard deviation of the truncated-normal weight init.
    #[config(default = 0.02)]
    pub init_std: f64,
    /// Seed of the weight init.
    #[config(default = 0)]
    pub seed: u64,
}

impl DilatedConv1dConfig {
    /// Builds the layer; `name` makes the init stream unique within a model.
    pub fn init_named<B: Backend>(&self, name: &str, device: &B::Device) -> DilatedConv1d<B> {
        let d_in = self.kernel_size * self.channels_in;
        let std = if self.init_std > 0.0 {
            self.init_std
        } else {
            DEFAULT_INIT_STD
        };
        let linear = Linear {
            weight: tn_param([d_in, self.channels_out], std, self.seed, name, device),
            bias: Some(zeros_param([self.channels_out], device)),
        };
        DilatedConv1d {
            linear,
            kernel_size: self.kernel_size,
            dilation: self.dilation,
            causal: self.causal,
        }
    }

    /// Builds the layer.
    pub fn init<B: Backend>(&self, device: &B::Device) -> DilatedConv1d<B> {
        self.init_named("conv", device)
    }
}

/// A dilated 1-D convolution over `[batch, length, channels]`, causal or centred.
#[derive(Module, Debug)]
pub struct DilatedConv1d<B: Backend> {
    /// The `k·C_in → C_out` projection (weight `[k·C_in, C_out]`, row `j·C_in + i` is tap `j`,
    /// input channel `i`; tap `k−1` is the current position in causal mode).
    pub linear: Linear<B>,
    /// Kernel width `k`.
    pub kernel_size: usize,
    /// Dilation `d`.
    pub dilation: usize,
    /// Causal (left padding) or centred.
    pub causal: bool,
}

impl<B: Backend> DilatedConv1d<B> {
    /// Total padding `(k−1)·d` added on the length axis.
    pub fn padding(&self) -> usize {
        (self.kernel_size - 1) * self.dilation
    }

    /// Padding on the left: output `t` reads input `t + j·d − left` (all of the padding when
    /// causal, half of it rounded down when centred).
    pub fn left_padding(&self) -> usize {
        let total = self.padding();
        if self.causal {
            total
        } else {
            total / 2
        }
    }

    /// Where this convolution reads its taps.
    pub fn geometry(&self) -> ConvGeometry {
        ConvGeometry {
            kernel_size: self.kernel_size,
            dilation: self.dilation,
            left: self.left_padding(),
        }
    }

    /// Applies the convolution.
    ///
    /// # Shapes
    /// - input: `[batch, length, channels_in]`
    /// - output: `[batch, length, channels_out]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let length = x.dims()[1];
        let all: Vec<usize> = (0..length).collect();
        self.forward_planned(x, &TapPlan::new(&all, &all, length, self.geometry()))
    }

    /// Applies the convolution to a compact input (the rows of chosen positions), computing
    /// the outputs of the plan's positions only ([`crate::positions`]).
    ///
    /// # Shapes
    /// - input: `[batch, plan.inputs(), channels_in]`
    /// - output: `[batch, plan.outputs(), channels_out]`
    ///
    /// # Panics
    /// If the input does not have `plan.inputs()` rows per sequence.
    pub fn forward_planned(&self, x: Tensor<B, 3>, plan: &TapPlan) -> Tensor<B, 3> {
        if plan.is_identity() {
            return linear_rows(&self.linear, x);
        }
        assert_eq!(
            x.dims()[1],
            plan.inputs(),
            "the tap plan was built for another input"
        );
        let Some(bias) = &self.linear.bias else {
            return self.forward_planned_tensor(x, plan);
        };
        let (weight, bias) = (self.linear.weight.val(), bias.val());
        match route_for::<B>(&[x.dtype(), weight.dtype(), bias.dtype()]) {
            Route::Tensor => self.forward_planned_tensor(x, plan),
            route => ops::conv::conv(route, x, weight, bias, plan),
        }
    }

    /// [`Self::forward_planned`] by Burn tensor operations (the route of backends other than
    /// the CPU ones, and the reference the host route is tested against).
    ///
    /// # Shapes
    /// - input: `[batch, plan.inputs(), channels_in]`
    /// - output: `[batch, plan.outputs(), channels_out]`
    pub(crate) fn forward_planned_tensor(&self, x: Tensor<B, 3>, plan: &TapPlan) -> Tensor<B, 3> {
        let [batch, inputs, channels] = x.dims();
        let (outputs, k) = (plan.outputs(), plan.kernel_size());
        let device = x.device();
        // One gather builds the `[B, outputs, k·C]` tap matrix: row `(b, o, j)` of the gathered
        // `[B·outputs·k, C]` matrix is the input row of tap `j` of output `o` of sequence `b`
        // (at position `t + j·d − left`) when that position lies in the sequence, else an
        // appended zero row; reshaping puts tap `j` at channels `j·C..(j+1)·C`. The backward
        // pass is one scatter-add into a contiguous gradient (`narrow` taps + `cat` cost a
        // zero-filled buffer per tap, and a padded tensor hands back a strided gradient).
        let rows = Tensor::cat(
            vec![
                x.reshape([batch * inputs, channels]),
                Tensor::zeros([1, channels], &device),
            ],
            0,
        );
        let index = index_tensor(plan.row_index(batch), &device);
        let taps = rows
            .select(0, index)
            .reshape([batch, outputs, k * channels]);
        linear_rows(&self.linear, taps)
    }
}

/// `linear` applied to every row of `[batch, length, d_in]` as one `[batch·length, d_in]` matrix
/// product.
///
/// Burn 0.21's `Linear::forward` on a rank-3 input runs a broadcast *batched* matmul: one small
/// `[length, d_in]·[d_in, d_out]` product per sequence (the weight packed again for each), and in
/// the backward pass one `[d_in, d_out]` weight gradient per sequence, summed afterwards (a
/// `[batch, d_in, d_out]` temporary). Folding the batch into the rows makes each of the three
/// products a single large matrix product. The result is the same function.
///
/// # Shapes
/// - input: `[batch, length, d_in]`
/// - output: `[batch, length, d_out]`
pub fn linear_rows<B: Backend>(linear: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [batch, length, d_in] = x.dims();
    let d_out = linear.weight.dims()[1];
    linear
        .forward(x.reshape([batch * length, d_in]))
        .reshape([batch, length, d_out])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::TensorData;

    type B = NdArray<f32>;

    /// Direct evaluation of the dilated convolution, on the host.
    fn reference(conv: &DilatedConv1d<B>, x: &[f32], b: usize, l: usize, c: usize) -> Vec<f32> {
        let w: Vec<f32> = conv.linear.weight.val().into_data().to_vec().unwrap();
        let bias: Vec<f32> = conv
            .linear
            .bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .to_vec()
            .unwrap();
        let co = bias.len();
        let k = conv.kernel_size;
        let d = conv.dilation as isize;
        let total = conv.padding() as isize;
        let left = if conv.causal { total } else { total / 2 };
        let mut out = vec![0f32; b * l * co];
        for bi in 0..b {
            for t in 0..l as isize {
                for o in 0..co {
                    let mut acc = bias[o];
                    for j in 0..k as isize {
                        let src = t + j * d - left;
                        if src < 0 || src >= l as isize {
                            continue;
                        }
                        for i in 0..c {
                            acc += x[(bi * l + src as usize) * c + i]
                                * w[((j as usize) * c + i) * co + o];
                        }
                    }
                    out[(bi * l + t as usize) * co + o] = acc;
                }
            }
        }
        out
    }

    #[test]
    fn matches_direct_convolution_causal_and_centred() {
        let device = Default::default();
        let (b, l, c) = (2, 9, 3);
        let x: Vec<f32> = (0..b * l * c)
            .map(|i| ((i * 7 % 11) as f32) - 5.0)
            .collect();
        // d = 8 pads 16 > L = 9 (every tap but one out of the sequence); k = 2 splits a centred
        // padding unevenly; k = 1 is the plain per-position product.
        for (k, causal, d) in [1, 2, 3]
            .into_iter()
            .flat_map(|k| [true, false].map(|causal| (k, causal)))
            .flat_map(|(k, causal)| [1, 2, 4, 8].map(|d| (k, causal, d)))
        {
            {
                let conv = DilatedConv1dConfig::new(c, 4)
                    .with_kernel_size(k)
                    .with_dilation(d)
                    .with_causal(causal)
                    .with_init_std(0.5)
                    .init::<B>(&device);
                let input =
                    Tensor::<B, 3>::from_data(TensorData::new(x.clone(), [b, l, c]), &device);
                let got: Vec<f32> = conv.forward(input).into_data().to_vec().unwrap();
                let want = reference(&conv, &x, b, l, c);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() < 1e-4,
                        "k={k} causal={causal} d={d}: {g} vs {w}"
                    );
                }
            }
        }
    }

    /// The gathered taps have the gradients of the pad + `narrow` + `cat` formulation they
    /// replaced (input and weight), causal and centred, including taps outside the sequence.
    #[test]
    fn gathered_taps_have_the_gradients_of_pad_narrow_cat() {
        use burn::backend::Autodiff;
        use burn::tensor::{ops::PadMode, Distribution};
        type A = Autodiff<B>;
        let device = Default::default();
        let (b, l, c) = (2, 7, 3);
        let x0 = Tensor::<B, 3>::random([b, l, c], Distribution::Normal(0.0, 1.0), &device);
        let up = Tensor::<B, 3>::random([b, l, 4], Distribution::Normal(0.0, 1.0), &device);
        for causal in [true, false] {
            for d in [1, 3, 8] {
                let conv = DilatedConv1dConfig::new(c, 4)
                    .with_dilation(d)
                    .with_causal(causal)
                    .with_init_std(0.5)
                    .init::<A>(&device);
                let run = |gathered: bool| {
                    let x = Tensor::<A, 3>::from_inner(x0.clone()).require_grad();
                    let y = if gathered {
                        conv.forward(x.clone())
                    } else {
                        let total = conv.padding();
                        let left = if causal { total } else { total / 2 };
                        let padded = x
                            .clone()
                            .pad([(left, total - left), (0, 0)], PadMode::Constant(0.0));
                        let taps: Vec<_> =
                            (0..3).map(|j| padded.clone().narrow(1, j * d, l)).collect();
                        conv.linear.forward(Tensor::cat(taps, 2))
                    };
                    let grads = (y * Tensor::from_inner(up.clone())).sum().backward();
                    (
                        x.grad(&grads).unwrap(),
                        conv.linear.weight.val().grad(&grads).unwrap(),
                    )
                };
                let (xg, wg) = run(true);
                let (xr, wr) = run(false);
                let dx = (xg - xr).abs().max().into_scalar();
                let dw = (wg - wr).abs().max().into_scalar();
                assert!(dx < 1e-4 && dw < 1e-4, "causal={causal} d={d}: {dx} {dw}");
            }
        }
    }

    /// Value and gradients (input, weight, bias) of `Σ up ⊙ conv(x)` by the forward of the
    /// backend's route and by the tensor route, over a plan of chosen outputs.
    #[allow(clippy::type_complexity)]
    fn both_routes(
        conv: &DilatedConv1d<burn::backend::Autodiff<B>>,
        outputs: &[usize],
        length: usize,
        x_trains: bool,
    ) -> Vec<(
        Tensor<B, 3>,
        Option<Tensor<B, 3>>,
        Option<Tensor<B, 2>>,
        Option<Tensor<B, 1>>,
    )> {
        use burn::backend::Autodiff;
        use burn::tensor::Distribution;
        let device = Default::default();
        let inputs = conv.geometry().needed_inputs(outputs, length);
        let plan = TapPlan::new(&inputs, outputs, length, conv.geometry());
        let batch = 3;
        let x0 = Tensor::<B, 3>::random(
            [batch, inputs.len(), 5],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let up = Tensor::<B, 3>::random(
            [batch, outputs.len(), 4],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        [true, false]
            .into_iter()
            .map(|host| {
                let mut x = Tensor::<Autodiff<B>, 3>::from_inner(x0.clone());
                if x_trains {
                    x = x.require_grad();
                }
                let before = crate::ops::host::host_runs();
                let y = if host {
                    conv.forward_planned(x.clone(), &plan)
                } else {
                    conv.forward_planned_tensor(x.clone(), &plan)
                };
                assert_eq!(
                    crate::ops::host::host_runs() > before,
                    host,
                    "the host route ran"
                );
                let grads = (y.clone() * Tensor::from_inner(up.clone()))
                    .sum()
                    .backward();
                let bias = conv.linear.bias.as_ref().unwrap().val();
                (
                    y.inner(),
                    x.grad(&grads),
                    conv.linear.weight.val().grad(&grads),
                    bias.grad(&grads),
                )
            })
            .collect()
    }

    fn max_diff<const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    #[test]
    fn host_route_matches_the_tensor_route_on_pruned_plans() {
        use burn::module::{AutodiffModule, Module};
        type A = burn::backend::Autodiff<B>;
        let device = Default::default();
        let length = 9;
        for causal in [true, false] {
            for d in [1, 2, 4] {
                for outputs in [(0..length).collect::<Vec<_>>(), vec![8], vec![3, 8]] {
                    let conv = DilatedConv1dConfig::new(5, 4)
                        .with_dilation(d)
                        .with_causal(causal)
                        .with_init_std(0.5)
                        .init::<A>(&device);
                    // A non-zero bias, so that its place in the output is checked too.
                    let conv = DilatedConv1d {
                        linear: Linear {
                            bias: conv
                                .linear
                                .bias
                                .map(|b| b.map(|b| b.add_scalar(0.25).detach().require_grad())),
                            ..conv.linear
                        },
                        ..conv
                    };
                    let case = format!("causal={causal} d={d} outputs={outputs:?}");
                    // Everything trains; then a frozen layer (PeterRec's backbone) under a
                    // trained input; then a trained layer over a constant input.
                    for (frozen, x_trains) in [(false, true), (true, true), (false, false)] {
                        let conv = if frozen {
                            conv.clone().no_grad()
                        } else {
                            conv.clone()
                        };
                        let mut runs = both_routes(&conv, &outputs, length, x_trains);
                        let (y2, gx2, gw2, gb2) = runs.pop().unwrap();
                        let (y1, gx1, gw1, gb1) = runs.pop().unwrap();
                        assert!(max_diff(y1, y2) < 1e-5, "{case}: values");
                        assert_eq!(gx1.is_some(), x_trains, "{case}");
                        assert_eq!(gw1.is_some(), !frozen, "{case}");
                        assert_eq!(gb1.is_some(), !frozen, "{case}");
                        assert_eq!(gx1.is_some(), gx2.is_some(), "{case}");
                        assert_eq!(gw1.is_some(), gw2.is_some(), "{case}");
                        if let (Some(a), Some(b)) = (gx1, gx2) {
                            assert!(max_diff(a, b) < 1e-4, "{case}: input gradients");
                        }
                        if let (Some(a), Some(b)) = (gw1, gw2) {
                            assert!(max_diff(a, b) < 1e-4, "{case}: weight gradients");
                        }
                        if let (Some(a), Some(b)) = (gb1, gb2) {
                            assert!(max_diff(a, b) < 1e-4, "{case}: bias gradients");
                        }
                    }
                    // Inference on the backend itself (no autodiff) takes the host route too.
                    let valid = conv.valid();
                    let inputs = valid.geometry().needed_inputs(&outputs, length);
                    let plan = TapPlan::new(&inputs, &outputs, length, valid.geometry());
                    let x = Tensor::<B, 3>::random(
                        [2, inputs.len(), 5],
                        burn::tensor::Distribution::Normal(0.0, 1.0),
                        &device,
                    );
                    let before = crate::ops::host::host_runs();
                    let host = valid.forward_planned(x.clone(), &plan);
                    assert!(
                        crate::ops::host::host_runs() > before,
                        "{case}: inference route"
                    );
                    let tensor = valid.forward_planned_tensor(x, &plan);
                    assert!(max_diff(host, tensor) < 1e-5, "{case}: inference");
                }
            }
        }
    }
}
