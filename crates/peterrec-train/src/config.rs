//! Settings of the training loops, as Burn [`Config`]s: every field has a default, `new()`
//! builds the defaults and `with_<field>(...)` changes one field.
//!
//! The defaults are the best recipe measured for next-item pretraining on MovieLens-1M (C = 128,
//! blocks 1, 4, 1, 4): rows of the last 50 items, batch 64, 10 epochs of Adam 4e-3 with a linear
//! warm-up over the first 10% of the steps and a cosine decay to 0, dropout 0.2, sub-sequence
//! windows and an output layer tied to the item embedding table ([`TrainConfig::new`],
//! [`PretrainConfig::new`]). Fine-tuning defaults to Adam 5e-3 at
//! a constant rate for 4 epochs, the settings of the MovieLens transfer table
//! ([`FineTuneTrainConfig::new`]). `docs/results.md` has the measurements.
//!
//! ```
//! use peterrec_train::{PretrainConfig, TrainConfig};
//!
//! // One quick epoch; every other setting stays the recipe's.
//! let quick = PretrainConfig::new().with_train(TrainConfig::new().with_epochs(1).with_quiet(true));
//! assert_eq!((quick.train.max_len, quick.train.lr), (50, 4e-3));
//! ```

use std::path::PathBuf;

use burn::config::Config;
use burn::tensor::backend::Backend;
use peterrec_data::batch::SeqObjective;
use peterrec_model::{FusedAdamConfig, NegativeSampler, NextItNetConfig, NextItNetLM};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::eval::RankingOptions;
use crate::schedule::LrSchedule;

/// Optimizer, schedule and bookkeeping settings shared by both loops. The defaults are the
/// pretraining recipe; [`FineTuneTrainConfig::new`] changes the epochs, rate and schedule.
#[derive(Config, Debug)]
pub struct TrainConfig {
    /// Maximum number of epochs (default 10).
    #[config(default = 10)]
    pub epochs: usize,
    /// Sequences per step (default 64).
    #[config(default = 64)]
    pub batch_size: usize,
    /// Adam learning rate (default 4e-3).
    #[config(default = 4e-3)]
    pub lr: f64,
    /// Adam betas (default `(0.9, 0.999)`).
    #[config(default = "(0.9, 0.999)")]
    pub betas: (f32, f32),
    /// How the learning rate moves from `lr` over the planned `epochs` (default
    /// [`LrSchedule::WARMUP_10_COSINE`]: a linear warm-up over the first 10% of the planned
    /// steps, then a cosine decay to 0, `cosine:10%`). A saved configuration without this key
    /// loads as [`LrSchedule::Constant`].
    #[config(default = "LrSchedule::WARMUP_10_COSINE")]
    pub lr_schedule: LrSchedule,
    /// L2 weight decay, 0 for none (default 0).
    #[config(default = 0.0)]
    pub weight_decay: f32,
    /// Most recent items kept per sequence (default 50).
    #[config(default = 50)]
    pub max_len: usize,
    /// Epochs without validation improvement before stopping (default 3).
    #[config(default = 3)]
    pub patience: usize,
    /// Seed of shuffling and sampling (default 0).
    #[config(default = 0)]
    pub seed: u64,
    /// Hide the progress bar (default false).
    #[config(default = false)]
    pub quiet: bool,
    /// JSON-lines metrics log, one line per evaluation (default none).
    pub log_path: Option<PathBuf>,
    /// File the best model is saved to (atomically) whenever validation improves (default
    /// none).
    pub checkpoint: Option<PathBuf>,
    /// Directory where the full loop state is saved after every epoch (see
    /// [`crate::checkpoint::save_epoch`]); when it already holds a saved epoch, the run resumes
    /// from there, exactly (default none).
    pub state_dir: Option<PathBuf>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl TrainConfig {
    /// Adam with these settings, fused on the CPU backends ([`FusedAdamConfig`]).
    pub(crate) fn adam(&self) -> FusedAdamConfig {
        FusedAdamConfig::new()
            .with_beta_1(self.betas.0)
            .with_beta_2(self.betas.1)
            .with_weight_decay((self.weight_decay > 0.0).then_some(self.weight_decay))
    }

    /// Checks that the sizes and the learning rate are positive and the schedule is valid.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.batch_size == 0 || self.max_len == 0 {
            return Err(TrainError::Config(
                "batch_size and max_len must be positive".into(),
            ));
        }
        if self.lr.is_nan() || self.lr <= 0.0 {
            return Err(TrainError::Config(format!(
                "learning rate {} must be positive",
                self.lr
            )));
        }
        self.lr_schedule.validate()
    }

    /// The learning rate of 0-based `step` of `epoch` (from 1), `steps_per_epoch` steps each.
    pub(crate) fn lr_at(&self, epoch: usize, step: usize, steps_per_epoch: usize) -> f64 {
        let global = (epoch - 1) * steps_per_epoch + step;
        self.lr_schedule
            .lr_at(self.lr, global, self.epochs * steps_per_epoch)
    }
}

