//! The NextItNet residual block, with optional model patches.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

use crate::conv::{DilatedConv1d, DilatedConv1dConfig};
use crate::ops::norm_relu::layer_norm_relu;
use crate::patch::{ModelPatch, ModelPatchConfig};
use crate::positions::BlockPlan;

/// Where model patches are inserted in a residual block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Insertion {
    /// `MP(conv(x))` before each LayerNorm: two patches per block (PeterRec's default).
    Serial,
    /// `conv(x) + delta(x)` before each LayerNorm, where `delta` is the patch's residual branch:
    /// two patches per block, each beside its convolution. With a zero-initialised patch the block
    /// computes the pretrained function exactly. (The PyTorch port adds the whole patch instead,
    /// `MP(x) = x + delta(x)`, which also adds the conv's input; blocks imported from it keep
    /// that convention through [`ResidualBlock::parallel_adds_input`].)
    Parallel,
    /// One serial patch per block, after the second convolution.
    SerialOne,
}

impl Insertion {
    /// Number of patches this mode puts in one block.
    pub fn patches_per_block(self) -> usize {
        match self {
            Insertion::Serial | Insertion::Parallel => 2,
            Insertion::SerialOne => 1,
        }
    }
}

/// Configuration of a [`ResidualBlock`].
#[derive(Config, Debug)]
pub struct ResidualBlockConfig {
    /// Channels `C`.
    pub channels: usize,
    /// Dilation `d` of the first convolution; the second uses `2d`.
    pub dilation: usize,
    /// Kernel width.
    #[config(default = 3)]
    pub kernel_size: usize,
    /// Causal or centred convolutions.
    #[config(default = true)]
    pub causal: bool,
    /// LayerNorm epsilon (the original uses 1e-8).
    #[config(default = 1e-8)]
    pub layer_norm_eps: f64,
    /// Init standard deviation of the convolutions.
    #[config(default = 0.02)]
    pub init_std: f64,
    /// Init seed.
    #[config(default = 0)]
    pub seed: u64,
}

impl ResidualBlockConfig {
    /// Builds the block; `name` makes its init streams unique within a model.
    pub fn init_named<B: Backend>(&self, name: &str, device: &B::Device) -> ResidualBlock<B> {
        let conv = |d: usize, n: &str| {
            DilatedConv1dConfig::new(self.channels, self.channels)
                .with_kernel_size(self.kernel_size)
                .with_dilation(d)
                .with_causal(self.causal)
                .with_init_std(self.init_std)
                .with_seed(self.seed)
                .init_named(&format!("{name}.{n}"), device)
        };
        let ln = || {
            LayerNormConfig::new(self.channels)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        ResidualBlock {
            conv1: conv(self.dilation, "conv1"),
            ln1: ln(),
            conv2: conv(2 * self.dilation, "conv2"),
            ln2: ln(),
            mp1: None,
            mp2: None,
            parallel: false,
            parallel_adds_input: false,
            layer_norm_eps: self.layer_norm_eps,
            dropout: 0.0,
        }
    }

    /// Builds the block.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ResidualBlock<B> {
        self.init_named("block", device)
    }
}

/// `h = ReLU(LN1(conv_d(x))); h = ReLU(LN2(conv_2d(h))); out = x + dropout(h)`, with optional
/// patches (dropout only while training, see [`ResidualBlock::dropout`]).
#[derive(Module, Debug)]
pub struct ResidualBlock<B: Backend> {
    /// Convolution with dilation `d`.
    pub conv1: DilatedConv1d<B>,
    /// First LayerNorm.
    pub ln1: LayerNorm<B>,
    /// Convolution with dilation `2d`.
    pub conv2: DilatedConv1d<B>,
    /// Second LayerNorm (trained by PeterRec).
    pub ln2: LayerNorm<B>,
    /// Patch at the first convolution (serial and parallel modes).
    pub mp1: Option<ModelPatch<B>>,
    /// Patch at the second convolution.
    pub mp2: Option<ModelPatch<B>>,
    /// Parallel insertion (else serial).
    pub parallel: bool,
    /// Parallel insertion only: add the whole patch `MP(x) = x + delta(x)` beside the
    /// convolution (`conv(x) + x + delta(x)`, the convention of the PyTorch port) instead of our
    /// `conv(x) + delta(x)`. False for every block we build; set by [`crate::interchange`] when
    /// it imports the port's parallel patches. Our own task files ([`crate::persist`]) do not
    /// record it.
    pub parallel_adds_input: bool,
    /// The epsilon both LayerNorms were built with (Burn keeps `LayerNorm`'s own private);
    /// [`layer_norm_relu`] needs it.
    pub layer_norm_eps: f64,
    /// Dropout probability on the residual branch while training (autodiff on); 0 unless a
    /// training loop sets it with [`crate::NextItNet::with_dropout`]. Not saved in files.
    pub dropout: f64,
}

