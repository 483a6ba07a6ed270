//! PeterRec's model patch: a bottleneck residual adapter.

use burn::config::Config;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{activation::sigmoid, backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

use crate::conv::linear_rows;
use crate::init::{tn_param, zeros_param};
use crate::ops::host::{route_for, Route};
use crate::ops::patch::{self as host_patch, PatchParams};

/// How the up-projection of a fresh patch is initialised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum PatchInit {
    /// `W_up = 0`, `b_up = 0`: a freshly patched model computes the pretrained function exactly.
    ZeroUp,
    /// Both projections from a truncated normal (the original code's init).
    TruncatedNormal {
        /// Standard deviation (the original uses 0.02).
        std: f64,
    },
}

/// Configuration of a [`ModelPatch`].
#[derive(Config, Debug)]
pub struct ModelPatchConfig {
    /// Channels `C` of the activations the patch sits on.
    pub channels: usize,
    /// Bottleneck width = `ceil(C · ratio)`, at least 1; the paper uses C/4.
    #[config(default = 0.25)]
    pub bottleneck_ratio: f64,
    /// Initialisation of the up-projection.
    #[config(default = "PatchInit::ZeroUp")]
    pub init: PatchInit,
    /// Standard deviation of the down-projection init.
    #[config(default = 0.02)]
    pub init_std: f64,
    /// Seed of the init.
    #[config(default = 0)]
    pub seed: u64,
}

impl ModelPatchConfig {
    /// The bottleneck width this config gives.
    pub fn bottleneck(&self) -> usize {
        ((self.channels as f64 * self.bottleneck_ratio).ceil() as usize).max(1)
    }

    /// Builds a patch; `name` makes its init stream unique within a model.
    pub fn init_named<B: Backend>(&self, name: &str, device: &B::Device) -> ModelPatch<B> {
        let (c, b) = (self.channels, self.bottleneck());
        let down = Linear {
            weight: tn_param(
                [c, b],
                self.init_std,
                self.seed,
                &format!("{name}.down"),
                device,
            ),
            bias: Some(zeros_param([b], device)),
        };
        let up_weight = match self.init {
            PatchInit::ZeroUp => zeros_param([b, c], device),
            PatchInit::TruncatedNormal { std } => {
                tn_param([b, c], std, self.seed, &format!("{name}.up"), device)
            }
        };
        let up = Linear {
            weight: up_weight,
            bias: Some(zeros_param([c], device)),
        };
        ModelPatch { down, up }
    }

    /// Builds a patch.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ModelPatch<B> {
        self.init_named("patch", device)
    }
}

/// `MP(x) = x + W_up · GELU(W_down · x + b_down) + b_up` (GELU in its tanh form, as in the original).
#[derive(Module, Debug)]
pub struct ModelPatch<B: Backend> {
    /// `C → C·ratio` projection.
    pub down: Linear<B>,
    /// `C·ratio → C` projection.
    pub up: Linear<B>,
}

impl<B: Backend> ModelPatch<B> {
    /// The residual branch alone, `W_up · GELU(W_down · x + b_down) + b_up`.
    ///
    /// # Shapes
    /// - input: `[batch, length, C]`
    /// - output: `[batch, length, C]`
    pub fn delta(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        if let (Some(down_b), Some(up_b)) = (&self.down.bias, &self.up.bias) {
            let params = PatchParams {
                down_w: self.down.weight.val(),
                down_b: down_b.val(),
                up_w: self.up.weight.val(),
                up_b: up_b.val(),
            };
            let dtypes = [
                x.dtype(),
                params.down_w.dtype(),
                params.down_b.dtype(),
                params.up_w.dtype(),
                params.up_b.dtype(),
            ];
            match route_for::<B>(&dtypes) {
                Route::Tensor => {}
                route => return host_patch::delta(route, x, params),
            }
        }
        self.delta_tensor(x)
    }

    /// [`Self::delta`] by Burn tensor operations (the route of backends other than the CPU
    /// ones, and the reference the host route is tested against).
    ///
    /// # Shapes
    /// - input: `[batch, length, channels]`
    /// - output: `[batch, length, channels]`
    pub(crate) fn delta_tensor(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        linear_rows(&self.up, gelu_tanh(linear_rows(&self.down, x)))
    }

