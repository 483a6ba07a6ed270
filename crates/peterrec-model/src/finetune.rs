//! Fine-tuning: strategies, the `[CLS]` user vector, task heads and their losses.

use std::fmt;
use std::str::FromStr;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{
    backend::{AutodiffBackend, Backend},
    Int, Tensor,
};
use serde::{Deserialize, Serialize};

use crate::backbone::{NextItNet, NextItNetConfig};
use crate::block::Insertion;
use crate::error::{ModelError, Result as ModelResult};
use crate::head::{HeadKind, TaskHead};
use crate::loss::{bce_negatives_loss, cross_entropy, LossOutput};
use crate::ops::cross_entropy::{linear_cross_entropy, table_cross_entropy};
use crate::patch::{ModelPatchConfig, PatchInit};
use crate::paths::{param_shapes, set_trainable};
use crate::persist::content_hash;

/// Which parameters a fine-tuning run trains. The task head is always trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Strategy {
    /// PeterRec: frozen backbone; trains the model patches, every block's second LayerNorm and
    /// the head.
    PeterRec {
        /// Where the patches go.
        insertion: Insertion,
    },
    /// Everything.
    FineAll,
    /// The head only.
    FineCls,
    /// The last `n` residual blocks and the head.
    FineLast(usize),
    /// A randomly initialised backbone, everything trained (no transfer).
    Scratch,
}

impl Strategy {
    /// All strategies compared in the paper, in table order.
    pub fn all() -> Vec<Strategy> {
        vec![
            Strategy::PeterRec {
                insertion: Insertion::Serial,
            },
            Strategy::PeterRec {
                insertion: Insertion::Parallel,
            },
            Strategy::FineAll,
            Strategy::FineCls,
            Strategy::FineLast(1),
            Strategy::Scratch,
        ]
    }

    /// Whether the parameter at dotted path `name` (of a [`FineTuneModel`]) is trained.
    pub fn is_trainable(&self, name: &str, num_blocks: usize) -> bool {
        if name.starts_with("head.") {
            return true;
        }
        let parts: Vec<&str> = name.split('.').collect();
        match *self {
            Strategy::FineAll | Strategy::Scratch => true,
            Strategy::FineCls => false,
            Strategy::PeterRec { .. } => parts.iter().any(|p| matches!(*p, "mp1" | "mp2" | "ln2")),
            Strategy::FineLast(n) => {
                parts.get(1) == Some(&"blocks")
                    && parts
                        .get(2)
                        .and_then(|i| i.parse::<usize>().ok())
                        .is_some_and(|i| i + n >= num_blocks)
            }
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::PeterRec { insertion } => match insertion {
                Insertion::Serial => write!(f, "peterrec-serial"),
                Insertion::Parallel => write!(f, "peterrec-parallel"),
                Insertion::SerialOne => write!(f, "peterrec-serial1"),
            },
            Strategy::FineAll => write!(f, "fineall"),
            Strategy::FineCls => write!(f, "finecls"),
            Strategy::FineLast(n) => write!(f, "finelast-{n}"),
            Strategy::Scratch => write!(f, "scratch"),
        }
    }
}

impl FromStr for Strategy {
    type Err = ModelError;

    /// Parses the names [`Display`](fmt::Display) prints (`peterrec` alone means serial).
    fn from_str(s: &str) -> ModelResult<Self> {
        let s = s.trim().to_ascii_lowercase();
        let peter = |insertion| Ok(Strategy::PeterRec { insertion });
        match s.as_str() {
            "peterrec" | "peterrec-serial" => peter(Insertion::Serial),
            "peterrec-parallel" => peter(Insertion::Parallel),
            "peterrec-serial1" => peter(Insertion::SerialOne),
            "fineall" => Ok(Strategy::FineAll),
            "finecls" => Ok(Strategy::FineCls),
            "scratch" => Ok(Strategy::Scratch),
            other => match other.strip_prefix("finelast-").map(str::parse::<usize>) {
                Some(Ok(n)) if n > 0 => Ok(Strategy::FineLast(n)),
                _ => Err(ModelError::InvalidConfig(format!(
                    "unknown strategy `{s}` (expected peterrec-serial, peterrec-parallel, \
                     peterrec-serial1, fineall, finecls, finelast-N or scratch)"
                ))),
            },
        }
    }
}

/// Configuration of a fine-tuning model.
#[derive(Config, Debug, PartialEq)]
pub struct FineTuneConfig {
    /// What is trained.
    pub strategy: Strategy,
    /// The task head.
    pub head: HeadKind,
    /// Patch bottleneck as a fraction of `C` (PeterRec strategies).
    #[config(default = 0.25)]
    pub bottleneck_ratio: f64,
    /// Patch init.
    #[config(default = "PatchInit::ZeroUp")]
    pub patch_init: PatchInit,
    /// Seed of the head and patch init (and of the backbone for `Scratch`).
    #[config(default = 1)]
    pub seed: u64,
}

