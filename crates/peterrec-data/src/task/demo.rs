//! The original PeterRec demo pair as a task.
//!
//! The pretraining file gives the pretraining sequences and the vocabulary; the fine-tuning file
//! gives one example per target (`seq,,t1,t2` is two examples). The files have no user ids, so a
//! user is named by its 1-based line number. Targets form their own label space (order of first
//! appearance in the fine-tuning file); fine-tuning sequences are encoded with the pretraining
//! vocabulary and the configured [`UnseenPolicy`].

use burn::config::Config;
use std::collections::HashMap;
use std::path::Path;

use super::{FineTuneExample, Task, TaskBundle, TaskKind};
use crate::error::Result;
use crate::readers::peterrec::{read_finetune_file, read_pretrain_file};
use crate::sequence::UserSequence;
use crate::split::SplitConfig;
use crate::vocab::{UnseenPolicy, Vocab};

/// File name of the demo pretraining data.
pub const DEMO_PRETRAIN_FILE: &str = "history_sequences_20181014_fajie_transfer_pretrain_small.csv";
/// File name of the demo fine-tuning data.
pub const DEMO_FINETUNE_FILE: &str = "history_sequences_20181014_fajie_transfer_finetune_small.csv";

/// Options of a PeterRec-files task.
#[derive(Config, Debug, Copy, PartialEq)]
pub struct DemoTaskConfig {
    /// User-level split. Default: [`SplitConfig::new`] (70/3/27, seed 42).
    #[config(default = "SplitConfig::new()")]
    pub split: SplitConfig,
    /// Policy for fine-tuning items missing from the pretraining vocabulary. Default:
    /// `UnseenPolicy::default()`.
    #[config(default = "UnseenPolicy::default()")]
    pub policy: UnseenPolicy,
}

impl Default for DemoTaskConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds a task from a PeterRec pretraining file and fine-tuning file.
pub fn peterrec_task(
    name: &str,
    pretrain: impl AsRef<Path>,
    finetune: impl AsRef<Path>,
    cfg: &DemoTaskConfig,
) -> Result<TaskBundle> {
    let pre = read_pretrain_file(pretrain)?;
    let vocab = Vocab::from_sequences(pre.iter().map(|s| s.items.iter().map(String::as_str)));
    let pretrain: Vec<UserSequence> = pre
        .iter()
        .map(|s| UserSequence {
            user: s.line.to_string(),
            items: vocab
                .encode(s.items.iter().map(String::as_str), UnseenPolicy::Unk)
                .ids,
        })
        .collect();

    let ft = read_finetune_file(finetune)?;
    let mut target_names: Vec<String> = Vec::new();
    let mut label_of: HashMap<String, u32> = HashMap::new();
    let mut examples = Vec::new();
    let mut unseen = 0;
    for line in &ft {
        let enc = vocab.encode(line.items.iter().map(String::as_str), cfg.policy);
        unseen += enc.unseen;
        if enc.ids.is_empty() {
            continue;
        }
        for t in &line.targets {
            let label = *label_of.entry(t.clone()).or_insert_with(|| {
                target_names.push(t.clone());
                (target_names.len() - 1) as u32
            });
            examples.push(FineTuneExample {
                user: line.line.to_string(),
                seq: enc.ids.clone(),
                label,
            });
        }
    }
    let task = Task::from_examples(
        name,
        TaskKind::TargetItems {
            num_targets: target_names.len(),
            target_names,
        },
        examples,
        &cfg.split,
    )?;
    Ok(TaskBundle {
        vocab,
        pretrain,
        task,
        unseen,
    })
}

/// Builds the demo task from a directory holding [`DEMO_PRETRAIN_FILE`] and
/// [`DEMO_FINETUNE_FILE`] (e.g. `$PETERREC_DATA/peterrec-demo`).
pub fn peterrec_demo(dir: impl AsRef<Path>, cfg: &DemoTaskConfig) -> Result<TaskBundle> {
    let dir = dir.as_ref();
    peterrec_task(
        "peterrec-demo",
        dir.join(DEMO_PRETRAIN_FILE),
        dir.join(DEMO_FINETUNE_FILE),
        cfg,
    )
}