impl<B: Backend> ResidualBlock<B> {
    /// Inserts fresh patches (replacing any present).
    pub fn attach_patches(
        mut self,
        insertion: Insertion,
        config: &ModelPatchConfig,
        name: &str,
        device: &B::Device,
    ) -> Self {
        self.mp1 = match insertion {
            Insertion::Serial | Insertion::Parallel => {
                Some(config.init_named(&format!("{name}.mp1"), device))
            }
            Insertion::SerialOne => None,
        };
        self.mp2 = Some(config.init_named(&format!("{name}.mp2"), device));
        self.parallel = insertion == Insertion::Parallel;
        self.parallel_adds_input = false;
        self
    }

    /// Removes the patches.
    pub fn detach_patches(mut self) -> Self {
        self.mp1 = None;
        self.mp2 = None;
        self.parallel = false;
        self.parallel_adds_input = false;
        self
    }

    /// Applies the block.
    ///
    /// # Shapes
    /// - input: `[batch, length, C]`
    /// - output: `[batch, length, C]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let length = x.dims()[1];
        self.forward_planned(x, &self.plan(length, (0..length).collect()))
    }

    /// The positions this block computes for the sorted `output` positions of a
    /// `length`-position sequence ([`crate::positions`]).
    pub fn plan(&self, length: usize, output: Vec<usize>) -> BlockPlan {
        BlockPlan::new(self.conv1.geometry(), self.conv2.geometry(), length, output)
    }

    /// Applies the block to a compact input (the rows of `plan.input`), computing its output at
    /// `plan.output` only.
    ///
    /// # Shapes
    /// - input: `[batch, plan.input.len(), C]`
    /// - output: `[batch, plan.output.len(), C]`
    pub fn forward_planned(&self, x: Tensor<B, 3>, plan: &BlockPlan) -> Tensor<B, 3> {
        let h = self.conv1.forward_planned(x.clone(), &plan.conv1);
        let h = match &self.mp1 {
            Some(mp) if self.parallel && self.parallel_adds_input => {
                h + mp.forward(plan.input_to_middle.apply(x.clone()))
            }
            Some(mp) if self.parallel => h + mp.delta(plan.input_to_middle.apply(x.clone())),
            Some(mp) => mp.forward(h),
            None => h,
        };
        let h = layer_norm_relu(&self.ln1, self.layer_norm_eps, h);
        let h2 = self.conv2.forward_planned(h.clone(), &plan.conv2);
        let h2 = match &self.mp2 {
            Some(mp) if self.parallel && self.parallel_adds_input => {
                h2 + mp.forward(plan.middle_to_output.apply(h))
            }
            Some(mp) if self.parallel => h2 + mp.delta(plan.middle_to_output.apply(h)),
            Some(mp) => mp.forward(h2),
            None => h2,
        };
        let branch = layer_norm_relu(&self.ln2, self.layer_norm_eps, h2);
        plan.input_to_output.apply(x) + train_dropout(branch, self.dropout)
    }
}

/// Inverted dropout with probability `prob` when the backend records gradients (training);
/// the identity otherwise and when `prob` is 0.
pub(crate) fn train_dropout<B: Backend>(x: Tensor<B, 3>, prob: f64) -> Tensor<B, 3> {
    if prob == 0.0 {
        return x;
    }
    burn::nn::Dropout { prob }.forward(x)
}
