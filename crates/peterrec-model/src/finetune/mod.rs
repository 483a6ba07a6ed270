//! Fine-tuning: strategies, the `[CLS]` user vector, task heads and their losses.

use burn::module::Module;
use burn::tensor::{
    backend::{AutodiffBackend, Backend},
    Int, Tensor,
};

use crate::backbone::NextItNet;
use crate::head::TaskHead;
use crate::loss::{bce_negatives_loss, cross_entropy, LossOutput};
use crate::ops::cross_entropy::{linear_cross_entropy, table_cross_entropy};
use crate::paths::{param_shapes, set_trainable};

mod config;
mod strategy;

pub use config::{FineTuneConfig, TaskMeta};
pub use strategy::Strategy;

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
        cls_positions(self.backbone.causal(), length)
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
        if self.backbone.causal() {
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