/// Identity of the backbone a task was built on, and how it was built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMeta {
    /// The fine-tuning configuration.
    pub finetune: FineTuneConfig,
    /// The pretrained backbone's configuration.
    pub backbone: NextItNetConfig,
    /// Content hash of the pretrained backbone's weights (see [`content_hash`]).
    pub backbone_hash: u64,
    /// Parallel patches follow the PyTorch port's `conv(x) + MP(x)` convention
    /// ([`crate::ResidualBlock::parallel_adds_input`]; set by the importer).
    #[serde(default)]
    pub parallel_adds_input: bool,
}

impl FineTuneConfig {
    /// Prepares `backbone` (pretrained with `backbone_config`) for this strategy: inserts patches
    /// (PeterRec), re-initialises it (Scratch), adds the head and freezes what is not trained.
    pub fn init<B: Backend>(
        &self,
        backbone: NextItNet<B>,
        backbone_config: &NextItNetConfig,
        device: &B::Device,
    ) -> ModelResult<FineTuneModel<B>> {
        backbone_config.validate()?;
        backbone_config.check_matches(&backbone)?;
        if self.head.outputs() == 0 {
            return Err(ModelError::InvalidConfig(
                "the task head needs at least one output".into(),
            ));
        }
        if let Strategy::FineLast(n) = self.strategy {
            if n == 0 || n > backbone.blocks.len() {
                return Err(ModelError::InvalidConfig(format!(
                    "finelast-{n} needs 1..={} blocks",
                    backbone.blocks.len()
                )));
            }
        }
        let bottleneck = ModelPatchConfig::new(backbone_config.channels)
            .with_bottleneck_ratio(self.bottleneck_ratio)
            .bottleneck();
        let patch_values = bottleneck.checked_mul(backbone_config.channels);
        if !(self.bottleneck_ratio > 0.0 && self.bottleneck_ratio.is_finite())
            || patch_values.is_none_or(|n| n > isize::MAX as usize / 4)
        {
            return Err(ModelError::InvalidConfig(
                "bottleneck_ratio must be positive, finite and give a patch that fits in memory"
                    .into(),
            ));
        }
        let backbone_hash = content_hash(&backbone);
        let mut backbone = backbone.without_patches();
        match self.strategy {
            Strategy::Scratch => {
                backbone = backbone_config
                    .clone()
                    .with_seed(self.seed.wrapping_add(0x5eed))
                    .try_init(device)?;
            }
            Strategy::PeterRec { insertion } => {
                let patch = ModelPatchConfig::new(backbone_config.channels)
                    .with_bottleneck_ratio(self.bottleneck_ratio)
                    .with_init(self.patch_init)
                    .with_seed(self.seed);
                backbone = backbone.attach_patches(insertion, &patch, device);
            }
            _ => {}
        }
        let head = self.head.init(backbone_config.channels, self.seed, device);
        let model = FineTuneModel {
            backbone,
            head,
            meta: TaskMeta {
                finetune: self.clone(),
                backbone: backbone_config.clone(),
                backbone_hash,
                parallel_adds_input: false,
            },
        };
        Ok(model.apply_freezing())
    }
}

/// A backbone with a task head, as prepared by [`FineTuneConfig::init`].
#[derive(Module, Debug)]
pub struct FineTuneModel<B: Backend> {
    /// The (possibly patched) backbone.
    pub backbone: NextItNet<B>,
    /// The task head.
    pub head: TaskHead<B>,
    /// How it was built and on which backbone.
    pub meta: TaskMeta,
}

