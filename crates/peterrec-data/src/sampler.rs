//! Negative sampling over an index range, driven by a seeded generator: [`ItemSampler`] is the
//! one implementation of every negative peterrec draws.
//!
//! Distributions:
//!
//! - uniform ([`ItemSampler::uniform`], also [`UniformSampler`]): every index of the range is
//!   equally likely;
//! - log-uniform ([`ItemSampler::log_uniform`]): Zipf-like over the index,
//!   `Q(r) = ln((r+2)/(r+1)) / ln(N+1)` for the `r`-th index of `N`, meaningful when indices are
//!   ordered by decreasing popularity (the sampled-softmax head's option);
//! - popularity ([`ItemSampler::popularity`], also [`PopularitySampler`]): an index is drawn
//!   proportionally to its count raised to a power (e.g. 0.75 as in word2vec), counts from
//!   [`item_counts`].
//!
//! Modes, each drawing from the generator in its own fixed order (the same seed gives the same
//! draws, bit for bit):
//!
//! - [`ItemSampler::sample`]: independent draws, with replacement (the negatives of
//!   `peterrec_model`'s sampled softmax);
//! - [`ItemSampler::sample_excluding`]: with replacement, never an excluded index (e.g. the
//!   user's own items);
//! - [`ItemSampler::sample_distinct`]: without replacement, never an excluded index (the random
//!   negatives of `peterrec_train`'s sampled ranking protocol).

use std::collections::HashSet;
use std::ops::Range;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};
use crate::vocab::{Vocab, NUM_RESERVED};

/// How often each index occurs in `sequences`; the result has `num_tokens` entries (indices
/// `>= num_tokens` are ignored).
pub fn item_counts<'a>(
    sequences: impl IntoIterator<Item = &'a [u32]>,
    num_tokens: usize,
) -> Vec<u64> {
    let mut counts = vec![0u64; num_tokens];
    for s in sequences {
        for &i in s {
            if let Some(c) = counts.get_mut(i as usize) {
                *c += 1;
            }
        }
    }
    counts
}

/// A sampler of negative items.
pub trait NegativeSampler {
    /// `n` indices, drawn independently (with replacement).
    fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<u32>;

    /// `true` when `idx` can be drawn.
    fn can_draw(&self, idx: u32) -> bool;

    /// `n` indices not in `exclude` (e.g. the user's own items). Returns fewer (possibly none)
    /// only when every drawable index is excluded.
    fn sample_excluding(&self, n: usize, exclude: &HashSet<u32>, rng: &mut ChaCha8Rng) -> Vec<u32>;
}

/// The distribution of an [`ItemSampler`].
#[derive(Debug, Clone, PartialEq)]
enum Weights {
    Uniform,
    LogUniform,
    /// Cumulative (powered) counts, one per index of the range.
    Cumulative(Vec<f64>),
}

/// Draws indices of a range from a uniform, log-uniform or popularity distribution, in the
/// modes of the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemSampler {
    range: Range<u32>,
    weights: Weights,
}

impl ItemSampler {
    fn new(range: Range<u32>, weights: Weights, what: &str) -> Result<Self> {
        if range.is_empty() {
            return Err(DataError::InvalidConfig(format!(
                "{what} sampler: empty range {range:?}"
            )));
        }
        Ok(ItemSampler { range, weights })
    }

    /// Every index of `range` equally likely; errors if the range is empty.
    pub fn uniform(range: Range<u32>) -> Result<Self> {
        Self::new(range, Weights::Uniform, "uniform")
    }

    /// The `r`-th index of `range` (of `N`) with probability `ln((r+2)/(r+1)) / ln(N+1)`; errors
    /// if the range is empty.
    pub fn log_uniform(range: Range<u32>) -> Result<Self> {
        Self::new(range, Weights::LogUniform, "log-uniform")
    }

    /// Index `i` of `range` with probability proportional to `counts[i]^power` (counts outside
    /// `counts` are 0); errors if `power` is not finite and positive or every count is 0.
    pub fn popularity(counts: &[u64], range: Range<u32>, power: f64) -> Result<Self> {
        if !(power.is_finite() && power > 0.0) {
            return Err(DataError::InvalidConfig(format!(
                "popularity sampler: power {power} must be finite and positive"
            )));
        }
        let mut total = 0.0;
        let cumulative: Vec<f64> = range
            .clone()
            .map(|i| {
                let c = counts.get(i as usize).copied().unwrap_or(0) as f64;
                total += c.powf(power);
                total
            })
            .collect();
        if total <= 0.0 {
            return Err(DataError::InvalidConfig(format!(
                "popularity sampler: all counts in {range:?} are zero"
            )));
        }
        Ok(ItemSampler {
            range,
            weights: Weights::Cumulative(cumulative),
        })
    }

