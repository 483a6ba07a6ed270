//! The high-level entry points: [`Pretrainer`] pretrains a backbone on users' item sequences
//! and [`FineTuner`] fine-tunes it for a task, each in one call and with the measured recipe as
//! its defaults. [`pretrain`] and [`finetune`] remain for
//! models built by hand.
//!
//! ```
//! use burn::backend::{Autodiff, NdArray};
//! use peterrec_data::synthetic::SyntheticConfig;
//! use peterrec_model::{Insertion, NextItNetConfig, Strategy};
//! use peterrec_train::{FineTuner, Pretrainer};
//!
//! type B = Autodiff<NdArray>;
//! let data = SyntheticConfig::new().with_users(60).generate().unwrap();
//! let device = Default::default();
//! let pretrained = Pretrainer::new(NextItNetConfig::new(data.vocab.len(), 8, vec![1, 2]))
//!     .with_epochs(1)
//!     .fit::<B>(&data.sequences, &device)
//!     .unwrap();
//! let task = data.classification_task(&Default::default()).unwrap();
//! let tuned = FineTuner::new(Strategy::PeterRec { insertion: Insertion::Serial })
//!     .with_epochs(1)
//!     .fit(pretrained.model.backbone, &task, &device)
//!     .unwrap();
//! assert!(tuned.report.test.headline() >= 0.0);
//! ```

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use peterrec_data::split::{leave_one_out, NextItemExample};
use peterrec_data::{Task, TaskKind, UserSequence};
use peterrec_model::{
    FineTuneConfig, FineTuneModel, HeadKind, NextItNet, NextItNetConfig, NextItNetLM, Strategy,
};

use crate::config::{FineTuneTrainConfig, PretrainConfig};
use crate::error::{Result, TrainError};
use crate::eval::{evaluate_next_item, NextItemBaselines, RankingOptions, RankingReport};
use crate::loops::{finetune, pretrain, FineTuneReport, PretrainReport};

/// Pretrains a [`NextItNet`] backbone on users' item sequences: next item at every position,
/// validated on each user's second-to-last item, keeping the best epoch.
#[derive(Debug, Clone)]
pub struct Pretrainer {
    /// The backbone to build and train.
    pub backbone: NextItNetConfig,
    /// The training settings (default [`PretrainConfig::new`], the measured recipe).
    pub config: PretrainConfig,
}

impl Pretrainer {
    /// A pretrainer for `backbone` with the default settings.
    pub fn new(backbone: NextItNetConfig) -> Self {
        Self {
            backbone,
            config: PretrainConfig::new(),
        }
    }

    /// Replaces the training settings.
    pub fn with_config(mut self, config: PretrainConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the maximum number of epochs.
    pub fn with_epochs(mut self, epochs: usize) -> Self {
        self.config.train.epochs = epochs;
        self
    }

    /// Splits `sequences` leave-last-out (each user's last item is held out for the test, the
    /// one before it validates), builds the model and trains it.
    pub fn fit<B: AutodiffBackend>(
        &self,
        sequences: &[UserSequence],
        device: &B::Device,
    ) -> Result<Pretrained<B>> {
        let split = leave_one_out(sequences);
        if split.valid.is_empty() {
            return Err(TrainError::Config(
                "no sequence has three or more items: nothing to validate or test".into(),
            ));
        }
        let lm = self.config.init_lm::<B>(&self.backbone, device)?;
        let (model, report) = pretrain(lm, &split.train, &split.valid, &self.config, device)?;
        Ok(Pretrained {
            model,
            report,
            baselines: NextItemBaselines::fit(&split.train, self.backbone.num_tokens),
            test: split.test,
            max_len: self.config.train.max_len,
        })
    }
}

/// What [`Pretrainer::fit`] returns: the kept model, its report and the held-out test targets.
#[derive(Debug)]
pub struct Pretrained<B: AutodiffBackend> {
    /// The model of the best validation epoch (backbone and pretraining head).
    pub model: NextItNetLM<B>,
    /// Epochs, validation metrics and history.
    pub report: PretrainReport,
    /// Popularity and first-order Markov baselines fitted on the same training sequences, to
    /// rank [`Self::test`] beside the model.
    pub baselines: NextItemBaselines,
    /// Each user's last item, with the history before it.
    pub test: Vec<NextItemExample>,
    max_len: usize,
}

impl<B: AutodiffBackend> Pretrained<B> {
    /// Next-item ranking on the held-out test targets: every item of the catalogue ranked,
    /// the user's history excluded, ties counted against the target, and the sampled protocols
    /// beside it when `options` asks for them (the popularity-weighted one by the training
    /// counts, unless `options` gives its own).
    pub fn test_report(&self, options: &RankingOptions, device: &B::Device) -> RankingReport {
        evaluate_next_item(
            &self.model.valid(),
            &self.test,
            self.max_len,
            &self.baselines.with_counts(options),
            device,
        )
    }

