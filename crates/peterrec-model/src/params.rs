//! Parameter accounting: total, trainable and per group.

use std::collections::BTreeMap;

use burn::module::Module;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::finetune::FineTuneModel;
use crate::paths::param_shapes;

/// The groups parameters are reported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamGroup {
    /// The item embedding table.
    Embeddings,
    /// Convolutions and first LayerNorms of the residual blocks.
    Blocks,
    /// Every block's second LayerNorm.
    Ln2,
    /// Model patches.
    Patches,
    /// The task (or pretraining) head.
    Head,
}

impl ParamGroup {
    /// The group of the parameter at dotted path `name`.
    pub fn of(name: &str) -> ParamGroup {
        let has = |p: &str| name.split('.').any(|s| s == p);
        if name.starts_with("head.") {
            ParamGroup::Head
        } else if has("embedding") {
            ParamGroup::Embeddings
        } else if has("mp1") || has("mp2") {
            ParamGroup::Patches
        } else if has("ln2") {
            ParamGroup::Ln2
        } else {
            ParamGroup::Blocks
        }
    }
}

/// Total and trainable counts of one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// All parameters.
    pub total: usize,
    /// Trained ones.
    pub trainable: usize,
}

/// A model's parameter table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamReport {
    /// All parameters.
    pub total: usize,
    /// Trained parameters.
    pub trainable: usize,
    /// Counts per group.
    pub groups: BTreeMap<ParamGroup, Count>,
}

impl ParamReport {
    /// Counts the parameters of `module`, calling `trainable(name)` for each.
    pub fn of_module<B: Backend, M: Module<B>>(
        module: &M,
        trainable: impl Fn(&str) -> bool,
    ) -> Self {
        let mut report = ParamReport {
            total: 0,
            trainable: 0,
            groups: BTreeMap::new(),
        };
        for (name, shape) in param_shapes(module) {
            let n: usize = shape.iter().product();
            let g = report.groups.entry(ParamGroup::of(&name)).or_default();
            g.total += n;
            report.total += n;
            if trainable(&name) {
                g.trainable += n;
                report.trainable += n;
            }
        }
        report
    }

    /// The table of a fine-tuning model under its strategy.
    pub fn of<B: Backend>(model: &FineTuneModel<B>) -> Self {
        Self::of_module(model, |n| model.is_trainable(n))
    }

    /// Count of one group (zero if absent).
    pub fn group(&self, g: ParamGroup) -> Count {
        self.groups.get(&g).copied().unwrap_or_default()
    }

    /// Patch parameters as a share of the backbone's other parameters (embeddings, blocks, LN2).
    pub fn patch_share_of_backbone(&self) -> f64 {
        let backbone: usize = [ParamGroup::Embeddings, ParamGroup::Blocks, ParamGroup::Ln2]
            .iter()
            .map(|&g| self.group(g).total)
            .sum();
        if backbone == 0 {
            0.0
        } else {
            self.group(ParamGroup::Patches).total as f64 / backbone as f64
        }
    }
}