    /// The index range.
    pub fn range(&self) -> Range<u32> {
        self.range.clone()
    }

    /// Number of indices in the range.
    fn size(&self) -> u32 {
        self.range.end - self.range.start
    }

    /// Probability of drawing `idx` in one draw (0 outside the range).
    pub fn probability(&self, idx: u32) -> f64 {
        if !self.range.contains(&idx) {
            return 0.0;
        }
        let k = idx - self.range.start;
        let n = self.size() as f64;
        match &self.weights {
            Weights::Uniform => 1.0 / n,
            Weights::LogUniform => {
                let r = k as f64;
                ((r + 2.0) / (r + 1.0)).ln() / (n + 1.0).ln()
            }
            Weights::Cumulative(c) => {
                let k = k as usize;
                let lo = if k == 0 { 0.0 } else { c[k - 1] };
                (c[k] - lo) / total(c)
            }
        }
    }

    /// `true` when `idx` can be drawn (in the range, with a positive probability).
    pub fn can_draw(&self, idx: u32) -> bool {
        match self.weights {
            Weights::Cumulative(_) => self.probability(idx) > 0.0,
            _ => self.range.contains(&idx),
        }
    }

    /// One index.
    pub fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        match &self.weights {
            Weights::Uniform => rng.random_range(self.range.clone()),
            Weights::LogUniform => {
                let n = self.size();
                let u: f64 = rng.random();
                let r = ((n as f64 + 1.0).ln() * u).exp().floor() as u64;
                self.range.start + (r.saturating_sub(1) as u32).min(n - 1)
            }
            Weights::Cumulative(c) => {
                let x = rng.random::<f64>() * total(c);
                // First k with c[k] > x (skips zero-count indices).
                let k = c.partition_point(|&v| v <= x);
                self.range.start + k.min(c.len() - 1) as u32
            }
        }
    }

    /// One index drawn uniformly from the range without `other` (a uniform sampler's
    /// "any output but the label"): a draw from a range one shorter, stepped over `other`. A
    /// range of one index returns that index.
    ///
    /// # Panics
    /// If the sampler is not uniform.
    pub fn draw_other<R: Rng + ?Sized>(&self, other: u32, rng: &mut R) -> u32 {
        assert!(
            matches!(self.weights, Weights::Uniform),
            "draw_other needs a uniform sampler"
        );
        let n = self.size() as usize;
        let other = (other - self.range.start) as usize;
        let r = rng.random_range(0..n.max(2) - 1);
        let r = if r >= other { r + 1 } else { r }.min(n - 1);
        self.range.start + r as u32
    }

    /// `n` indices drawn independently, with replacement.
    pub fn sample<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Vec<u32> {
        (0..n).map(|_| self.draw(rng)).collect()
    }

    /// `n` indices drawn with replacement, none in `exclude`. Returns none only when every
    /// drawable index is excluded.
    ///
    /// Rejection sampling while the excluded indices are at most half the range (uniform) or
    /// of the probability (otherwise); beyond, draws from the distribution restricted to the
    /// allowed indices.
    pub fn sample_excluding<R: Rng + ?Sized>(
        &self,
        n: usize,
        exclude: &HashSet<u32>,
        rng: &mut R,
    ) -> Vec<u32> {
        let mostly_excluded = match self.weights {
            Weights::Uniform => {
                let blocked = exclude.iter().filter(|&&i| self.can_draw(i)).count();
                let size = self.size() as usize;
                if blocked >= size {
                    return Vec::new();
                }
                blocked * 2 > size
            }
            _ => {
                let blocked: f64 = exclude.iter().map(|&i| self.probability(i)).sum();
                blocked >= 0.5
            }
        };
        if !mostly_excluded {
            let mut out = Vec::with_capacity(n);
            while out.len() < n {
                let i = self.draw(rng);
                if !exclude.contains(&i) {
                    out.push(i);
                }
            }
            return out;
        }
        if let Weights::Uniform = self.weights {
            let allowed: Vec<u32> = self
                .range
                .clone()
                .filter(|i| !exclude.contains(i))
                .collect();
            return (0..n)
                .map(|_| allowed[rng.random_range(0..allowed.len())])
                .collect();
        }
        // The distribution without the excluded indices.
        let mut prev = 0.0;
        let mut total = 0.0;
        let cumulative: Vec<f64> = self
            .range
            .clone()
            .map(|i| {
                let w = match &self.weights {
                    Weights::Cumulative(c) => {
                        let k = (i - self.range.start) as usize;
                        let w = c[k] - prev;
                        prev = c[k];
                        w
                    }
                    _ => self.probability(i),
                };
                if !exclude.contains(&i) {
                    total += w;
                }
                total
            })
            .collect();
        if total <= 0.0 {
            return Vec::new();
        }
        let reduced = ItemSampler {
            range: self.range.clone(),
            weights: Weights::Cumulative(cumulative),
        };
        reduced.sample(n, rng)
    }

    /// `n` distinct indices (without replacement), none in `exclude`. When at most `n` drawable
    /// indices are not excluded, returns all of them in ascending order without drawing.
    ///
    /// Uniform: rejection sampling when `4n` is at most the number of allowed indices (expected
    /// fewer than 4/3 draws per index), otherwise a partial shuffle of the allowed indices in
    /// ascending order. Other distributions: rejection sampling (successive draws, each
    /// conditioned on the indices not drawn yet).
    pub fn sample_distinct<R: Rng + ?Sized>(
        &self,
        n: usize,
        exclude: &HashSet<u32>,
        rng: &mut R,
    ) -> Vec<u32> {
        let blocked = exclude.iter().filter(|&&i| self.can_draw(i)).count();
        let drawable = match self.weights {
            Weights::Uniform | Weights::LogUniform => self.size() as usize,
            Weights::Cumulative(_) => self.range.clone().filter(|&i| self.can_draw(i)).count(),
        };
        let eligible = drawable - blocked;
        let allowed = || {
            self.range
                .clone()
                .filter(|i| self.can_draw(*i) && !exclude.contains(i))
        };
        if eligible <= n {
            return allowed().collect();
        }
        let uniform = matches!(self.weights, Weights::Uniform);
        if !uniform || n.saturating_mul(4) <= eligible {
            let mut chosen = Vec::with_capacity(n);
            let mut seen = HashSet::with_capacity(n);
            while chosen.len() < n {
                let i = self.draw(rng);
                if !exclude.contains(&i) && seen.insert(i) {
                    chosen.push(i);
                }
            }
            chosen
        } else {
            let mut pool: Vec<u32> = allowed().collect();
            let (head, _) = pool.partial_shuffle(rng, n);
            head.to_vec()
        }
    }
}

