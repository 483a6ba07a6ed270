//! Synthetic sequences with planted structure, for the quickstart and fast tests.
//!
//! There are `num_types` user types. Each type has its own first-order Markov chain over the
//! items: every item has `branching` type-specific successors, and each type starts from its own
//! subset of items. A user of type `t` starts at one of `t`'s start items, then at every step
//! moves to a uniformly chosen successor of the current item under `t`'s chain, or, with
//! probability `noise`, to a uniformly random item. With `affinity > 0` the catalogue is cut into
//! `num_types` equal regions and each successor of a type's chain is drawn from that type's own
//! region with probability `affinity` (users of a type favour "their" items, as real user groups
//! favour genres). The type is the user's profile label, so both next-item prediction and user
//! classification are learnable, and everything is a function of the seed.
//!
//! Items are named `i0`, `i1`, … and get vocabulary indices `NUM_RESERVED + k` for `ik`;
//! users are named `u0`, `u1`, ….

use burn::config::Config;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};
pub use crate::sequence::UserSequence;
use crate::split::SplitConfig;
use crate::task::{FineTuneExample, Task, TaskKind};
use crate::vocab::{Vocab, NUM_RESERVED};

/// Parameters of [`generate`].
#[derive(Config, Debug, Copy, PartialEq)]
pub struct SyntheticConfig {
    /// Number of users (sequences). Default 1,000.
    #[config(default = 1000)]
    pub num_users: usize,
    /// Number of items. Default 200.
    #[config(default = 200)]
    pub num_items: usize,
    /// Number of user types (classes of the profile task). Default 4.
    #[config(default = 4)]
    pub num_types: usize,
    /// Shortest sequence length. Default 10.
    #[config(default = 10)]
    pub min_len: usize,
    /// Longest sequence length (inclusive). Default 30.
    #[config(default = 30)]
    pub max_len: usize,
    /// Successors per item in each type's chain. Default 3.
    #[config(default = 3)]
    pub branching: usize,
    /// Probability of a uniformly random next item instead of a chain step. Default 0.1.
    #[config(default = 0.1)]
    pub noise: f64,
    /// Probability that a chain successor is drawn from the type's own region of the catalogue
    /// (0: from the whole catalogue). Default 0.
    #[config(default = 0.0)]
    pub affinity: f64,
    /// Random seed. Default 42.
    #[config(default = 42)]
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl SyntheticConfig {
    /// Generates the data set these parameters describe ([`try_generate`]).
    pub fn generate(&self) -> Result<SyntheticData> {
        try_generate(self)
    }

    /// Sets the number of users.
    pub fn with_users(mut self, n: usize) -> Self {
        self.num_users = n;
        self
    }
    /// Sets the number of items.
    pub fn with_items(mut self, n: usize) -> Self {
        self.num_items = n;
        self
    }
    /// Sets the number of user types.
    pub fn with_types(mut self, n: usize) -> Self {
        self.num_types = n;
        self
    }
    /// Sets the sequence length range (inclusive).
    pub fn with_lengths(mut self, min_len: usize, max_len: usize) -> Self {
        self.min_len = min_len;
        self.max_len = max_len;
        self
    }

    /// Checks the parameters are consistent.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(DataError::InvalidConfig(format!("synthetic: {m}")));
        if self.num_items < 2 {
            return bad(format!("num_items {} must be at least 2", self.num_items));
        }
        if self.num_items as u64 + u64::from(NUM_RESERVED) > u64::from(u32::MAX) {
            return bad(format!("num_items {} does not fit in u32", self.num_items));
        }
        if self.num_types == 0 {
            return bad("num_types must be at least 1".into());
        }
        if self.min_len == 0 || self.min_len > self.max_len {
            return bad(format!(
                "lengths {}..={} must satisfy 1 <= min_len <= max_len",
                self.min_len, self.max_len
            ));
        }
        if self.branching == 0 || self.branching > self.num_items {
            return bad(format!(
                "branching {} must be in 1..={}",
                self.branching, self.num_items
            ));
        }
        if !(0.0..=1.0).contains(&self.affinity) {
            return bad(format!("affinity {} must be in [0, 1]", self.affinity));
        }
        if !(0.0..=1.0).contains(&self.noise) {
            return bad(format!("noise {} must be in [0, 1]", self.noise));
        }
        Ok(())
    }
}

/// Generated data: vocabulary, sequences and each user's type.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticData {
    /// The configuration used.
    pub config: SyntheticConfig,
    /// Items `i0..`, at indices `NUM_RESERVED..`.
    pub vocab: Vocab,
    /// One sequence per user (`u0..`), item indices.
    pub sequences: Vec<UserSequence>,
    /// The type (profile label) of each user, aligned with `sequences`.
    pub labels: Vec<u32>,
    successors: Vec<Vec<Vec<u32>>>,
}

/// Generates synthetic data; see the [module docs](self).
///
/// # Panics
/// If `cfg` is invalid (see [`SyntheticConfig::validate`]); use [`try_generate`] to get an
/// error instead.
pub fn generate(cfg: &SyntheticConfig) -> SyntheticData {
    match try_generate(cfg) {
        Ok(data) => data,
        Err(e) => panic!("{e}"),
    }
}

