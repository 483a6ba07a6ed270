//! Negative samplers over an index range, with replacement, driven by a seeded [`ChaCha8Rng`].
//!
//! - [`UniformSampler`]: every index of the range is equally likely.
//! - [`PopularitySampler`]: an index is drawn proportionally to its count (optionally raised to
//!   a power, e.g. 0.75 as in word2vec), counts from [`item_counts`].

use std::collections::HashSet;
use std::ops::Range;

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

/// Uniform sampler over `start..end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniformSampler {
    range: Range<u32>,
}

impl UniformSampler {
    /// A sampler over `range`; errors if it is empty.
    pub fn new(range: Range<u32>) -> Result<Self> {
        if range.is_empty() {
            return Err(DataError::InvalidConfig(format!(
                "uniform sampler: empty range {range:?}"
            )));
        }
        Ok(UniformSampler { range })
    }

    /// A sampler over all items of `vocab` (`NUM_RESERVED..vocab.len()`).
    pub fn for_vocab(vocab: &Vocab) -> Result<Self> {
        Self::new(NUM_RESERVED..vocab.len() as u32)
    }

    /// The index range.
    pub fn range(&self) -> Range<u32> {
        self.range.clone()
    }

    /// `n` indices drawn uniformly from the range, with replacement.
    pub fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<u32> {
        (0..n)
            .map(|_| rng.random_range(self.range.clone()))
            .collect()
    }
}

impl NegativeSampler for UniformSampler {
    fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<u32> {
        UniformSampler::sample(self, n, rng)
    }

    fn can_draw(&self, idx: u32) -> bool {
        self.range.contains(&idx)
    }

    fn sample_excluding(&self, n: usize, exclude: &HashSet<u32>, rng: &mut ChaCha8Rng) -> Vec<u32> {
        let blocked = exclude.iter().filter(|&&i| self.can_draw(i)).count();
        let size = (self.range.end - self.range.start) as usize;
        if blocked >= size {
            return Vec::new();
        }
        if blocked * 2 > size {
            // Mostly excluded: draw from the explicit list of allowed indices.
            let allowed: Vec<u32> = self
                .range
                .clone()
                .filter(|i| !exclude.contains(i))
                .collect();
            return (0..n)
                .map(|_| allowed[rng.random_range(0..allowed.len())])
                .collect();
        }
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let i = rng.random_range(self.range.clone());
            if !exclude.contains(&i) {
                out.push(i);
            }
        }
        out
    }
}

/// Popularity sampler: index `i` of the range is drawn with probability proportional to
/// `counts[i]^power`.
#[derive(Debug, Clone, PartialEq)]
pub struct PopularitySampler {
    start: u32,
    cumulative: Vec<f64>,
}

impl PopularitySampler {
    /// Proportional to `counts[i]` over `range` (counts outside `counts` are 0).
    pub fn from_counts(counts: &[u64], range: Range<u32>) -> Result<Self> {
        Self::with_power(counts, range, 1.0)
    }

    /// Proportional to `counts[i]^power` over `range`.
    pub fn with_power(counts: &[u64], range: Range<u32>, power: f64) -> Result<Self> {
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
        Ok(PopularitySampler {
            start: range.start,
            cumulative,
        })
    }

    /// Probability of drawing `idx`.
    pub fn probability(&self, idx: u32) -> f64 {
        let Some(k) = idx.checked_sub(self.start).map(|k| k as usize) else {
            return 0.0;
        };
        let Some(&hi) = self.cumulative.get(k) else {
            return 0.0;
        };
        let lo = if k == 0 { 0.0 } else { self.cumulative[k - 1] };
        (hi - lo) / self.total()
    }

    fn total(&self) -> f64 {
        self.cumulative.last().copied().unwrap_or(0.0)
    }

    /// `n` indices drawn proportionally to their (powered) counts, with replacement.
    pub fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<u32> {
        (0..n).map(|_| self.draw(rng)).collect()
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> u32 {
        let x = rng.random::<f64>() * self.total();
        // First k with cumulative[k] > x (skips zero-count indices).
        let k = self.cumulative.partition_point(|&c| c <= x);
        self.start + k.min(self.cumulative.len() - 1) as u32
    }
}

impl NegativeSampler for PopularitySampler {
    fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<u32> {
        PopularitySampler::sample(self, n, rng)
    }

    fn can_draw(&self, idx: u32) -> bool {
        self.probability(idx) > 0.0
    }

    fn sample_excluding(&self, n: usize, exclude: &HashSet<u32>, rng: &mut ChaCha8Rng) -> Vec<u32> {
        let blocked: f64 = exclude.iter().map(|&i| self.probability(i)).sum();
        if blocked < 0.5 {
            let mut out = Vec::with_capacity(n);
            while out.len() < n {
                let i = self.draw(rng);
                if !exclude.contains(&i) {
                    out.push(i);
                }
            }
            return out;
        }
        // Mostly excluded: rebuild the distribution without the excluded indices.
        let end = self.start + self.cumulative.len() as u32;
        let mut prev = 0.0;
        let mut total = 0.0;
        let cumulative: Vec<f64> = (self.start..end)
            .enumerate()
            .map(|(k, i)| {
                let w = self.cumulative[k] - prev;
                prev = self.cumulative[k];
                if !exclude.contains(&i) {
                    total += w;
                }
                total
            })
            .collect();
        if total <= 0.0 {
            return Vec::new();
        }
        let reduced = PopularitySampler {
            start: self.start,
            cumulative,
        };
        reduced.sample(n, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

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
}
