//! Train / validation / test splits.
//!
//! - [`leave_one_out`]: for next-item recommendation, each user's last item is the test target,
//!   the second-to-last the validation target, and the rest is training data.
//! - [`split_by_user`]: for fine-tuning tasks, a seeded split of *users* (default 70% / 3% / 27%
//!   as in the PeterRec paper), so that all examples of one user land in the same part.

use burn::config::Config;
use std::collections::{BTreeSet, HashMap};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::sequence::UserSequence;

/// Fractions and seed of a user-level split; the test fraction is `1 - train - valid`.
#[derive(Config, Debug, Copy, PartialEq)]
pub struct SplitConfig {
    /// Fraction of users for training. Default 0.70.
    #[config(default = 0.70)]
    pub train: f64,
    /// Fraction of users for validation. Default 0.03 (the test fraction is then 0.27).
    #[config(default = 0.03)]
    pub valid: f64,
    /// Seed of the user shuffle. Default 42.
    #[config(default = 42)]
    pub seed: u64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl SplitConfig {
    /// A split with the given fractions and seed.
    pub fn fractions(train: f64, valid: f64, seed: u64) -> Self {
        SplitConfig { train, valid, seed }
    }

    /// The test fraction, `1 - train - valid`.
    pub fn test(&self) -> f64 {
        1.0 - self.train - self.valid
    }

    /// Checks that the fractions are finite, non-negative and sum to at most 1.
    pub fn validate(&self) -> Result<()> {
        let ok = |x: f64| x.is_finite() && x >= 0.0;
        if !ok(self.train) || !ok(self.valid) || self.train + self.valid > 1.0 + 1e-9 {
            return Err(DataError::InvalidConfig(format!(
                "split fractions train={} valid={} must be >= 0 and sum to at most 1",
                self.train, self.valid
            )));
        }
        Ok(())
    }

    /// How many of `n` users go to (train, valid, test): rounded to nearest, test gets the rest.
    pub fn counts(&self, n: usize) -> (usize, usize, usize) {
        let n_train = ((n as f64) * self.train).round().min(n as f64) as usize;
        let n_valid = (((n as f64) * self.valid).round() as usize).min(n - n_train);
        (n_train, n_valid, n - n_train - n_valid)
    }
}

/// Which part of a split something belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Part {
    /// Training part.
    Train,
    /// Validation part.
    Valid,
    /// Test part.
    Test,
}

/// The three parts of a split.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Splits<T> {
    /// Training part.
    pub train: Vec<T>,
    /// Validation part.
    pub valid: Vec<T>,
    /// Test part.
    pub test: Vec<T>,
}

/// Assigns each distinct user to a part: users are sorted, shuffled with
/// `ChaCha8Rng::seed_from_u64(cfg.seed)`, then cut by [`SplitConfig::counts`]. The result does
/// not depend on the order in which users are given.
pub fn assign_users<'a>(
    users: impl IntoIterator<Item = &'a str>,
    cfg: &SplitConfig,
) -> Result<HashMap<String, Part>> {
    cfg.validate()?;
    let distinct: BTreeSet<&str> = users.into_iter().collect();
    let mut order: Vec<&str> = distinct.into_iter().collect();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    order.shuffle(&mut rng);
    let (n_train, n_valid, _) = cfg.counts(order.len());
    Ok(order
        .into_iter()
        .enumerate()
        .map(|(k, u)| {
            let part = if k < n_train {
                Part::Train
            } else if k < n_train + n_valid {
                Part::Valid
            } else {
                Part::Test
            };
            (u.to_string(), part)
        })
        .collect())
}

/// Splits `items` by user (all items of one user go to the same part; the input order is kept
/// within each part). See [`assign_users`].
pub fn split_by_user<T>(
    items: Vec<T>,
    user_of: impl Fn(&T) -> &str,
    cfg: &SplitConfig,
) -> Result<Splits<T>> {
    let parts = assign_users(items.iter().map(&user_of), cfg)?;
    let mut out = Splits {
        train: Vec::new(),
        valid: Vec::new(),
        test: Vec::new(),
    };
    for item in items {
        match parts.get(user_of(&item)) {
            Some(Part::Train) => out.train.push(item),
            Some(Part::Valid) => out.valid.push(item),
            _ => out.test.push(item),
        }
    }
    Ok(out)
}

/// An evaluation example of next-item recommendation: a history and the item that followed it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NextItemExample {
    /// External user id.
    pub user: String,
    /// Items before the target, oldest first.
    pub history: Vec<u32>,
    /// The held-out next item.
    pub target: u32,
}

impl NextItemExample {
    /// The history followed by the target (the sequence a model scores the last step of).
    pub fn full_sequence(&self) -> Vec<u32> {
        let mut s = self.history.clone();
        s.push(self.target);
        s
    }
}

