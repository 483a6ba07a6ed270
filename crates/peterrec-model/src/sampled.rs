//! Negative sampling for the sampled-softmax pretraining head; the draws and their
//! probabilities are [`ItemSampler`]'s.

use peterrec_data::sampler::ItemSampler;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The distribution negatives are drawn from (with replacement, shared by a whole batch).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum NegativeDistribution {
    /// Every item equally likely.
    Uniform,
    /// Zipf-like over the item index, `Q(r) = ln((r+2)/(r+1)) / ln(N+1)` for the `r`-th item:
    /// meaningful when item indices are ordered by decreasing popularity.
    LogUniform,
}

/// Draws the shared negatives of a sampled-softmax step over the item range
/// `first_item..num_tokens`, and gives the `log Q` correction of any candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NegativeSampler {
    /// Negatives per batch.
    pub num_negatives: usize,
    /// Their distribution.
    pub distribution: NegativeDistribution,
    /// First item index (indices below are reserved tokens and never drawn).
    pub first_item: u32,
    /// One past the last item index.
    pub num_tokens: u32,
}

impl NegativeSampler {
    fn num_items(&self) -> u32 {
        self.num_tokens.saturating_sub(self.first_item).max(1)
    }

    /// The sampler of the item range (at least one item).
    fn items(&self) -> ItemSampler {
        let range = self.first_item..self.first_item.saturating_add(self.num_items());
        match self.distribution {
            NegativeDistribution::Uniform => ItemSampler::uniform(range),
            NegativeDistribution::LogUniform => ItemSampler::log_uniform(range),
        }
        .expect("the item range is not empty")
    }

    /// Probability of drawing `item` in one draw. A token outside the item range (a reserved
    /// token, say) is given the probability of the range's nearest item.
    pub fn probability(&self, item: u32) -> f64 {
        let items = self.items();
        let range = items.range();
        items.probability(item.clamp(range.start, range.end - 1))
    }

    /// `log Q(item)`: the log of the expected number of draws of `item` in one batch.
    pub fn log_q(&self, item: u32) -> f32 {
        ((self.num_negatives as f64) * self.probability(item)).ln() as f32
    }

    /// Draws `num_negatives` items, with replacement.
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> Vec<u32> {
        self.items().sample(self.num_negatives, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn probabilities_sum_to_one_and_draws_stay_in_range() {
        for distribution in [
            NegativeDistribution::Uniform,
            NegativeDistribution::LogUniform,
        ] {
            let s = NegativeSampler {
                num_negatives: 500,
                distribution,
                first_item: 4,
                num_tokens: 104,
            };
            let total: f64 = (4..104).map(|i| s.probability(i)).sum();
            assert!((total - 1.0).abs() < 1e-9, "{distribution:?}: {total}");
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let draws = s.sample(&mut rng);
            assert_eq!(draws.len(), 500);
            assert!(draws.iter().all(|&d| (4..104).contains(&d)));
            if distribution == NegativeDistribution::LogUniform {
                let low = draws.iter().filter(|&&d| d < 14).count();
                // Q(first 10 items) = ln 11 / ln 101 = 0.52.
                assert!((200..320).contains(&low), "{low}");
            }
        }
    }
}