fn total(cumulative: &[f64]) -> f64 {
    cumulative.last().copied().unwrap_or(0.0)
}

impl NegativeSampler for ItemSampler {
    fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<u32> {
        ItemSampler::sample(self, n, rng)
    }

    fn can_draw(&self, idx: u32) -> bool {
        ItemSampler::can_draw(self, idx)
    }

    fn sample_excluding(&self, n: usize, exclude: &HashSet<u32>, rng: &mut ChaCha8Rng) -> Vec<u32> {
        ItemSampler::sample_excluding(self, n, exclude, rng)
    }
}

/// Uniform sampler over `start..end`: an [`ItemSampler::uniform`].
#[derive(Debug, Clone, PartialEq)]
pub struct UniformSampler {
    inner: ItemSampler,
}

// A uniform sampler holds no floating-point weights: equality is an equivalence.
impl Eq for UniformSampler {}

impl UniformSampler {
    /// A sampler over `range`; errors if it is empty.
    pub fn new(range: Range<u32>) -> Result<Self> {
        ItemSampler::uniform(range).map(|inner| UniformSampler { inner })
    }

    /// A sampler over all items of `vocab` (`NUM_RESERVED..vocab.len()`).
    pub fn for_vocab(vocab: &Vocab) -> Result<Self> {
        Self::new(NUM_RESERVED..vocab.len() as u32)
    }

    /// The index range.
    pub fn range(&self) -> Range<u32> {
        self.inner.range()
    }

    /// `n` indices drawn uniformly from the range, with replacement.
    pub fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<u32> {
        self.inner.sample(n, rng)
    }