    /// The patch, `x + delta(x)`.
    ///
    /// # Shapes
    /// - input: `[batch, length, C]`
    /// - output: `[batch, length, C]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        x.clone() + self.delta(x)
    }
}

/// GELU in its tanh form, `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`, computed as the equal
/// `x·σ(x·(2√(2/π) + 2√(2/π)·0.044715·x²))` (since `(1 + tanh(y))/2 = σ(2y)`).
///
/// Burn's `gelu_approximate` records eight element-wise ops, among them `powf` and `tanh` (scalar
/// libm calls per element, and `tanh`'s backward is three more ops); this form records six, with
/// one fused sigmoid whose backward is a single op.
///
/// # Shapes
/// - input: any
/// - output: same as the input
pub fn gelu_tanh<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    // 2·√(2/π), and that times 0.044715.
    const LINEAR: f64 = 2.0 * 0.797_884_560_802_865_4;
    const CUBIC: f64 = LINEAR * 0.044715;
    let square = x.clone() * x.clone();
    let z = (square * CUBIC + LINEAR) * x.clone();
    x * sigmoid(z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::{activation::gelu_approximate, TensorData};

    type A = Autodiff<NdArray<f32>>;

    /// The sigmoid form agrees with Burn's tanh GELU in value and gradient, over a range that
    /// covers both tails (where `tanh` and `σ` saturate) and zero.
    #[test]
    fn gelu_tanh_matches_burns_gelu_approximate_in_value_and_gradient() {
        let device = Default::default();
        let values: Vec<f32> = (-80..=80).map(|i| i as f32 * 0.1).collect();
        let n = values.len();
        let run = |f: fn(Tensor<A, 1>) -> Tensor<A, 1>| {
            let x = Tensor::<A, 1>::from_data(TensorData::new(values.clone(), [n]), &device)
                .require_grad();
            let y = f(x.clone());
            // A non-uniform upstream gradient, so each element's derivative is checked.
            let weights = Tensor::<A, 1>::from_data(
                TensorData::new((0..n).map(|i| 1.0 + i as f32 / n as f32).collect(), [n]),
                &device,
            );
            let grads = (y.clone() * weights).sum().backward();
            let dx: Vec<f32> = x.grad(&grads).unwrap().into_data().to_vec().unwrap();
            let y: Vec<f32> = y.into_data().to_vec().unwrap();
            (y, dx)
        };
        let (y_ours, dx_ours) = run(gelu_tanh);
        let (y_burn, dx_burn) = run(gelu_approximate);
        for i in 0..n {
            assert!(
                (y_ours[i] - y_burn[i]).abs() < 2e-6,
                "value at {}: {} vs {}",
                values[i],
                y_ours[i],
                y_burn[i]
            );
            assert!(
                (dx_ours[i] - dx_burn[i]).abs() < 2e-5,
                "gradient at {}: {} vs {}",
                values[i],
                dx_ours[i],
                dx_burn[i]
            );
        }
        // GELU(−8) is a tiny negative number, GELU(8) is 8: both forms must keep that.
        assert!(y_ours[0] <= 0.0 && y_ours[0] > -1e-6);
        assert!((y_ours[n - 1] - 8.0).abs() < 1e-5);
    }

    /// Value and gradients (x, W_down, b_down, W_up, b_up) of `Σ w ⊙ delta(x)` by the host
    /// route and by the tensor route; returns the largest difference of each (relative to the
    /// largest value when that is above one), `None` where the parent has no gradient (on both
    /// routes alike).
    fn compare(dims: [usize; 3], x_trains: bool, patch_trains: bool) -> Vec<Option<f32>> {
        use burn::module::Module;
        use burn::tensor::Distribution;
        type I = NdArray<f32>;
        let device = Default::default();
        let patch = ModelPatchConfig::new(dims[2])
            .with_init(PatchInit::TruncatedNormal { std: 0.3 })
            .with_init_std(0.3)
            .init::<A>(&device);
        // Non-zero biases, so that their place is checked too.
        let bump = |b: burn::module::Param<Tensor<A, 1>>| {
            b.map(|b| b.add_scalar(0.2).detach().require_grad())
        };
        let patch = ModelPatch {
            down: Linear {
                bias: patch.down.bias.map(bump),
                ..patch.down
            },
            up: Linear {
                bias: patch.up.bias.map(bump),
                ..patch.up
            },
        };
        let patch = if patch_trains { patch } else { patch.no_grad() };
        let x0 = Tensor::<I, 3>::random(dims, Distribution::Normal(0.0, 1.5), &device);
        let w = Tensor::<I, 3>::random(dims, Distribution::Normal(0.0, 1.0), &device);
        let run = |host: bool| {
            let mut x = Tensor::<A, 3>::from_inner(x0.clone());
            if x_trains {
                x = x.require_grad();
            }
            let before = crate::ops::host::host_runs();
            let y = if host {
                patch.delta(x.clone())
            } else {
                patch.delta_tensor(x.clone())
            };
            assert_eq!(
                crate::ops::host::host_runs() > before,
                host,
                "the host route ran"
            );
            let grads = (y.clone() * Tensor::from_inner(w.clone())).sum().backward();
            let flat = |t: Option<Tensor<I, 2>>| t.map(|t| t.reshape([-1]));
            let bias = |b: &Option<burn::module::Param<Tensor<A, 1>>>| {
                b.as_ref().unwrap().val().grad(&grads)
            };
            vec![
                Some(y.inner().reshape([-1])),
                x.grad(&grads).map(|g| g.reshape([-1])),
                flat(patch.down.weight.val().grad(&grads)),
                bias(&patch.down.bias),
                flat(patch.up.weight.val().grad(&grads)),
                bias(&patch.up.bias),
            ]
        };
        let (host, tensor) = (run(true), run(false));
        host.into_iter()
            .zip(tensor)
            .map(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => {
                    let scale = b.clone().abs().max().into_scalar().max(1.0);
                    Some((a - b).abs().max().into_scalar() / scale)
                }
                (None, None) => None,
                _ => panic!("the routes disagree on which parents have gradients"),
            })
            .collect()
    }

    #[test]
    fn host_route_matches_the_tensor_route() {
        // [4, 500, 128]: products big enough for `gemm` to split them over threads, and more
        // than one element-wise task.
        for dims in [[3, 7, 12], [4, 500, 128]] {
            let diffs = compare(dims, true, true);
            assert!(
                diffs.iter().all(Option::is_some),
                "{dims:?}: every parent trains"
            );
            for (what, diff) in ["value", "x", "W_down", "b_down", "W_up", "b_up"]
                .iter()
                .zip(&diffs)
            {
                let diff = diff.unwrap();
                assert!(diff < 1e-5, "{dims:?}: {what} differs by {diff}");
            }
        }
    }

    #[test]
    fn host_route_passes_gradients_only_to_tracked_parents() {
        // PeterRec's first block: a constant input under a trained patch.
        let diffs = compare([2, 5, 8], false, true);
        assert!(diffs[1].is_none() && diffs[2..].iter().all(Option::is_some));
        assert!(diffs.iter().flatten().all(|&d| d < 1e-4), "{diffs:?}");
        // A frozen patch under a trained input.
        let diffs = compare([2, 5, 8], true, false);
        assert!(diffs[1].is_some() && diffs[2..].iter().all(Option::is_none));
        assert!(diffs.iter().flatten().all(|&d| d < 1e-4), "{diffs:?}");
    }

    #[test]
    fn host_route_matches_for_inference() {
        use burn::module::AutodiffModule;
        use burn::tensor::Distribution;
        let device = Default::default();
        let patch = ModelPatchConfig::new(16)
            .with_init(PatchInit::TruncatedNormal { std: 0.3 })
            .init::<A>(&device)
            .valid();
        let x =
            Tensor::<NdArray<f32>, 3>::random([2, 6, 16], Distribution::Normal(0.0, 2.0), &device);
        let before = crate::ops::host::host_runs();
        let host = patch.delta(x.clone());
        assert!(crate::ops::host::host_runs() > before);
        let diff = (host - patch.delta_tensor(x)).abs().max().into_scalar();
        assert!(diff < 1e-5, "{diff}");
    }
}