impl<B: Backend> FineTuneModel<B> {
    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.meta.finetune.strategy
    }

    /// Whether the parameter at dotted path `name` is trained by this model's strategy.
    pub fn is_trainable(&self, name: &str) -> bool {
        self.strategy()
            .is_trainable(name, self.backbone.blocks.len())
    }

    /// Sets `require_grad` from the strategy: frozen parameters get no gradient and no optimizer
    /// state. Call again after moving the model to an autodiff backend or loading weights.
    pub fn apply_freezing(self) -> Self {
        let strategy = self.strategy();
        let blocks = self.backbone.blocks.len();
        set_trainable(self, |name| strategy.is_trainable(name, blocks))
    }

    /// The user vector: the hidden state at `[CLS]` (last position; in centred mode the sum of the
    /// first and last positions, where `[CLS]` sits at both ends). Only the positions that
    /// `[CLS]` depends on are computed ([`NextItNet::forward_at`]).
    ///
    /// # Shapes
    /// - tokens: `[batch, length]` with `[CLS]` appended
    /// - output: `[batch, C]`
    pub fn user_vectors(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        let length = tokens.dims()[1];
        self.pool_cls(
            self.backbone
                .forward_at(tokens, &self.cls_positions(length)),
        )
    }

    /// The positions of `[CLS]` in a `length`-position row: the last (causal), or the first and
    /// the last (centred; one position when `length` is 1).
    pub fn cls_positions(&self, length: usize) -> Vec<usize> {
        cls_positions(self.backbone.causal, length)
    }

    /// The user vectors read off the backbone's hidden states: the last position (causal), or
    /// the sum of the first and last positions (centred). The hidden states may be every
    /// position or just the `[CLS]` positions ([`FineTuneModel::cls_positions`]).
    ///
    /// # Shapes
    /// - hidden: `[batch, length, C]`
    /// - output: `[batch, C]`
    pub fn pool_cls(&self, hidden: Tensor<B, 3>) -> Tensor<B, 2> {
        let [b, l, c] = hidden.dims();
        let last = hidden.clone().narrow(1, l - 1, 1).reshape([b, c]);
        if self.backbone.causal {
            last
        } else {
            last + hidden.narrow(1, 0, 1).reshape([b, c])
        }
    }

    /// Scores of every class or target item.
    ///
    /// # Shapes
    /// - tokens: `[batch, length]`
    /// - output: `[batch, outputs]`
    pub fn forward(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        self.head.forward(self.user_vectors(tokens))
    }

    /// Softmax cross-entropy of the labels over all outputs (classes, or every target item).
    ///
    /// # Shapes
    /// - tokens: `[batch, length]`; labels: `[batch]`
    pub fn softmax_loss(
        &self,
        tokens: Tensor<B, 2, Int>,
        labels: Tensor<B, 1, Int>,
    ) -> LossOutput<B> {
        let count = labels.dims()[0];
        LossOutput {
            loss: cross_entropy(self.forward(tokens), labels),
            count,
        }
    }

    /// The original cold-start loss: binary cross-entropy of each user's target item against
    /// sampled negative target items, scored by dot product with the target table. Classifier
    /// heads score the label's logit against the negatives' logits the same way.
    ///
    /// # Shapes
    /// - tokens: `[batch, length]`; positives: `[batch]`; negatives: `[batch, S]`
    pub fn bce_loss(
        &self,
        tokens: Tensor<B, 2, Int>,
        positives: Tensor<B, 1, Int>,
        negatives: Tensor<B, 2, Int>,
    ) -> LossOutput<B> {
        let [b, s] = negatives.dims();
        let user = self.user_vectors(tokens);
        let (pos, neg) = match &self.head {
            TaskHead::TargetItems(table) => {
                let c = user.dims()[1];
                let w = table.weight.val();
                let pos_emb = w.clone().select(0, positives);
                let pos = (user.clone() * pos_emb).sum_dim(1).reshape([b]);
                let neg_emb = w.select(0, negatives.reshape([b * s])).reshape([b, s, c]);
                let neg = neg_emb.matmul(user.reshape([b, c, 1])).reshape([b, s]);
                (pos, neg)
            }
            TaskHead::Classifier(_) => {
                let scores = self.head.forward(user);
                let pos = scores
                    .clone()
                    .gather(1, positives.reshape([b, 1]))
                    .reshape([b]);
                (pos, scores.gather(1, negatives))
            }
        };
        LossOutput {
            loss: bce_negatives_loss(pos, neg),
            count: b,
        }
    }

    /// Names of the parameters this model's strategy trains.
    pub fn trainable_names(&self) -> Vec<String> {
        param_shapes(self)
            .into_iter()
            .map(|(name, _)| name)
            .filter(|n| self.is_trainable(n))
            .collect()
    }
}

/// The positions of `[CLS]` in a `length`-position row (`length ≥ 1`): the last (causal), or
/// the first and the last (centred, where `[CLS]` sits at both ends; one position when `length`
/// is 1).
pub fn cls_positions(causal: bool, length: usize) -> Vec<usize> {
    if causal || length == 1 {
        vec![length - 1]
    } else {
        vec![0, length - 1]
    }
}

impl<B: AutodiffBackend> FineTuneModel<B> {
    /// The softmax training loss: the value of [`FineTuneModel::softmax_loss`], with the head and
    /// its softmax cross-entropy fused ([`linear_cross_entropy`] for a classifier,
    /// [`table_cross_entropy`] for an item table): the `[batch, outputs]` scores
    /// never enter the autodiff graph, and the gradient is the analytic one. Unlike the op-by-op
    /// loss (whose backward pass on Burn 0.21 differs between identical runs in the last bits),
    /// it is bitwise reproducible on the ndarray backend. The fine-tuning loop uses this one.
    ///
    /// # Shapes
    /// - tokens: `[batch, length]`; labels: `[batch]`
    pub fn softmax_train_loss(
        &self,
        tokens: Tensor<B, 2, Int>,
        labels: Tensor<B, 1, Int>,
    ) -> LossOutput<B> {
        let count = labels.dims()[0];
        let user = self.user_vectors(tokens);
        let loss = match &self.head {
            TaskHead::Classifier(linear) => linear_cross_entropy(
                user,
                linear.weight.val(),
                linear.bias.as_ref().map(|b| b.val()),
                labels,
            ),
            TaskHead::TargetItems(table) => table_cross_entropy(user, table.weight.val(), labels),
        };
        LossOutput { loss, count }
    }
}
