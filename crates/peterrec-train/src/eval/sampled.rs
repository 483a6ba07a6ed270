//! The PeterRec/NextItNet papers' sampled ranking protocol: the positive against
//! [`SAMPLED_NEGATIVES`] (99) random negatives. It inflates every metric and is only reported
//! beside full ranking, under `sampled_` names (see [`RankingMeans::to_flat_map`]).
//!
//! [`RankingMeans::to_flat_map`]: crate::eval::RankingMeans::to_flat_map

use std::collections::HashSet;

use peterrec_data::sampler::ItemSampler;
use rand::Rng;

use super::ranking::beats;

/// Number of random negatives in the papers' sampled protocol (99 negatives + the positive).
pub const SAMPLED_NEGATIVES: usize = 99;

/// Draws `count` distinct negatives for the **sampled** protocol, uniformly without replacement
/// from `0..n_items` minus the positive, the `specials` and the user's `history`.
///
/// Deterministic for a given generator state: pass a seeded
/// [`rand_chacha::ChaCha8Rng`] for reproducible evaluation. When fewer than `count` items are
/// eligible, all of them are returned (in ascending order) and the generator is not used.
/// The draws are [`ItemSampler::sample_distinct`]'s: rejection sampling when the eligible items
/// are at least `4 count`, a partial shuffle of them otherwise.
///
/// # Panics
///
/// If `n_items` exceeds `u32::MAX` (item indices are `u32`).
pub fn sampled_negatives<R: Rng + ?Sized>(
    rng: &mut R,
    n_items: usize,
    positive: usize,
    specials: &[usize],
    history: &[usize],
    count: usize,
) -> Vec<usize> {
    let n = u32::try_from(n_items).expect("a catalogue of at most u32::MAX items");
    let excluded: HashSet<u32> = specials
        .iter()
        .chain(history)
        .chain(std::iter::once(&positive))
        .filter(|&&i| i < n_items)
        .map(|&i| i as u32)
        .collect();
    match ItemSampler::uniform(0..n) {
        Ok(items) => items
            .sample_distinct(count, &excluded, rng)
            .into_iter()
            .map(|i| i as usize)
            .collect(),
        Err(_) => Vec::new(), // no item at all
    }
}

/// Rank of `positive` among itself and the given `negatives` (the **sampled** protocol), with
/// ties counted against the positive. Returns `None` if any index is out of range of `scores`.
/// The rank lies in `1..=negatives.len() + 1`.
pub fn sampled_rank(scores: &[f32], positive: usize, negatives: &[usize]) -> Option<usize> {
    let p = *scores.get(positive)?;
    let mut above = 0;
    for &i in negatives {
        if beats(*scores.get(i)?, p) {
            above += 1;
        }
    }
    Some(above + 1)
}

/// The papers' **sampled** rank for one user: draws [`SAMPLED_NEGATIVES`] negatives with
/// [`sampled_negatives`] (never the positive, a special or a history item) and ranks the
/// positive among them with [`sampled_rank`]. Returns `None` on an empty row, an out-of-range
/// positive or a positive that is a special token.
pub fn sampled_rank_for_user<R: Rng + ?Sized>(
    rng: &mut R,
    scores: &[f32],
    positive: usize,
    specials: &[usize],
    history: &[usize],
) -> Option<usize> {
    if positive >= scores.len() || specials.contains(&positive) {
        return None;
    }
    let negatives = sampled_negatives(
        rng,
        scores.len(),
        positive,
        specials,
        history,
        SAMPLED_NEGATIVES,
    );
    sampled_rank(scores, positive, &negatives)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn sampled_negatives_respect_exclusions_and_seed() {
        let specials = [0, 1];
        let history = [5, 6, 7];
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let negs = sampled_negatives(&mut rng, 1000, 42, &specials, &history, 99);
        assert_eq!(negs.len(), 99);
        let set: HashSet<_> = negs.iter().copied().collect();
        assert_eq!(set.len(), 99);
        for bad in [0, 1, 5, 6, 7, 42] {
            assert!(!set.contains(&bad));
        }
        let mut rng2 = ChaCha8Rng::seed_from_u64(7);
        assert_eq!(
            negs,
            sampled_negatives(&mut rng2, 1000, 42, &specials, &history, 99)
        );
        // dense case (pool path)
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let negs = sampled_negatives(&mut rng, 120, 3, &specials, &history, 99);
        let set: HashSet<_> = negs.iter().copied().collect();
        assert_eq!(set.len(), 99);
        assert!(!set.contains(&3) && !set.contains(&0) && !set.contains(&6));
        // fewer eligible than asked: all of them
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(
            sampled_negatives(&mut rng, 6, 2, &[0], &[4], 99),
            vec![1, 3, 5]
        );
        assert!(sampled_negatives(&mut rng, 0, 0, &[], &[], 99).is_empty());
    }

    #[test]
    fn sampled_rank_puts_a_nan_positive_last() {
        let s = [0.5, f32::NAN, 0.2];
        assert_eq!(sampled_rank(&s, 1, &[0, 2]), Some(3));
    }

    #[test]
    fn sampled_rank_ties_against_positive() {
        let s = [0.0, 0.4, 0.4, 0.9, 0.1];
        assert_eq!(sampled_rank(&s, 1, &[2, 4]), Some(2));
        assert_eq!(sampled_rank(&s, 1, &[3, 2, 4]), Some(3));
        assert_eq!(sampled_rank(&s, 1, &[]), Some(1));
        assert_eq!(sampled_rank(&s, 1, &[17]), None);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        // 5 items, special 0, positive best → rank 1 whatever is sampled
        assert_eq!(sampled_rank_for_user(&mut rng, &s, 3, &[0], &[]), Some(1));
        // all tied → last among the 4 eligible
        assert_eq!(
            sampled_rank_for_user(&mut rng, &[1.0; 5], 3, &[0], &[]),
            Some(4)
        );
        assert_eq!(sampled_rank_for_user(&mut rng, &s, 0, &[0], &[]), None);
        assert_eq!(sampled_rank_for_user(&mut rng, &[], 0, &[], &[]), None);
    }
}