    /// The underlying [`ItemSampler`].
    pub fn sampler(&self) -> &ItemSampler {
        &self.inner
    }
}

impl NegativeSampler for UniformSampler {
    fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<u32> {
        self.inner.sample(n, rng)
    }

    fn can_draw(&self, idx: u32) -> bool {
        self.inner.can_draw(idx)
    }

    fn sample_excluding(&self, n: usize, exclude: &HashSet<u32>, rng: &mut ChaCha8Rng) -> Vec<u32> {
        self.inner.sample_excluding(n, exclude, rng)
    }
}

/// Popularity sampler: index `i` of the range is drawn with probability proportional to
/// `counts[i]^power` (an [`ItemSampler::popularity`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PopularitySampler {
    inner: ItemSampler,
}

impl PopularitySampler {
    /// Proportional to `counts[i]` over `range` (counts outside `counts` are 0).
    pub fn from_counts(counts: &[u64], range: Range<u32>) -> Result<Self> {
        Self::with_power(counts, range, 1.0)
    }

    /// Proportional to `counts[i]^power` over `range`.
    pub fn with_power(counts: &[u64], range: Range<u32>, power: f64) -> Result<Self> {
        ItemSampler::popularity(counts, range, power).map(|inner| PopularitySampler { inner })
    }

    /// Probability of drawing `idx`.
    pub fn probability(&self, idx: u32) -> f64 {
        self.inner.probability(idx)
    }

    /// `n` indices drawn proportionally to their (powered) counts, with replacement.
    pub fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<u32> {
        self.inner.sample(n, rng)
    }

    /// The underlying [`ItemSampler`].
    pub fn sampler(&self) -> &ItemSampler {
        &self.inner
    }
}

impl NegativeSampler for PopularitySampler {
    fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<u32> {
        self.inner.sample(n, rng)
    }

    fn can_draw(&self, idx: u32) -> bool {
        self.inner.can_draw(idx)
    }

