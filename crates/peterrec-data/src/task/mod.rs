//! Fine-tuning tasks: a user's item sequence mapped to a label.
//!
//! A [`Task`] holds train / validation / test examples split by user, so no user appears in two
//! parts. Labels are either classes (user-profile prediction) or indices into a task-specific
//! target-item list (cold-start recommendation), always dense and 0-based.
//!
//! Builders on real data:
//! - [`profile`]: ML-1M / ML-100K gender (2), age (7), occupation (21);
//! - [`cold_start`]: cross-domain cold-start recommendation from ML-1M (or ML-100K) split by genre;
//! - [`demo`]: the original PeterRec demo files.
//!
//! The synthetic data of [`crate::synthetic`] also gives a classification task.

pub mod cold_start;
pub mod demo;
pub mod profile;

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::sequence::UserSequence;
use crate::split::{split_by_user, Part, SplitConfig};
use crate::vocab::Vocab;

/// One fine-tuning example.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FineTuneExample {
    /// External user id (examples of one user are always in the same split part).
    pub user: String,
    /// Source item indices (pretraining vocabulary), oldest first, no padding, no CLS.
    pub seq: Vec<u32>,
    /// Class id, or target-item index in the task's target list (0-based, no reserved tokens).
    pub label: u32,
}

/// What a task's labels mean.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskKind {
    /// User classification (e.g. gender); one example per user.
    Classification {
        /// Number of classes.
        num_classes: usize,
        /// Class names, by label.
        class_names: Vec<String>,
    },
    /// Recommendation of items of a target domain; one example per (user, target item).
    TargetItems {
        /// Number of target items.
        num_targets: usize,
        /// External ids of the target items, by label.
        target_names: Vec<String>,
    },
}

/// A fine-tuning task with a user-level train / validation / test split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Task name (e.g. `ml-1m-gender`).
    pub name: String,
    /// Label space.
    pub kind: TaskKind,
    /// Training examples.
    pub train: Vec<FineTuneExample>,
    /// Validation examples.
    pub valid: Vec<FineTuneExample>,
    /// Test examples.
    pub test: Vec<FineTuneExample>,
}

/// The most frequent training label and how often it is right.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MajorityClass {
    /// The most frequent label in `train` (ties: the smallest label).
    pub label: u32,
    /// Its share of the training examples.
    pub train_share: f64,
    /// Accuracy of always predicting it on `test` (0 when `test` is empty).
    pub test_accuracy: f64,
}

/// What a task builder returns: the pretraining data, its vocabulary and the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskBundle {
    /// Vocabulary of the pretraining data; the task's sequences are encoded with it.
    pub vocab: Vocab,
    /// Pretraining sequences.
    pub pretrain: Vec<UserSequence>,
    /// The fine-tuning task.
    pub task: Task,
    /// Fine-tuning items that were not in `vocab` (replaced by UNK or dropped).
    pub unseen: usize,
}

impl TaskKind {
    /// Number of classes or target items.
    pub fn num_outputs(&self) -> usize {
        match self {
            TaskKind::Classification { num_classes, .. } => *num_classes,
            TaskKind::TargetItems { num_targets, .. } => *num_targets,
        }
    }

    /// Name of a label.
    pub fn label_name(&self, label: u32) -> Option<&str> {
        let names = match self {
            TaskKind::Classification { class_names, .. } => class_names,
            TaskKind::TargetItems { target_names, .. } => target_names,
        };
        names.get(label as usize).map(String::as_str)
    }
}

impl Task {
    /// Builds a task by splitting `examples` by user with `split`, then checks it.
    pub fn from_examples(
        name: impl Into<String>,
        kind: TaskKind,
        examples: Vec<FineTuneExample>,
        split: &SplitConfig,
    ) -> Result<Task> {
        let parts = split_by_user(examples, |e| e.user.as_str(), split)?;
        let task = Task {
            name: name.into(),
            kind,
            train: parts.train,
            valid: parts.valid,
            test: parts.test,
        };
        task.validate()?;
        Ok(task)
    }

    /// Number of classes or target items: the size of the output layer.
    pub fn num_outputs(&self) -> usize {
        self.kind.num_outputs()
    }

