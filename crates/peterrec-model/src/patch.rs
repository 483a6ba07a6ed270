//! PeterRec's model patch: a bottleneck residual adapter.

use burn::config::Config;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{activation::gelu_approximate, backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

use crate::init::{tn_param, zeros_param};

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
        self.up.forward(gelu_approximate(self.down.forward(x)))
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