/// Pretraining settings: the loop, the objective and head, and the validation ranking.
#[derive(Config, Debug)]
pub struct PretrainConfig {
    /// Shared loop settings (default [`TrainConfig::new`], the ML-1M recipe).
    #[config(default = "TrainConfig::new()")]
    pub train: TrainConfig,
    /// Next-item, masked next-item or cloze (default next-item).
    #[config(default = "SeqObjective::NextItem")]
    pub objective: SeqObjective,
    /// Sampled softmax instead of the full softmax (default none: the full softmax).
    pub sampled: Option<NegativeSampler>,
    /// Validation ranking options (default [`RankingOptions::new`] without the sampled
    /// protocol: validation reads the full-ranking NDCG@10; the sampled protocol is for the
    /// test).
    #[config(default = "RankingOptions::new().with_sampled(false)")]
    pub ranking: RankingOptions,
    /// Also train on every prefix window (sub-sequence augmentation): a sequence longer than
    /// `max_len + 1` contributes its windows ending every `max_len / 2` items, not only the last
    /// (default true).
    #[config(default = true)]
    pub windows: bool,
    /// Dropout probability on the embeddings and on every block's residual branch while
    /// pretraining (default 0.2). The masks come from the backend's random generator, seeded
    /// from the loop's seed at every epoch, so a run (and a run resumed at an epoch boundary)
    /// repeats when it is the only user of that generator in its process. The returned model
    /// has no dropout.
    #[config(default = 0.2)]
    pub dropout: f64,
    /// Score items with the item embedding table instead of a softmax weight of the head's own
    /// (input and output embeddings tied, [`peterrec_model::SoftmaxHeadConfig::tied`]; default
    /// true, the measured recipe). [`crate::Pretrainer`] builds the head this way, and
    /// [`PretrainConfig::init_lm`] for a model built by hand; [`crate::pretrain`] trains the
    /// head of the model it is given.
    #[config(default = true)]
    pub tied_output: bool,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl PretrainConfig {
    /// Builds `backbone` with the pretraining head this recipe trains (tied to the item
    /// embedding table when [`Self::tied_output`]).
    pub fn init_lm<B: Backend>(
        &self,
        backbone: &NextItNetConfig,
        device: &B::Device,
    ) -> Result<NextItNetLM<B>> {
        Ok(backbone.init_lm_with(self.tied_output, device)?)
    }
}

/// The fine-tuning loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum FineTuneLoss {
    /// Softmax cross-entropy over all classes or target items.
    Softmax,
    /// Binary cross-entropy against `negatives` uniformly sampled wrong outputs per example
    /// (the original cold-start loss).
    BceNegatives {
        /// Negatives per example.
        negatives: usize,
    },
}

impl std::str::FromStr for FineTuneLoss {
    type Err = TrainError;

    /// Parses `softmax` or `bce:N` (N ≥ 1 negatives per example), as the examples' flags take it.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        if s == "softmax" {
            return Ok(FineTuneLoss::Softmax);
        }
        match s.strip_prefix("bce:").map(str::parse::<usize>) {
            Some(Ok(negatives)) if negatives > 0 => Ok(FineTuneLoss::BceNegatives { negatives }),
            _ => Err(TrainError::Config(format!(
                "unknown loss `{s}` (expected `softmax` or `bce:N` with N >= 1)"
            ))),
        }
    }
}

