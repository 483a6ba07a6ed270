//! Model-free next-item baselines, fitted on the same training sequences and ranked with the
//! same protocol as a model: **popularity** (every user gets the items by training count) and a
//! **first-order Markov chain** (the items that followed the user's last item in training, by
//! count).

use std::borrow::Cow;
use std::collections::HashMap;

use peterrec_data::sampler::item_counts;
use peterrec_data::split::NextItemExample;
use peterrec_data::vocab::NUM_RESERVED;
use peterrec_data::UserSequence;

use super::model::{Accumulator, RankingOptions, RankingReport};
use super::ranking::full_rank;

/// The counts behind the two baselines, taken from training sequences.
///
/// ```
/// use peterrec_data::split::NextItemExample;
/// use peterrec_data::UserSequence;
/// use peterrec_train::eval::{NextItemBaselines, RankingOptions};
///
/// let seq = |items: &[u32]| UserSequence { user: "u".into(), items: items.to_vec() };
/// // 6 followed 5 twice, 7 once.
/// let baselines = NextItemBaselines::fit(&[seq(&[4, 5, 6]), seq(&[5, 6]), seq(&[5, 7])], 8);
/// let test = [NextItemExample { user: "v".into(), history: vec![5], target: 6 }];
/// let report = baselines.evaluate_markov(&test, &RankingOptions::new().with_ks(vec![1]));
/// assert_eq!(report.full.hr_at(1), Some(1.0));
/// ```
#[derive(Debug, Clone)]
pub struct NextItemBaselines {
    counts: Vec<u64>,
    /// Each item's count scaled below 1: the Markov scores before any transition is added.
    tie_break: Vec<f32>,
    /// For each item, the items that followed it in training and how often.
    next: HashMap<u32, Vec<(u32, u64)>>,
}

impl NextItemBaselines {
    /// Counts items and consecutive pairs in `train`, over a vocabulary of `num_tokens` indices
    /// (indices `>= num_tokens` are ignored).
    pub fn fit(train: &[UserSequence], num_tokens: usize) -> Self {
        let counts = item_counts(train.iter().map(|s| s.items.as_slice()), num_tokens);
        let mut pairs: HashMap<(u32, u32), u64> = HashMap::new();
        for s in train {
            for w in s.items.windows(2) {
                if (w[0] as usize) < num_tokens && (w[1] as usize) < num_tokens {
                    *pairs.entry((w[0], w[1])).or_default() += 1;
                }
            }
        }
        let mut next: HashMap<u32, Vec<(u32, u64)>> = HashMap::new();
        for ((from, to), c) in pairs {
            next.entry(from).or_default().push((to, c));
        }
        let top = counts.iter().copied().max().unwrap_or(0) as f32 + 1.0;
        let tie_break = counts.iter().map(|&c| c as f32 / top).collect();
        Self {
            counts,
            tie_break,
            next,
        }
    }

    /// Training count of every index (the popularity scores, and the weights of the
    /// popularity-weighted sampled protocol).
    pub fn item_counts(&self) -> &[u64] {
        &self.counts
    }

    /// `opts`, with these training counts as its popularity weights when it asks for the
    /// sampled protocols and gives no weights of its own.
    pub fn with_counts(&self, opts: &RankingOptions) -> RankingOptions {
        let mut opts = opts.clone();
        if opts.sampled && opts.popularity.is_none() {
            opts.popularity = Some(self.counts.clone());
        }
        opts
    }

    /// Popularity scores: each item's training count.
    pub fn popularity_scores(&self) -> Vec<f32> {
        self.counts.iter().map(|&c| c as f32).collect()
    }

    /// Markov scores after `last`: how often each item followed `last` in training, plus its
    /// popularity scaled below 1, so that popularity only orders the items the chain ties (the
    /// many that never followed `last`).
    pub fn markov_scores(&self, last: Option<u32>) -> Vec<f32> {
        let mut row = self.tie_break.clone();
        if let Some(followers) = last.and_then(|l| self.next.get(&l)) {
            for &(to, c) in followers {
                row[to as usize] += c as f32;
            }
        }
        row
    }

    /// Popularity ranking of `examples`' targets, with the protocol of `opts` (the history
    /// excluded when asked, ties counted against the target, sampled protocols beside it).
    pub fn evaluate_popularity(
        &self,
        examples: &[NextItemExample],
        opts: &RankingOptions,
    ) -> RankingReport {
        let row = self.popularity_scores();
        self.evaluate(examples, opts, |_| Cow::Borrowed(row.as_slice()))
    }

    /// First-order Markov ranking of `examples`' targets, scored after each user's last history
    /// item ([`Self::markov_scores`]), with the protocol of `opts`.
    pub fn evaluate_markov(
        &self,
        examples: &[NextItemExample],
        opts: &RankingOptions,
    ) -> RankingReport {
        self.evaluate(examples, opts, |e| {
            Cow::Owned(self.markov_scores(e.history.last().copied()))
        })
    }

