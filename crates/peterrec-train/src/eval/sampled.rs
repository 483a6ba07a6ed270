//! The older papers' sampled ranking protocols (PeterRec's and NextItNet's among them): the
//! positive against [`SAMPLED_NEGATIVES`] (100) negatives drawn uniformly, or in proportion to
//! the items' training counts. They inflate every metric and are only reported beside full
//! ranking, under `sampled_` and `sampled_pop_` names (see [`RankingMeans::to_flat_map`]).
//!
//! [`RankingMeans::to_flat_map`]: crate::eval::RankingMeans::to_flat_map

use std::collections::HashSet;

use peterrec_data::sampler::ItemSampler;
use rand::Rng;

use super::ranking::beats;

/// Number of negatives in the sampled protocols (100 negatives + the positive).
pub const SAMPLED_NEGATIVES: usize = 100;

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
    match ItemSampler::uniform(0..n) {
        Ok(items) => sampled_negatives_from(rng, &items, positive, specials, history, count),
        Err(_) => Vec::new(), // no item at all
    }
}

/// Draws `count` distinct negatives from `sampler` (uniform, popularity-weighted, ...), never
/// the positive, a special or a history item: each draw follows the sampler's distribution
/// over the items not drawn or excluded yet. When fewer than `count` items are eligible, all
/// of them are returned (in ascending order) without drawing.
pub fn sampled_negatives_from<R: Rng + ?Sized>(
    rng: &mut R,
    sampler: &ItemSampler,
    positive: usize,
    specials: &[usize],
    history: &[usize],
    count: usize,
) -> Vec<usize> {
    let excluded: HashSet<u32> = specials
        .iter()
        .chain(history)
        .chain(std::iter::once(&positive))
        .filter_map(|&i| u32::try_from(i).ok())
        .collect();
    sampler
        .sample_distinct(count, &excluded, rng)
        .into_iter()
        .map(|i| i as usize)
        .collect()
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

/// The uniform **sampled** rank for one user: draws [`SAMPLED_NEGATIVES`] negatives with
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
    let n = u32::try_from(scores.len()).ok()?;
    let sampler = ItemSampler::uniform(0..n).ok()?;
    sampled_rank_with(rng, &sampler, scores, positive, specials, history)
}

/// The **sampled** rank for one user with negatives from `sampler` (see
/// [`sampled_negatives_from`]); `None` in the cases of [`sampled_rank_for_user`].
pub fn sampled_rank_with<R: Rng + ?Sized>(
    rng: &mut R,
    sampler: &ItemSampler,
    scores: &[f32],
    positive: usize,
    specials: &[usize],
    history: &[usize],
) -> Option<usize> {
    if positive >= scores.len() || specials.contains(&positive) {
        return None;
    }
    let negatives =
        sampled_negatives_from(rng, sampler, positive, specials, history, SAMPLED_NEGATIVES);
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

    #[test]
    fn popularity_negatives_follow_the_counts() {
        // Item i was seen i times, except item 5 (never); 0 and 1 are specials.
        let mut counts: Vec<u64> = (0..400).collect();
        counts[5] = 0;
        let popular = ItemSampler::popularity(&counts, 0..400, 1.0).unwrap();
        let uniform = ItemSampler::uniform(0..400).unwrap();
        let mean = |s: &ItemSampler| {
            let mut rng = ChaCha8Rng::seed_from_u64(11);
            let mut sum = 0usize;
            for _ in 0..20 {
                let negs = sampled_negatives_from(&mut rng, s, 42, &[0, 1], &[300, 301], 100);
                let set: HashSet<_> = negs.iter().copied().collect();
                assert_eq!(set.len(), 100);
                for bad in [0, 1, 42, 300, 301] {
                    assert!(!set.contains(&bad));
                }
                sum += negs.iter().sum::<usize>();
                if std::ptr::eq(s, &popular) {
                    assert!(!set.contains(&5), "an item never seen is never drawn");
                }
            }
            sum as f64 / 2000.0
        };
        // Uniform draws average about 200; draws in proportion to i average about 2/3 of 400.
        let (u, p) = (mean(&uniform), mean(&popular));
        assert!((185.0..215.0).contains(&u), "uniform mean {u}");
        assert!((250.0..285.0).contains(&p), "popularity mean {p}");
    }
}