    /// The popularity and first-order Markov baselines on the same test targets and protocol
    /// as [`Self::test_report`]: `(popularity, markov)`.
    pub fn baseline_reports(&self, options: &RankingOptions) -> (RankingReport, RankingReport) {
        let options = self.baselines.with_counts(options);
        (
            self.baselines.evaluate_popularity(&self.test, &options),
            self.baselines.evaluate_markov(&self.test, &options),
        )
    }
}

/// Fine-tunes a pretrained backbone for a task with one of the strategies; the head (a
/// classifier or a target-item table) follows from the task.
#[derive(Debug, Clone)]
pub struct FineTuner {
    /// What is trained.
    pub strategy: Strategy,
    /// The model settings besides the strategy and the head: patch width and init, seed
    /// (default [`FineTuneConfig::new`]'s).
    pub bottleneck_ratio: f64,
    /// Seed of the head and patch initialisation (default 1).
    pub seed: u64,
    /// The training settings (default [`FineTuneTrainConfig::new`]).
    pub config: FineTuneTrainConfig,
}

impl FineTuner {
    /// A fine-tuner for `strategy` with the default settings.
    pub fn new(strategy: Strategy) -> Self {
        let defaults = FineTuneConfig::new(strategy, HeadKind::Classifier { outputs: 1 });
        Self {
            strategy,
            bottleneck_ratio: defaults.bottleneck_ratio,
            seed: defaults.seed,
            config: FineTuneTrainConfig::new(),
        }
    }

    /// Replaces the training settings.
    pub fn with_config(mut self, config: FineTuneTrainConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the maximum number of epochs.
    pub fn with_epochs(mut self, epochs: usize) -> Self {
        self.config.train.epochs = epochs;
        self
    }

    /// Sets the seed of the head and patch initialisation.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The model configuration this fine-tuner builds for `task`.
    pub fn model_config(&self, task: &Task) -> FineTuneConfig {
        let head = match &task.kind {
            TaskKind::Classification { num_classes, .. } => HeadKind::Classifier {
                outputs: *num_classes,
            },
            TaskKind::TargetItems { num_targets, .. } => HeadKind::TargetItems {
                outputs: *num_targets,
            },
        };
        FineTuneConfig::new(self.strategy, head)
            .with_bottleneck_ratio(self.bottleneck_ratio)
            .with_seed(self.seed)
    }

    /// Prepares `backbone` for the strategy, trains it on `task`'s training users and keeps the
    /// best validation epoch, evaluated on the test users.
    pub fn fit<B: AutodiffBackend>(
        &self,
        backbone: NextItNet<B>,
        task: &Task,
        device: &B::Device,
    ) -> Result<FineTuned<B::InnerBackend>> {
        let model = self.model_config(task).init(backbone, device)?;
        let (model, report) = finetune(model, task, &self.config, device)?;
        Ok(FineTuned { model, report })
    }
}

/// What [`FineTuner::fit`] returns.
#[derive(Debug)]
pub struct FineTuned<B: burn::tensor::backend::Backend> {
    /// The model of the best validation epoch, ready for inference; `save_task` writes what its
    /// strategy trained.
    pub model: FineTuneModel<B>,
    /// Epochs, validation and test metrics.
    pub report: FineTuneReport,
}