    fn evaluate<'a>(
        &self,
        examples: &[NextItemExample],
        opts: &RankingOptions,
        scores: impl Fn(&NextItemExample) -> Cow<'a, [f32]>,
    ) -> RankingReport {
        let specials: Vec<usize> = (0..NUM_RESERVED as usize).collect();
        let mut acc = Accumulator::new(opts);
        for e in examples {
            let row = scores(e);
            let history: Vec<usize> = if opts.exclude_history {
                e.history.iter().map(|&i| i as usize).collect()
            } else {
                Vec::new()
            };
            let target = e.target as usize;
            if let Some(rank) = full_rank(&row, target, &specials, Some(&history)) {
                acc.add_full(rank);
                acc.add_sampled(&row, target, &specials, &history);
            }
        }
        acc.report()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(items: &[u32]) -> UserSequence {
        UserSequence {
            user: "u".into(),
            items: items.to_vec(),
        }
    }

    fn example(history: &[u32], target: u32) -> NextItemExample {
        NextItemExample {
            user: "v".into(),
            history: history.to_vec(),
            target,
        }
    }

    /// Train: 4 5 6 / 4 5 7 / 5 6, over 9 tokens (4 reserved, items 4..=8).
    /// Counts: 4→2, 5→3, 6→2, 7→1, 8→0. Pairs: 4→5 twice, 5→6 twice, 5→7 once.
    fn fitted() -> NextItemBaselines {
        NextItemBaselines::fit(&[seq(&[4, 5, 6]), seq(&[4, 5, 7]), seq(&[5, 6])], 9)
    }

    #[test]
    fn counts_and_scores_are_hand_computed() {
        let b = fitted();
        assert_eq!(b.item_counts(), &[0, 0, 0, 0, 2, 3, 2, 1, 0]);
        let m = b.markov_scores(Some(5));
        // popularity / 4 below the transition counts
        assert_eq!(&m[4..], &[0.5, 0.75, 2.5, 1.25, 0.0]);
        assert_eq!(&b.markov_scores(Some(8))[4..], &[0.5, 0.75, 0.5, 0.25, 0.0]);
    }

    #[test]
    fn ranks_are_hand_computed() {
        let b = fitted();
        let opts = RankingOptions::new()
            .with_ks(vec![1, 2])
            .with_sampled(false);
        // History [4, 5] excluded.
        // Target 6: popularity 2 (5 is excluded, 4 too) → rank 1; Markov after 5: 2.5 → rank 1.
        // Target 7: popularity 1 < 2 (item 6) → rank 2; Markov 1.25 < 2.5 → rank 2.
        // Target 8: popularity 0 ties with no one but is below 6 and 7 → rank 3.
        let test = [
            example(&[4, 5], 6),
            example(&[4, 5], 7),
            example(&[4, 5], 8),
        ];
        let pop = b.evaluate_popularity(&test, &opts);
        assert_eq!(pop.full.count, 3);
        assert_eq!(pop.full.hr_at(1), Some(1.0 / 3.0));
        assert_eq!(pop.full.hr_at(2), Some(2.0 / 3.0));
        let markov = b.evaluate_markov(&test, &opts);
        assert_eq!(markov.full.hr_at(1), Some(1.0 / 3.0));
        let ndcg2 = (1.0 + 1.0 / 3f64.log2()) / 3.0;
        assert!((markov.full.ndcg_at(2).unwrap() - ndcg2).abs() < 1e-12);
        // Without the exclusion, item 5 (count 3) beats every target by popularity.
        let all = opts.clone().with_exclude_history(false);
        assert_eq!(b.evaluate_popularity(&test, &all).full.hr_at(1), Some(0.0));
        // After 4 (not excluded) the chain scores 5 at 2.75, and 4 and 6 both at 0.5: target 5
        // is first, and target 6 third, as its tie with 4 counts against it.
        let after4 = [example(&[4], 5), example(&[4], 6)];
        let r = b.evaluate_markov(&after4, &all).full;
        assert_eq!((r.hr_at(1), r.hr_at(2)), (Some(0.5), Some(0.5)));
    }

    #[test]
    fn sampled_protocols_are_reported_when_asked() {
        let b = fitted();
        let opts = RankingOptions::new()
            .with_ks(vec![1])
            .with_popularity(Some(b.item_counts().to_vec()));
        let r = b.evaluate_markov(&[example(&[4, 5], 6)], &opts);
        // Two eligible negatives (7 and 8; 8 never seen, so popularity draws only 7): all are
        // drawn, and target 6 beats them.
        assert_eq!(r.sampled.as_ref().map(|m| m.hr_at(1)), Some(Some(1.0)));
        assert_eq!(r.sampled_popularity.map(|m| m.hr_at(1)), Some(Some(1.0)));
        let flat = b.evaluate_popularity(&[example(&[4, 5], 6)], &opts).flat();
        assert!(flat.contains_key("sampled_pop_hr@1") && flat.contains_key("sampled_hr@1"));
    }
}