    /// Examples of one part.
    pub fn part(&self, part: Part) -> &[FineTuneExample] {
        match part {
            Part::Train => &self.train,
            Part::Valid => &self.valid,
            Part::Test => &self.test,
        }
    }

    /// Total number of examples.
    pub fn num_examples(&self) -> usize {
        self.train.len() + self.valid.len() + self.test.len()
    }

    /// Distinct users of one part.
    pub fn users(&self, part: Part) -> HashSet<&str> {
        self.part(part).iter().map(|e| e.user.as_str()).collect()
    }

    /// How many examples of `part` have each label (length [`Task::num_outputs`]).
    pub fn label_counts(&self, part: Part) -> Vec<usize> {
        let mut counts = vec![0; self.num_outputs()];
        for e in self.part(part) {
            if let Some(c) = counts.get_mut(e.label as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// The majority-class baseline; `None` when there is no training example.
    pub fn majority_class(&self) -> Option<MajorityClass> {
        let counts = self.label_counts(Part::Train);
        let (label, &count) = counts
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))?;
        if count == 0 {
            return None;
        }
        let label = label as u32;
        let hits = self.test.iter().filter(|e| e.label == label).count();
        Some(MajorityClass {
            label,
            train_share: count as f64 / self.train.len() as f64,
            test_accuracy: if self.test.is_empty() {
                0.0
            } else {
                hits as f64 / self.test.len() as f64
            },
        })
    }

    /// Checks labels are in range, sequences are non-empty, the label names match the label
    /// count and no user is in two parts.
    pub fn validate(&self) -> Result<()> {
        let n = self.num_outputs();
        let names = match &self.kind {
            TaskKind::Classification { class_names, .. } => class_names.len(),
            TaskKind::TargetItems { target_names, .. } => target_names.len(),
        };
        if names != n {
            return Err(DataError::Inconsistent(format!(
                "task {}: {n} outputs but {names} label names",
                self.name
            )));
        }
        for part in [Part::Train, Part::Valid, Part::Test] {
            for e in self.part(part) {
                if e.label as usize >= n {
                    return Err(DataError::Inconsistent(format!(
                        "task {}: user {} has label {} but there are only {n} outputs",
                        self.name, e.user, e.label
                    )));
                }
                if e.seq.is_empty() {
                    return Err(DataError::Inconsistent(format!(
                        "task {}: user {} has an empty sequence",
                        self.name, e.user
                    )));
                }
            }
        }
        let (tr, va, te) = (
            self.users(Part::Train),
            self.users(Part::Valid),
            self.users(Part::Test),
        );
        if !tr.is_disjoint(&va) || !tr.is_disjoint(&te) || !va.is_disjoint(&te) {
            return Err(DataError::Inconsistent(format!(
                "task {}: a user appears in two split parts",
                self.name
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(user: &str, label: u32) -> FineTuneExample {
        FineTuneExample {
            user: user.into(),
            seq: vec![4, 5],
            label,
        }
    }

    #[test]
    fn majority_and_counts() {
        let task = Task {
            name: "t".into(),
            kind: TaskKind::Classification {
                num_classes: 3,
                class_names: vec!["a".into(), "b".into(), "c".into()],
            },
            train: vec![ex("1", 1), ex("2", 1), ex("3", 0), ex("4", 2)],
            valid: vec![],
            test: vec![ex("5", 1), ex("6", 0)],
        };
        task.validate().unwrap();
        assert_eq!(task.num_outputs(), 3);
        assert_eq!(task.label_counts(Part::Train), vec![1, 2, 1]);
        let m = task.majority_class().unwrap();
        assert_eq!(m.label, 1);
        assert!((m.train_share - 0.5).abs() < 1e-12);
        assert!((m.test_accuracy - 0.5).abs() < 1e-12);
        assert_eq!(task.kind.label_name(2), Some("c"));

        let mut bad = task.clone();
        bad.test.push(ex("1", 0));
        assert!(bad.validate().is_err(), "user 1 in train and test");
        let mut bad = task.clone();
        bad.train.push(ex("9", 3));
        assert!(bad.validate().is_err(), "label out of range");
    }
}
