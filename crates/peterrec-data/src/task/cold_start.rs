//! Cold-start cross-domain recommendation built from one MovieLens data set.
//!
//! # Domain rule
//!
//! A movie belongs to the **target domain** when at least one of its genres is in
//! [`ColdStartConfig::target_genres`] (default: `Animation` or `Children's`); every other movie
//! is in the **source domain**. On ML-1M the default rule puts 271 rated movies and 82,006
//! ratings (by 5,415 users) in the target domain; with the default `min_source_len` of 5 the
//! task has 81,898 examples from 5,413 users, and 6,038 users have pretraining sequences.
//!
//! # Data
//!
//! - Pretraining sequences hold source-domain items only: each user's chronological source
//!   history (users with at least `min_source_len` source items). The vocabulary is built from
//!   them, so no target item has an index in it.
//! - Fine-tuning: for each such user and each distinct target movie the user rated (in order of
//!   first rating), one example `(whole source sequence → target)`. Target labels index the
//!   target movies rated by these users, sorted by movie id; `target_names` are the movie ids.
//! - The split is by user, so a test user's target items never appear in training examples.

use burn::config::Config;
use std::collections::{BTreeSet, HashMap, HashSet};

use super::{FineTuneExample, Task, TaskBundle, TaskKind};
use crate::error::{DataError, Result};
use crate::movielens::{histories_to_sequences, MovieLens};
use crate::readers::movielens::Movie;
use crate::split::SplitConfig;

/// Options of the cold-start task.
#[derive(Config, Debug, PartialEq)]
pub struct ColdStartConfig {
    /// A movie with any of these genres is in the target domain. Default: `Animation` and
    /// `Children's`.
    #[config(default = "vec![\"Animation\".into(), \"Children's\".into()]")]
    pub target_genres: Vec<String>,
    /// Users with fewer source-domain items are left out (of pretraining and of the task).
    /// Default 5.
    #[config(default = 5)]
    pub min_source_len: usize,
    /// User-level split. Default: [`SplitConfig::new`] (70/3/27, seed 42).
    #[config(default = "SplitConfig::new()")]
    pub split: SplitConfig,
}

impl Default for ColdStartConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// A set of ids: a bitmap when the ids are small (fast even in unoptimized builds), a hash
/// set otherwise.
enum IdSet {
    Dense(Vec<bool>),
    Sparse(HashSet<u32>),
}

impl IdSet {
    fn new(ids: impl Iterator<Item = u32>) -> Self {
        let ids: Vec<u32> = ids.collect();
        let max = ids.iter().copied().max().unwrap_or(0) as usize;
        if max < 1 << 24 {
            let mut bits = vec![false; max + 1];
            for id in ids {
                bits[id as usize] = true;
            }
            IdSet::Dense(bits)
        } else {
            IdSet::Sparse(ids.into_iter().collect())
        }
    }

    fn contains(&self, id: u32) -> bool {
        match self {
            IdSet::Dense(bits) => bits.get(id as usize).copied().unwrap_or(false),
            IdSet::Sparse(set) => set.contains(&id),
        }
    }
}

/// `true` when `movie` is in the target domain of `target_genres`.
pub fn is_target(movie: &Movie, target_genres: &[String]) -> bool {
    movie.genres.iter().any(|g| target_genres.contains(g))
}

/// Builds the cold-start bundle (source-only pretraining data, vocabulary, task).
pub fn cold_start_task(ml: &MovieLens, cfg: &ColdStartConfig) -> Result<TaskBundle> {
    let known: HashSet<&str> = ml
        .movies()
        .iter()
        .flat_map(|m| m.genres.iter().map(String::as_str))
        .collect();
    if cfg.target_genres.is_empty() {
        return Err(DataError::InvalidConfig(
            "cold start: no target genre given".into(),
        ));
    }
    for g in &cfg.target_genres {
        if !known.contains(g.as_str()) {
            return Err(DataError::InvalidConfig(format!(
                "cold start: genre {g:?} does not occur in {} (genres: {:?})",
                ml.name(),
                known.iter().collect::<BTreeSet<_>>()
            )));
        }
    }
    let target = IdSet::new(
        ml.movies()
            .iter()
            .filter(|m| is_target(m, &cfg.target_genres))
            .map(|m| m.id),
    );

    let (vocab, pretrain) = histories_to_sequences(
        ml.histories_where(|m| !target.contains(m)),
        cfg.min_source_len.max(1),
    );
    let source: HashMap<&str, &[u32]> = pretrain
        .iter()
        .map(|s| (s.user.as_str(), s.items.as_slice()))
        .collect();

    // Distinct target movies per eligible user, in order of first rating.
    let mut per_user: Vec<(String, Vec<u32>)> = Vec::new();
    for (user, items) in ml.histories_where(|m| target.contains(m)) {
        let user = user.to_string();
        if !source.contains_key(user.as_str()) {
            continue;
        }
        let mut seen = HashSet::new();
        let distinct: Vec<u32> = items.into_iter().filter(|m| seen.insert(*m)).collect();
        per_user.push((user, distinct));
    }
    let target_ids: BTreeSet<u32> = per_user
        .iter()
        .flat_map(|(_, t)| t.iter().copied())
        .collect();
    if target_ids.is_empty() {
        return Err(DataError::InvalidConfig(format!(
            "cold start: no eligible user rated a movie of genres {:?}",
            cfg.target_genres
        )));
    }
    let label_of: HashMap<u32, u32> = target_ids
        .iter()
        .enumerate()
        .map(|(k, &m)| (m, k as u32))
        .collect();
    let mut examples = Vec::new();
    for (user, targets) in per_user {
        let seq = source.get(user.as_str()).copied().unwrap_or_default();
        for m in targets {
            if let Some(&label) = label_of.get(&m) {
                examples.push(FineTuneExample {
                    user: user.clone(),
                    seq: seq.to_vec(),
                    label,
                });
            }
        }
    }
    let task = Task::from_examples(
        format!("{}-cold-start", ml.name()),
        TaskKind::TargetItems {
            num_targets: target_ids.len(),
            target_names: target_ids.iter().map(u32::to_string).collect(),
        },
        examples,
        &cfg.split,
    )?;
    Ok(TaskBundle {
        vocab,
        pretrain,
        task,
        unseen: 0,
    })
}
