//! User-profile classification on MovieLens: predict gender, age bucket or occupation from a
//! user's chronological rating sequence (one example per user).

use burn::config::Config;

use super::{FineTuneExample, Task, TaskBundle, TaskKind};
use crate::error::{DataError, Result};
use crate::movielens::{MovieLens, ProfileAttribute};
use crate::split::SplitConfig;
use crate::vocab::{UnseenPolicy, Vocab, UNK};

/// Options of a profile task.
#[derive(Config, Debug, Copy, PartialEq)]
pub struct ProfileTaskConfig {
    /// Users with fewer items (after encoding) are left out. Default 1.
    #[config(default = 1)]
    pub min_len: usize,
    /// User-level split. Default: [`SplitConfig::new`] (70/3/27, seed 42).
    #[config(default = "SplitConfig::new()")]
    pub split: SplitConfig,
    /// Policy for items missing from the vocabulary. Default: they become `UNK`.
    #[config(default = "UnseenPolicy::Unk")]
    pub policy: UnseenPolicy,
}

impl Default for ProfileTaskConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds the profile task of `attribute` with an existing (pretraining) vocabulary.
///
/// Returns the task (named `<data set>-<attribute>`, e.g. `ml-1m-gender`) and how many items
/// were not in `vocab`.
pub fn profile_task(
    ml: &MovieLens,
    attribute: ProfileAttribute,
    vocab: &Vocab,
    cfg: &ProfileTaskConfig,
) -> Result<(Task, usize)> {
    let profiles = ml.profiles();
    let class_names = attribute.class_names(ml.variant());
    let index = ml.movie_indices(vocab);
    let mut unseen = 0;
    let mut examples = Vec::new();
    for (user, items) in ml.histories() {
        let mut seq = Vec::with_capacity(items.len());
        for m in items {
            match index.get(m).copied().flatten() {
                Some(idx) => seq.push(idx),
                None => {
                    unseen += 1;
                    if cfg.policy == UnseenPolicy::Unk {
                        seq.push(UNK);
                    }
                }
            }
        }
        if seq.len() < cfg.min_len.max(1) {
            continue;
        }
        let profile = profiles.get(user).ok_or_else(|| {
            DataError::Inconsistent(format!("user {user} has ratings but no profile"))
        })?;
        examples.push(FineTuneExample {
            user: user.to_string(),
            seq,
            label: attribute.label(profile),
        });
    }
    let task = Task::from_examples(
        format!("{}-{}", ml.name(), attribute.name()),
        TaskKind::Classification {
            num_classes: class_names.len(),
            class_names,
        },
        examples,
        &cfg.split,
    )?;
    Ok((task, unseen))
}

/// Builds pretraining data from all of `ml`'s ratings (see [`MovieLens::pretraining`]) and the
/// profile task of `attribute` on it.
pub fn profile_bundle(
    ml: &MovieLens,
    attribute: ProfileAttribute,
    cfg: &ProfileTaskConfig,
) -> Result<TaskBundle> {
    let (vocab, pretrain) = ml.pretraining(cfg.min_len);
    let (task, unseen) = profile_task(ml, attribute, &vocab, cfg)?;
    Ok(TaskBundle {
        vocab,
        pretrain,
        task,
        unseen,
    })
}
