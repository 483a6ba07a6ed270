//! Output heads: the pretraining softmax head, and the fine-tuning task heads.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Embedding, Linear};
use burn::tensor::{activation::relu, backend::Backend, module::linear, Tensor};
use serde::{Deserialize, Serialize};

use crate::init::{tn_param, zeros_param};

/// Configuration of the pretraining [`SoftmaxHead`].
#[derive(Config, Debug)]
pub struct SoftmaxHeadConfig {
    /// Channels `C`.
    pub channels: usize,
    /// Output size `V` (the vocabulary, reserved tokens included).
    pub num_tokens: usize,
    /// Score items with the backbone's item embedding table instead of a weight of the head's
    /// own (input and output embeddings tied; default false, the original NextItNet head).
    #[config(default = false)]
    pub tied: bool,
    /// Init standard deviation.
    #[config(default = 0.02)]
    pub init_std: f64,
    /// Init seed.
    #[config(default = 0)]
    pub seed: u64,
}

impl SoftmaxHeadConfig {
    /// Builds the head: a truncated-normal weight (unless tied) and a zero bias.
    pub fn init<B: Backend>(&self, device: &B::Device) -> SoftmaxHead<B> {
        if self.tied {
            return SoftmaxHead {
                linear: None,
                tied_bias: Some(zeros_param([self.num_tokens], device)),
            };
        }
        SoftmaxHead {
            linear: Some(Linear {
                weight: tn_param(
                    [self.channels, self.num_tokens],
                    self.init_std,
                    self.seed,
                    "head",
                    device,
                ),
                bias: Some(zeros_param([self.num_tokens], device)),
            }),
            tied_bias: None,
        }
    }
}

/// The pretraining head: `logits = ReLU(h)·W + b` over the vocabulary, where `W` is the head's
/// own `[C, V]` weight (the original NextItNet head) or, tied, the backbone's item embedding
/// table `[V, C]` transposed.
#[derive(Module, Debug)]
pub struct SoftmaxHead<B: Backend> {
    /// Weight `[C, V]` and bias `[V]` of an untied head; `None` when tied.
    pub linear: Option<Linear<B>>,
    /// Bias `[V]` of a tied head; `None` when untied (the bias is then `linear`'s).
    pub tied_bias: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> SoftmaxHead<B> {
    /// Whether the head scores items with the item embedding table.
    pub fn is_tied(&self) -> bool {
        self.linear.is_none()
    }

    /// The output weight `[C, V]` and bias `[V]`: the head's own, or, tied, `table` (the
    /// backbone's `[V, C]` item embeddings) transposed.
    pub fn weight_and_bias(
        &self,
        table: &Param<Tensor<B, 2>>,
    ) -> (Tensor<B, 2>, Option<Tensor<B, 1>>) {
        match &self.linear {
            Some(linear) => (linear.weight.val(), linear.bias.as_ref().map(|b| b.val())),
            None => (
                table.val().transpose(),
                self.tied_bias.as_ref().map(|b| b.val()),
            ),
        }
    }

    /// Logits over the vocabulary. `table` is the backbone's item embedding table, read only
    /// by a tied head.
    ///
    /// # Shapes
    /// - hidden: `[..., C]`
    /// - table: `[V, C]`
    /// - output: `[..., V]`
    pub fn forward<const D: usize>(
        &self,
        hidden: Tensor<B, D>,
        table: &Param<Tensor<B, 2>>,
    ) -> Tensor<B, D> {
        let (weight, bias) = self.weight_and_bias(table);
        linear(relu(hidden), weight, bias)
    }
}

/// What a fine-tuning head predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeadKind {
    /// A linear classifier with bias over `outputs` classes (user-profile tasks).
    Classifier {
        /// Number of classes.
        outputs: usize,
    },
    /// A table of `outputs` target-item embeddings scored by dot product, no bias (cold-start
    /// recommendation; the original's `allitem_embeddings_target`).
    TargetItems {
        /// Number of target items.
        outputs: usize,
    },
}

impl HeadKind {
    /// Number of scores per user.
    pub fn outputs(&self) -> usize {
        match *self {
            HeadKind::Classifier { outputs } | HeadKind::TargetItems { outputs } => outputs,
        }
    }

    /// Builds a freshly initialised head on `channels`-wide user vectors.
    pub fn init<B: Backend>(&self, channels: usize, seed: u64, device: &B::Device) -> TaskHead<B> {
        match *self {
            HeadKind::Classifier { outputs } => TaskHead::Classifier(Linear {
                weight: tn_param([channels, outputs], 0.02, seed, "task_head", device),
                bias: Some(zeros_param([outputs], device)),
            }),
            HeadKind::TargetItems { outputs } => TaskHead::TargetItems(Embedding {
                weight: tn_param([outputs, channels], 0.02, seed, "task_head", device),
            }),
        }
    }
}

/// A fine-tuning head on the user vector.
#[derive(Module, Debug)]
pub enum TaskHead<B: Backend> {
    /// Linear classifier, weight `[C, K]`, bias `[K]`.
    Classifier(Linear<B>),
    /// Target-item table `[T, C]`, dot-product scores.
    TargetItems(Embedding<B>),
}

impl<B: Backend> TaskHead<B> {
    /// Scores of every class or target item.
    ///
    /// # Shapes
    /// - user: `[batch, C]`
    /// - output: `[batch, K]` (classes or target items)
    pub fn forward(&self, user: Tensor<B, 2>) -> Tensor<B, 2> {
        match self {
            TaskHead::Classifier(linear) => linear.forward(user),
            TaskHead::TargetItems(table) => user.matmul(table.weight.val().transpose()),
        }
    }

    /// Number of outputs.
    pub fn outputs(&self) -> usize {
        match self {
            TaskHead::Classifier(linear) => linear.weight.dims()[1],
            TaskHead::TargetItems(table) => table.weight.dims()[0],
        }
    }

    /// The head's kind.
    pub fn kind(&self) -> HeadKind {
        let outputs = self.outputs();
        match self {
            TaskHead::Classifier(_) => HeadKind::Classifier { outputs },
            TaskHead::TargetItems(_) => HeadKind::TargetItems { outputs },
        }
    }
}