    fn sample_excluding(&self, n: usize, exclude: &HashSet<u32>, rng: &mut ChaCha8Rng) -> Vec<u32> {
        self.inner.sample_excluding(n, exclude, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// `draw_other` draws exactly what the fine-tuning loop's inline "uniform over the other
    /// outputs" drew from the same generator, and never the label.
    #[test]
    fn draw_other_matches_the_step_over_formula_and_skips_the_label() {
        for outputs in [1usize, 2, 3, 17] {
            let sampler = ItemSampler::uniform(0..outputs as u32).unwrap();
            let mut a = rand_chacha::ChaCha8Rng::seed_from_u64(outputs as u64);
            let mut b = a.clone();
            for step in 0..200 {
                let label = step % outputs;
                let r = b.random_range(0..outputs.max(2) - 1);
                let expected = (if r >= label { r + 1 } else { r }).min(outputs - 1);
                let got = sampler.draw_other(label as u32, &mut a) as usize;
                assert_eq!(got, expected);
                if outputs > 1 {
                    assert_ne!(got, label);
                }
            }
        }
        let shifted = ItemSampler::uniform(10..13).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for _ in 0..50 {
            let v = shifted.draw_other(11, &mut rng);
            assert!(v == 10 || v == 12, "{v}");
        }
    }

    #[test]
    fn uniform_stays_in_range_and_is_seeded() {
        let s = UniformSampler::new(4..14).unwrap();
        let a = s.sample(1000, &mut ChaCha8Rng::seed_from_u64(5));
        let b = s.sample(1000, &mut ChaCha8Rng::seed_from_u64(5));
        assert_eq!(a, b);
        assert!(a.iter().all(|i| (4..14).contains(i)));
        let distinct: HashSet<u32> = a.iter().copied().collect();
        assert_eq!(distinct.len(), 10);
        assert!(UniformSampler::new(5..5).is_err());
        let ex: HashSet<u32> = (4..13).collect();
        let only = s.sample_excluding(20, &ex, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(only, vec![13; 20]);
        let few: HashSet<u32> = [4, 5].into_iter().collect();
        let rest = s.sample_excluding(200, &few, &mut ChaCha8Rng::seed_from_u64(1));
        assert!(rest.iter().all(|i| !few.contains(i)) && rest.len() == 200);
        let all: HashSet<u32> = (0..20).collect();
        assert!(s
            .sample_excluding(5, &all, &mut ChaCha8Rng::seed_from_u64(1))
            .is_empty());
    }

    #[test]
    fn popularity_follows_counts() {
        // index 4: 0, 5: 1, 6: 3 ; indices 0..4 outside the range.
        let counts = [100, 100, 100, 100, 0, 1, 3];
        let s = PopularitySampler::from_counts(&counts, 4..7).unwrap();
        assert_eq!(s.probability(4), 0.0);
        assert!((s.probability(6) - 0.75).abs() < 1e-12);
        assert_eq!(s.probability(0), 0.0);
        let draws = s.sample(20_000, &mut ChaCha8Rng::seed_from_u64(9));
        assert!(draws.iter().all(|&i| i == 5 || i == 6));
        let six = draws.iter().filter(|&&i| i == 6).count() as f64 / 20_000.0;
        assert!((six - 0.75).abs() < 0.02, "{six}");
        let ex: HashSet<u32> = [6].into_iter().collect();
        let only5 = s.sample_excluding(50, &ex, &mut ChaCha8Rng::seed_from_u64(2));
        assert_eq!(only5, vec![5; 50]);
        let both: HashSet<u32> = [5, 6].into_iter().collect();
        assert!(s
            .sample_excluding(5, &both, &mut ChaCha8Rng::seed_from_u64(2))
            .is_empty());
        assert!(PopularitySampler::from_counts(&counts, 4..5).is_err());
        assert!(PopularitySampler::with_power(&counts, 4..7, 0.0).is_err());
        let flat = PopularitySampler::with_power(&[0, 4, 16], 1..3, 0.5).unwrap();
        assert!((flat.probability(2) - 4.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn counts_from_sequences() {
        let a = [4u32, 5, 5];
        let b = [5u32, 99];
        assert_eq!(item_counts([&a[..], &b[..]], 7), vec![0, 0, 0, 0, 1, 3, 0]);
    }

    #[test]
    fn log_uniform_probabilities_and_draws() {
        let s = ItemSampler::log_uniform(4..104).unwrap();
        let total: f64 = (4..104).map(|i| s.probability(i)).sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
        assert_eq!((s.probability(3), s.probability(104)), (0.0, 0.0));
        assert!(s.probability(4) > s.probability(5));
        let draws = s.sample(2000, &mut ChaCha8Rng::seed_from_u64(3));
        assert!(draws.iter().all(|d| (4..104).contains(d)));
        // Q(first 10 items) = ln 11 / ln 101 = 0.52.
        let low = draws.iter().filter(|&&d| d < 14).count();
        assert!((900..1180).contains(&low), "{low}");
        let most: HashSet<u32> = (4..90).collect();
        let rest = s.sample_excluding(300, &most, &mut ChaCha8Rng::seed_from_u64(4));
        assert!(rest.len() == 300 && rest.iter().all(|i| (90..104).contains(i)));
        assert!(ItemSampler::log_uniform(7..7).is_err());
    }

    #[test]
    fn distinct_draws_skip_exclusions_and_repeats() {
        let ex: HashSet<u32> = [0, 1, 42, 5].into_iter().collect();
        for n in [1000, 120] {
            // 1000: rejection sampling; 120: a partial shuffle.
            let s = ItemSampler::uniform(0..n).unwrap();
            let d = s.sample_distinct(99, &ex, &mut ChaCha8Rng::seed_from_u64(7));
            let set: HashSet<u32> = d.iter().copied().collect();
            assert_eq!((d.len(), set.len()), (99, 99));
            assert!(set.is_disjoint(&ex) && d.iter().all(|&i| i < n));
            assert_eq!(
                d,
                s.sample_distinct(99, &ex, &mut ChaCha8Rng::seed_from_u64(7))
            );
        }
        let small = ItemSampler::uniform(0..6).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(small.sample_distinct(9, &ex, &mut rng), vec![2, 3, 4]);
        let counts = [0, 5, 0, 1, 9, 2];
        let pop = ItemSampler::popularity(&counts, 0..6, 1.0).unwrap();
        // Index 2 has no count: only 3 and 4 are eligible, all returned without a draw.
        assert_eq!(pop.sample_distinct(3, &ex, &mut rng), vec![3, 4]);
        for seed in 0..20 {
            let one = pop.sample_distinct(1, &ex, &mut ChaCha8Rng::seed_from_u64(seed));
            assert!(one == [3] || one == [4], "{one:?}");
        }
    }
}