/// Generates synthetic data, or returns [`DataError::InvalidConfig`] for an invalid `cfg`.
pub fn try_generate(cfg: &SyntheticConfig) -> Result<SyntheticData> {
    cfg.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let n = cfg.num_items;
    let mut vocab = Vocab::new();
    for k in 0..n {
        vocab.insert(&format!("i{k}"));
    }
    let all: Vec<u32> = (0..n as u32).map(|k| k + NUM_RESERVED).collect();
    let mut pool = all.clone();
    let mut successors = Vec::with_capacity(cfg.num_types);
    let mut starts = Vec::with_capacity(cfg.num_types);
    for t in 0..cfg.num_types {
        let region =
            (t * n / cfg.num_types)..((t + 1) * n / cfg.num_types).max(t * n / cfg.num_types + 1);
        let chain: Vec<Vec<u32>> = (0..n)
            .map(|_| {
                let (chosen, _) = pool.partial_shuffle(&mut rng, cfg.branching);
                let mut chosen = chosen.to_vec();
                if cfg.affinity > 0.0 {
                    for c in chosen.iter_mut() {
                        if rng.random::<f64>() < cfg.affinity {
                            *c = all[rng.random_range(region.clone())];
                        }
                    }
                }
                chosen
            })
            .collect();
        successors.push(chain);
        let (s, _) = pool.partial_shuffle(&mut rng, (n / cfg.num_types).max(1));
        starts.push(s.to_vec());
    }
    let mut sequences = Vec::with_capacity(cfg.num_users);
    let mut labels = Vec::with_capacity(cfg.num_users);
    for u in 0..cfg.num_users {
        let t = rng.random_range(0..cfg.num_types);
        let len = rng.random_range(cfg.min_len..=cfg.max_len);
        let mut items = Vec::with_capacity(len);
        let mut cur = starts[t][rng.random_range(0..starts[t].len())];
        items.push(cur);
        while items.len() < len {
            cur = if rng.random::<f64>() < cfg.noise {
                all[rng.random_range(0..n)]
            } else {
                let next = &successors[t][(cur - NUM_RESERVED) as usize];
                next[rng.random_range(0..next.len())]
            };
            items.push(cur);
        }
        sequences.push(UserSequence {
            user: format!("u{u}"),
            items,
        });
        labels.push(t as u32);
    }
    Ok(SyntheticData {
        config: *cfg,
        vocab,
        sequences,
        labels,
        successors,
    })
}

impl SyntheticData {
    /// The successors of item index `item` in the chain of type `user_type` (empty if either is
    /// out of range).
    pub fn successors(&self, user_type: usize, item: u32) -> &[u32] {
        item.checked_sub(NUM_RESERVED)
            .and_then(|k| self.successors.get(user_type)?.get(k as usize))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Classification task "predict the user type", split by user with `split`.
    pub fn classification_task(&self, split: &SplitConfig) -> Result<Task> {
        let examples = self
            .sequences
            .iter()
            .zip(&self.labels)
            .map(|(s, &label)| FineTuneExample {
                user: s.user.clone(),
                seq: s.items.clone(),
                label,
            })
            .collect();
        Task::from_examples(
            "synthetic-types",
            TaskKind::Classification {
                num_classes: self.config.num_types,
                class_names: (0..self.config.num_types)
                    .map(|t| format!("type{t}"))
                    .collect(),
            },
            examples,
            split,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_seed_dependent() {
        let cfg = SyntheticConfig::default().with_users(200);
        let a = generate(&cfg);
        let b = generate(&cfg);
        assert_eq!(a, b);
        let c = generate(&cfg.with_seed(43));
        assert_ne!(a.sequences, c.sequences);
    }

    #[test]
    fn shapes_and_planted_chains() {
        let cfg = SyntheticConfig::default().with_noise(0.1);
        let d = generate(&cfg);
        assert_eq!(d.vocab.len(), 204);
        assert_eq!(d.vocab.get("i0"), Some(NUM_RESERVED));
        assert_eq!(d.sequences.len(), 1000);
        assert_eq!(d.labels.len(), 1000);
        assert!(d.labels.iter().all(|&l| l < 4));
        let (mut follow, mut steps) = (0usize, 0usize);
        for (s, &t) in d.sequences.iter().zip(&d.labels) {
            assert!((10..=30).contains(&s.items.len()));
            assert!(s.items.iter().all(|&i| d.vocab.is_item(i)));
            for w in s.items.windows(2) {
                steps += 1;
                if d.successors(t as usize, w[0]).contains(&w[1]) {
                    follow += 1;
                }
            }
        }
        // 90% chain steps, plus noise steps that hit a successor by chance (3/200).
        let rate = follow as f64 / steps as f64;
        assert!((rate - 0.9015).abs() < 0.02, "{rate}");
        let task = d.classification_task(&SplitConfig::default()).unwrap();
        assert_eq!(task.num_outputs(), 4);
        assert_eq!(
            (task.train.len(), task.valid.len(), task.test.len()),
            (700, 30, 270)
        );
    }

    #[test]
    fn invalid_configs_are_errors() {
        let base = SyntheticConfig::default();
        for cfg in [
            base.with_items(1),
            base.with_types(0),
            base.with_lengths(0, 3),
            base.with_lengths(5, 3),
            base.with_branching(0),
            base.with_branching(1000),
            base.with_noise(1.5),
        ] {
            assert!(try_generate(&cfg).is_err(), "{cfg:?}");
        }
    }
}