/// Fine-tuning settings.
#[derive(Config, Debug)]
pub struct FineTuneTrainConfig {
    /// Shared loop settings (default: [`TrainConfig::new`] with Adam 5e-3 at a constant rate, 4
    /// epochs, batch 64, the last 50 items).
    #[config(
        default = "TrainConfig::new().with_epochs(4).with_lr(5e-3).with_lr_schedule(LrSchedule::Constant)"
    )]
    pub train: TrainConfig,
    /// The loss (default softmax cross-entropy).
    #[config(default = "FineTuneLoss::Softmax")]
    pub loss: FineTuneLoss,
    /// Ranking options of target-item tasks (default [`RankingOptions::new`]).
    #[config(default = "RankingOptions::new()")]
    pub ranking: RankingOptions,
}

impl Default for FineTuneTrainConfig {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loops count steps across epochs: step `s` of epoch `e` is global step
    /// `(e − 1) · steps_per_epoch + s` of a plan of `epochs · steps_per_epoch` steps.
    #[test]
    fn the_loops_schedule_counts_steps_across_epochs() {
        let t = TrainConfig::new()
            .with_epochs(3)
            .with_lr(1.0)
            .with_lr_schedule(LrSchedule::WarmupCosine {
                warmup_steps: 10,
                final_ratio: 0.0,
            });
        // 4 steps an epoch: epoch 2, step 1 is global step 5 of 12, still warming up: 6/10.
        assert_eq!(t.lr_at(2, 1, 4), 0.6);
        // Epoch 3, step 3 is global step 11: the last of the plan, the final rate.
        assert_eq!(t.lr_at(3, 3, 4), 0.0);
        // Epoch 3, step 0 is global step 8: warm-up, 9/10.
        assert_eq!(t.lr_at(3, 0, 4), 0.9);
        // The constant schedule ignores the step.
        let c = TrainConfig::new()
            .with_lr(0.25)
            .with_lr_schedule(LrSchedule::Constant);
        assert_eq!(c.lr_at(7, 3, 4), 0.25);
    }

    /// A configuration saved before `lr_schedule` existed (no such key) loads as constant.
    #[test]
    fn a_config_without_a_schedule_loads_as_constant() {
        let t = TrainConfig::new().with_lr_schedule(LrSchedule::WarmupCosine {
            warmup_steps: 3,
            final_ratio: 0.5,
        });
        let mut json = serde_json::to_value(&t).unwrap();
        let back: TrainConfig = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back.lr_schedule, t.lr_schedule);
        json.as_object_mut().unwrap().remove("lr_schedule").unwrap();
        let old: TrainConfig = serde_json::from_value(json).unwrap();
        assert_eq!(old.lr_schedule, LrSchedule::Constant);
    }

    /// The defaults are the measured recipes, and every configuration builds from defaults
    /// alone.
    #[test]
    fn defaults_are_the_measured_recipes() {
        let p = PretrainConfig::new();
        let t = &p.train;
        assert_eq!(
            (t.epochs, t.batch_size, t.max_len, t.patience),
            (10, 64, 50, 3)
        );
        assert_eq!(p.dropout, 0.2);
        assert_eq!(t.lr, 4e-3);
        assert_eq!(t.lr_schedule, "cosine:10%".parse().unwrap());
        assert_eq!((t.betas, t.weight_decay, t.seed), ((0.9, 0.999), 0.0, 0));
        assert!(p.windows && p.tied_output && p.sampled.is_none() && !p.ranking.sampled);
        assert_eq!(p.objective, SeqObjective::NextItem);
        let f = FineTuneTrainConfig::new();
        assert_eq!(
            (f.train.epochs, f.train.batch_size, f.train.max_len),
            (4, 64, 50)
        );
        assert_eq!(f.train.lr, 5e-3);
        assert_eq!(f.train.lr_schedule, LrSchedule::Constant);
        assert_eq!(f.loss, FineTuneLoss::Softmax);
        assert!(f.ranking.sampled);
        let r = RankingOptions::new();
        assert_eq!(
            (r.ks, r.exclude_history, r.batch_size, r.seed),
            (vec![5, 10, 20], true, 256, 0)
        );
    }
}
