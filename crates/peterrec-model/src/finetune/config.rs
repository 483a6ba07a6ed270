//! The fine-tuning configuration and the identity a task records of its backbone.

use burn::config::Config;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use super::{FineTuneModel, Strategy};
use crate::backbone::{NextItNet, NextItNetConfig};
use crate::error::{ModelError, Result as ModelResult};
use crate::head::HeadKind;
use crate::patch::{ModelPatchConfig, PatchInit};
use crate::persist::content_hash;

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
    /// Prepares a pretrained `backbone` for this strategy: inserts patches (PeterRec),
    /// re-initialises it (Scratch), adds the head and freezes what is not trained.
    pub fn init<B: Backend>(
        &self,
        backbone: NextItNet<B>,
        device: &B::Device,
    ) -> ModelResult<FineTuneModel<B>> {
        let backbone_config = &backbone.config().clone();
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