/// Leave-one-out split for next-item recommendation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LeaveOneOut {
    /// Training sequences: each user's items without the last two.
    pub train: Vec<UserSequence>,
    /// Validation: history = training sequence, target = second-to-last item.
    pub valid: Vec<NextItemExample>,
    /// Test: history = training sequence + validation target, target = last item.
    pub test: Vec<NextItemExample>,
}

/// Leave-one-out split. Users with fewer than 3 items cannot give a training item plus two
/// targets; they are kept whole in `train` and contribute no evaluation example.
pub fn leave_one_out(sequences: &[UserSequence]) -> LeaveOneOut {
    let mut out = LeaveOneOut::default();
    for s in sequences {
        let n = s.items.len();
        if n < 3 {
            if n > 0 {
                out.train.push(s.clone());
            }
            continue;
        }
        let train = s.items[..n - 2].to_vec();
        out.valid.push(NextItemExample {
            user: s.user.clone(),
            history: train.clone(),
            target: s.items[n - 2],
        });
        out.test.push(NextItemExample {
            user: s.user.clone(),
            history: s.items[..n - 1].to_vec(),
            target: s.items[n - 1],
        });
        out.train.push(UserSequence {
            user: s.user.clone(),
            items: train,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn leave_one_out_positions_are_disjoint() {
        let seqs = vec![
            UserSequence {
                user: "a".into(),
                items: vec![4, 5, 6, 7, 8],
            },
            UserSequence {
                user: "b".into(),
                items: vec![9, 10],
            },
            UserSequence {
                user: "c".into(),
                items: vec![11, 12, 13],
            },
        ];
        let s = leave_one_out(&seqs);
        assert_eq!(s.train.len(), 3);
        assert_eq!(s.valid.len(), 2);
        assert_eq!(s.test.len(), 2);
        assert_eq!(s.train[0].items, vec![4, 5, 6]);
        assert_eq!(s.valid[0].target, 7);
        assert_eq!(s.valid[0].history, vec![4, 5, 6]);
        assert_eq!(s.test[0].target, 8);
        assert_eq!(s.test[0].history, vec![4, 5, 6, 7]);
        assert_eq!(s.train[1].items, vec![9, 10]);
        assert_eq!(s.train[2].items, vec![11]);
        for (orig, (tr, (va, te))) in [&seqs[0], &seqs[2]].iter().zip(
            [&s.train[0], &s.train[2]]
                .iter()
                .zip(s.valid.iter().zip(&s.test)),
        ) {
            // Every position of the original sequence is used exactly once.
            assert_eq!(tr.items.len() + 2, orig.items.len());
            assert_eq!(te.full_sequence(), orig.items);
            assert_eq!(va.full_sequence(), te.history);
            assert_eq!(va.history, tr.items);
        }
    }

    #[test]
    fn user_split_is_seeded_disjoint_and_complete() {
        let users: Vec<String> = (0..1000).map(|k| format!("u{k}")).collect();
        // Several examples per user.
        let items: Vec<(String, usize)> = users
            .iter()
            .flat_map(|u| (0..3).map(move |k| (u.clone(), k)))
            .collect();
        let cfg = SplitConfig::default();
        let s = split_by_user(items.clone(), |x| x.0.as_str(), &cfg).unwrap();
        let set = |v: &Vec<(String, usize)>| v.iter().map(|x| x.0.clone()).collect::<HashSet<_>>();
        let (tr, va, te) = (set(&s.train), set(&s.valid), set(&s.test));
        assert_eq!((tr.len(), va.len(), te.len()), (700, 30, 270));
        assert!(tr.is_disjoint(&va) && tr.is_disjoint(&te) && va.is_disjoint(&te));
        assert_eq!(s.train.len() + s.valid.len() + s.test.len(), items.len());

        // Same seed, same split, whatever the input order; another seed, another split.
        let mut rev = items.clone();
        rev.reverse();
        let s2 = split_by_user(rev, |x| x.0.as_str(), &cfg).unwrap();
        assert_eq!(set(&s2.test), te);
        let s3 = split_by_user(items, |x| x.0.as_str(), &cfg.with_seed(7)).unwrap();
        assert_ne!(set(&s3.test), te);
    }

    #[test]
    fn split_config_counts_and_validation() {
        let cfg = SplitConfig::default();
        assert_eq!(cfg.counts(30), (21, 1, 8));
        assert_eq!(cfg.counts(0), (0, 0, 0));
        assert!((cfg.test() - 0.27).abs() < 1e-12);
        assert_eq!(SplitConfig::fractions(1.0, 0.0, 0).counts(5), (5, 0, 0));
        assert!(SplitConfig::fractions(0.8, 0.3, 0).validate().is_err());
        assert!(SplitConfig::fractions(-0.1, 0.3, 0).validate().is_err());
        assert!(SplitConfig::fractions(f64::NAN, 0.0, 0).validate().is_err());
        assert!(assign_users(["a"], &SplitConfig::fractions(2.0, 0.0, 0)).is_err());
    }
}
