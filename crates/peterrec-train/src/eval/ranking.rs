//! Full-ranking metrics: the rank of the positive among the whole eligible catalogue, HR@k,
//! NDCG@k and MRR@k of a rank, and their running means over users.
//!
//! Conventions (ties against the positive, NaN handling, eligible items) are in the
//! [module docs of `eval`](crate::eval).

use std::collections::BTreeMap;

use burn::tensor::{backend::Backend, Bool, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Metrics of one rank
// ---------------------------------------------------------------------------------------------

/// HR@k of one rank: 1 if `1 <= rank <= k`, else 0. A rank of 0 (invalid) counts as a miss.
pub fn hit_at(rank: usize, k: usize) -> f64 {
    if rank >= 1 && rank <= k {
        1.0
    } else {
        0.0
    }
}

/// NDCG@k of one rank with a single relevant item: `1 / log2(rank + 1)` if `1 <= rank <= k`,
/// else 0 (so rank 1 gives 1.0, rank 2 gives 0.6309…, rank 3 gives 0.5).
pub fn ndcg_at(rank: usize, k: usize) -> f64 {
    if rank >= 1 && rank <= k {
        1.0 / ((rank + 1) as f64).log2()
    } else {
        0.0
    }
}

/// MRR@k of one rank: `1 / rank` if `1 <= rank <= k`, else 0.
pub fn mrr_at(rank: usize, k: usize) -> f64 {
    if rank >= 1 && rank <= k {
        1.0 / rank as f64
    } else {
        0.0
    }
}

/// Whether an item scored `other` is ranked above a positive scored `positive`
/// (ties and a NaN positive count against the positive; a NaN `other` never beats).
#[inline]
pub(crate) fn beats(other: f32, positive: f32) -> bool {
    positive.is_nan() || other >= positive
}

// ---------------------------------------------------------------------------------------------
// Full ranking
// ---------------------------------------------------------------------------------------------

/// Full-ranking rank of `positive` among all eligible items of one score row.
///
/// `scores` has one entry per catalogue item. Items listed in `specials` are never ranked; items
/// in `history` (when given) are excluded too, except the positive itself, which is always
/// ranked. Indices out of range in `specials` or `history` are ignored; duplicates are harmless.
/// Ties count against the positive (see the [module docs](crate::eval)).
///
/// Returns `None` when the row is empty, when `positive` is out of range, or when `positive` is
/// a special token (such a target is a data error, not a miss).
///
/// Cost: O(n + h log h) for n items and h excluded indices; no allocation of size n.
pub fn full_rank(
    scores: &[f32],
    positive: usize,
    specials: &[usize],
    history: Option<&[usize]>,
) -> Option<usize> {
    let n = scores.len();
    if positive >= n || specials.contains(&positive) {
        return None;
    }
    let p = scores[positive];
    let mut above = scores
        .iter()
        .enumerate()
        .filter(|&(i, &s)| i != positive && beats(s, p))
        .count();
    let mut excluded: Vec<usize> = specials
        .iter()
        .chain(history.unwrap_or(&[]).iter())
        .copied()
        .filter(|&i| i < n && i != positive)
        .collect();
    excluded.sort_unstable();
    excluded.dedup();
    above -= excluded.iter().filter(|&&i| beats(scores[i], p)).count();
    Some(above + 1)
}

/// Number of eligible items in a catalogue of `n_items` once `specials` and, when given, the
/// `history` are excluded, the `positive` being always eligible. This is the worst possible
/// [`full_rank`]; useful to check that `k` is meaningful.
pub fn eligible_count(
    n_items: usize,
    positive: usize,
    specials: &[usize],
    history: Option<&[usize]>,
) -> usize {
    let mut excluded: Vec<usize> = specials
        .iter()
        .chain(history.unwrap_or(&[]).iter())
        .copied()
        .filter(|&i| i < n_items && i != positive)
        .collect();
    excluded.sort_unstable();
    excluded.dedup();
    n_items - excluded.len()
}

/// Batched full-ranking ranks computed on the device by comparison (no sort).
///
/// * `scores`: `[batch, n_items]`, one score row per user.
/// * `positives`: `[batch]`, the index of each row's positive item.
/// * `exclude_mask`: `[batch, n_items]`, `true` for items that must not be ranked (special
///   tokens, and history items when excluding history); build it with [`exclusion_mask`].
///
/// Returns one 1-based rank per row, with exactly the conventions of [`full_rank`]: ties and a
/// NaN positive count against the positive, NaN negatives never beat, and the positive is
/// always ranked even if the mask marks it. An empty batch or an empty catalogue gives an
/// empty vector.
///
/// # Panics
///
/// Through Burn, if the shapes disagree or a positive index is out of range.
pub fn ranks_from_scores<B: Backend>(
    scores: Tensor<B, 2>,
    positives: Tensor<B, 1, Int>,
    exclude_mask: Option<Tensor<B, 2, Bool>>,
) -> Vec<usize> {
    let [batch, n] = scores.dims();
    if batch == 0 || n == 0 {
        return Vec::new();
    }
    let device = scores.device();
    let pos_idx: Tensor<B, 2, Int> = positives.reshape([batch, 1]);
    let pos_scores = scores.clone().gather(1, pos_idx.clone());
    let pos_nan = pos_scores.clone().is_nan().expand([batch, n]);
    let beaten = scores
        .greater_equal(pos_scores.expand([batch, n]))
        .bool_or(pos_nan);
    let cols: Tensor<B, 2, Int> = Tensor::<B, 1, Int>::arange(0..n as i64, &device)
        .reshape([1, n])
        .expand([batch, n]);
    let is_pos = cols.equal(pos_idx.expand([batch, n]));
    let mut counted = beaten.bool_and(is_pos.bool_not());
    if let Some(mask) = exclude_mask {
        counted = counted.bool_and(mask.bool_not());
    }
    let above = counted.int().sum_dim(1);
    above
        .into_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .expect("rank counts convert to i64")
        .into_iter()
        .map(|c| c as usize + 1)
        .collect()
}

/// Builds the `[batch, n_items]` exclusion mask for [`ranks_from_scores`]: `specials` are
/// masked in every row, and row `r` also masks `histories[r]` when histories are given
/// (`histories.len()` is the batch size then; otherwise `batch` is used). Out-of-range indices
/// are ignored.
pub fn exclusion_mask<B: Backend>(
    batch: usize,
    n_items: usize,
    specials: &[usize],
    histories: Option<&[Vec<usize>]>,
    device: &B::Device,
) -> Tensor<B, 2, Bool> {
    let batch = histories.map_or(batch, <[Vec<usize>]>::len);
    let mut mask = vec![false; batch * n_items];
    for r in 0..batch {
        let row = &mut mask[r * n_items..(r + 1) * n_items];
        for &s in specials {
            if s < n_items {
                row[s] = true;
            }
        }
        if let Some(h) = histories {
            for &i in &h[r] {
                if i < n_items {
                    row[i] = true;
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(mask, [batch, n_items]), device)
}

/// Uploads positive indices as a `[batch]` Int tensor for [`ranks_from_scores`].
pub fn positives_tensor<B: Backend>(positives: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let data: Vec<i64> = positives.iter().map(|&p| p as i64).collect();
    Tensor::from_data(TensorData::new(data, [positives.len()]), device)
}

// ---------------------------------------------------------------------------------------------
// Accumulator
// ---------------------------------------------------------------------------------------------

/// Running sums of HR@k, NDCG@k and MRR@k over users, for a list of cut-offs `ks`.
///
/// Feed it ranks from either protocol (keep one accumulator per protocol) and call
/// [`mean`](Self::mean). Serialisable, so it can be stored mid-evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankingMetrics {
    ks: Vec<usize>,
    /// Sum of HR@k over users, one entry per k.
    hr: Vec<f64>,
    /// Sum of NDCG@k over users, one entry per k.
    ndcg: Vec<f64>,
    /// Sum of MRR@k over users, one entry per k.
    mrr: Vec<f64>,
    count: usize,
}

impl RankingMetrics {
    /// An empty accumulator for the cut-offs `ks` (sorted and de-duplicated).
    pub fn new(ks: &[usize]) -> Self {
        let mut ks = ks.to_vec();
        ks.sort_unstable();
        ks.dedup();
        let m = ks.len();
        Self {
            ks,
            hr: vec![0.0; m],
            ndcg: vec![0.0; m],
            mrr: vec![0.0; m],
            count: 0,
        }
    }

    /// The cut-offs, ascending.
    pub fn ks(&self) -> &[usize] {
        &self.ks
    }

    /// Number of ranks added.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Adds one user's 1-based rank (0 counts as a miss at every k).
    pub fn add_rank(&mut self, rank: usize) {
        for (j, &k) in self.ks.iter().enumerate() {
            self.hr[j] += hit_at(rank, k);
            self.ndcg[j] += ndcg_at(rank, k);
            self.mrr[j] += mrr_at(rank, k);
        }
        self.count += 1;
    }

    /// Adds many ranks.
    pub fn add_ranks(&mut self, ranks: impl IntoIterator<Item = usize>) {
        for r in ranks {
            self.add_rank(r);
        }
    }

    /// Adds the sums of another accumulator (e.g. from another thread).
    ///
    /// # Panics
    ///
    /// If the two accumulators have different cut-offs.
    pub fn merge(&mut self, other: &RankingMetrics) {
        assert_eq!(
            self.ks, other.ks,
            "merging RankingMetrics with different ks"
        );
        for j in 0..self.ks.len() {
            self.hr[j] += other.hr[j];
            self.ndcg[j] += other.ndcg[j];
            self.mrr[j] += other.mrr[j];
        }
        self.count += other.count;
    }

    /// The means over users. With no users every mean is 0.0 (never NaN) and `count` is 0.
    pub fn mean(&self) -> RankingMeans {
        let d = if self.count == 0 {
            1.0
        } else {
            self.count as f64
        };
        RankingMeans {
            count: self.count,
            ks: self.ks.clone(),
            hr: self.hr.iter().map(|s| s / d).collect(),
            ndcg: self.ndcg.iter().map(|s| s / d).collect(),
            mrr: self.mrr.iter().map(|s| s / d).collect(),
        }
    }
}

/// Mean HR@k, NDCG@k and MRR@k over `count` users (from [`RankingMetrics::mean`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankingMeans {
    /// Number of users averaged.
    pub count: usize,
    /// The cut-offs, ascending.
    pub ks: Vec<usize>,
    /// Mean HR@k, one entry per k.
    pub hr: Vec<f64>,
    /// Mean NDCG@k, one entry per k.
    pub ndcg: Vec<f64>,
    /// Mean MRR@k, one entry per k.
    pub mrr: Vec<f64>,
}

impl RankingMeans {
    fn at(&self, values: &[f64], k: usize) -> Option<f64> {
        self.ks.iter().position(|&x| x == k).map(|j| values[j])
    }

    /// Mean HR@k, if `k` is one of the cut-offs.
    pub fn hr_at(&self, k: usize) -> Option<f64> {
        self.at(&self.hr, k)
    }

    /// Mean NDCG@k, if `k` is one of the cut-offs.
    pub fn ndcg_at(&self, k: usize) -> Option<f64> {
        self.at(&self.ndcg, k)
    }

    /// Mean MRR@k, if `k` is one of the cut-offs.
    pub fn mrr_at(&self, k: usize) -> Option<f64> {
        self.at(&self.mrr, k)
    }

    /// Flat `"{prefix}hr@10" → value` map (also `ndcg@k`, `mrr@k`) for JSON lines. Use the
    /// prefix `""` for full ranking and `"sampled_"` for the sampled protocol so the two can
    /// never be confused.
    pub fn to_flat_map(&self, prefix: &str) -> BTreeMap<String, f64> {
        let mut map = BTreeMap::new();
        for (j, k) in self.ks.iter().enumerate() {
            map.insert(format!("{prefix}hr@{k}"), self.hr[j]);
            map.insert(format!("{prefix}ndcg@{k}"), self.ndcg[j]);
            map.insert(format!("{prefix}mrr@{k}"), self.mrr[j]);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray<f32>;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn per_rank_values_hand_computed() {
        assert_eq!(hit_at(1, 1), 1.0);
        assert_eq!(hit_at(2, 1), 0.0);
        assert_eq!(hit_at(0, 10), 0.0);
        assert!(close(ndcg_at(1, 10), 1.0));
        assert!(close(ndcg_at(3, 10), 0.5)); // 1/log2(4)
        assert!(close(ndcg_at(7, 10), 1.0 / 3.0)); // 1/log2(8)
        assert!(close(ndcg_at(2, 10), 1.0 / 3f64.log2()));
        assert_eq!(ndcg_at(11, 10), 0.0);
        assert!(close(mrr_at(4, 5), 0.25));
        assert_eq!(mrr_at(6, 5), 0.0);
        assert_eq!(ndcg_at(1, 0), 0.0);
    }

    #[test]
    fn full_rank_basic_and_ties() {
        let s = [0.1, 0.9, 0.5, 0.5, 0.3];
        assert_eq!(full_rank(&s, 1, &[], None), Some(1));
        // positive 2 (0.5): item 1 is higher, item 3 ties → counted against → rank 3
        assert_eq!(full_rank(&s, 2, &[], None), Some(3));
        assert_eq!(full_rank(&s, 3, &[], None), Some(3));
        assert_eq!(full_rank(&s, 0, &[], None), Some(5));
        // all equal → worst rank
        assert_eq!(full_rank(&[1.0; 6], 2, &[], None), Some(6));
    }

    #[test]
    fn full_rank_specials_and_history() {
        // item 0 = padding (special) has the top score; it must never be ranked.
        let s = [9.0, 0.2, 0.8, 0.7, 0.4];
        assert_eq!(full_rank(&s, 3, &[], None), Some(3));
        assert_eq!(full_rank(&s, 3, &[0], None), Some(2));
        // history contains item 2 (higher) twice and item 1 (lower): both excluded.
        assert_eq!(full_rank(&s, 3, &[0], Some(&[2, 1, 2])), Some(1));
        // positive also in history: still ranked.
        assert_eq!(full_rank(&s, 3, &[0], Some(&[3, 2])), Some(1));
        // out-of-range exclusions ignored
        assert_eq!(full_rank(&s, 3, &[0, 99], Some(&[42])), Some(2));
        // positive is special / out of range / empty row
        assert_eq!(full_rank(&s, 0, &[0], None), None);
        assert_eq!(full_rank(&s, 5, &[], None), None);
        assert_eq!(full_rank(&[], 0, &[], None), None);
        assert_eq!(eligible_count(5, 3, &[0], Some(&[3, 2, 2])), 3);
    }

    #[test]
    fn full_rank_nan() {
        let s = [0.5, f32::NAN, 0.2];
        assert_eq!(full_rank(&s, 0, &[], None), Some(1)); // NaN negative never beats
        assert_eq!(full_rank(&s, 1, &[], None), Some(3)); // NaN positive ranked last
    }

    #[test]
    fn k_larger_than_catalogue() {
        let s = [0.3, 0.2, 0.1];
        let r = full_rank(&s, 2, &[], None).unwrap();
        assert_eq!(r, 3);
        let mut m = RankingMetrics::new(&[100]);
        m.add_rank(r);
        let mean = m.mean();
        assert_eq!(mean.hr_at(100), Some(1.0));
        assert!(close(mean.ndcg_at(100).unwrap(), 0.5));
        assert!(close(mean.mrr_at(100).unwrap(), 1.0 / 3.0));
    }

    #[test]
    fn accumulator_hand_computed() {
        let mut m = RankingMetrics::new(&[10, 1, 5, 5]);
        assert_eq!(m.ks(), &[1, 5, 10]);
        m.add_ranks([1, 3, 7, 20]);
        let mean = m.mean();
        assert_eq!(mean.count, 4);
        assert_eq!(mean.hr, vec![0.25, 0.5, 0.75]);
        // NDCG@10: (1 + 0.5 + 1/3 + 0) / 4
        assert!(close(
            mean.ndcg_at(10).unwrap(),
            (1.0 + 0.5 + 1.0 / 3.0) / 4.0
        ));
        assert!(close(mean.ndcg_at(5).unwrap(), 1.5 / 4.0));
        assert!(close(
            mean.mrr_at(10).unwrap(),
            (1.0 + 1.0 / 3.0 + 1.0 / 7.0) / 4.0
        ));
        assert_eq!(mean.hr_at(3), None);
        let flat = mean.to_flat_map("sampled_");
        assert_eq!(flat["sampled_hr@10"], 0.75);
        assert_eq!(flat.len(), 9);

        let mut other = RankingMetrics::new(&[1, 5, 10]);
        other.add_rank(1);
        m.merge(&other);
        assert_eq!(m.count(), 5);
        assert_eq!(m.mean().hr_at(1), Some(0.4));

        let json = serde_json::to_string(&m).unwrap();
        let back: RankingMetrics = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn empty_accumulator_has_no_nan() {
        let mean = RankingMetrics::new(&[10]).mean();
        assert_eq!(mean.count, 0);
        assert_eq!(mean.hr_at(10), Some(0.0));
        assert_eq!(mean.ndcg_at(10), Some(0.0));
        assert_eq!(mean.mrr_at(10), Some(0.0));
        assert!(serde_json::to_string(&mean).is_ok());
        let none = RankingMetrics::new(&[]).mean();
        assert!(none.to_flat_map("").is_empty());
    }

    #[test]
    fn tensor_ranks_match_slice_ranks() {
        let device = Default::default();
        let rows: Vec<Vec<f32>> = vec![
            vec![9.0, 0.1, 0.9, 0.5, 0.5, 0.3],
            vec![9.0, 0.5, 0.5, 0.5, 0.5, 0.5],
            vec![9.0, 0.2, 0.8, 0.7, 0.4, f32::NAN],
            vec![9.0, 0.2, f32::NAN, 0.7, 0.4, 0.1],
        ];
        let positives = [3usize, 2, 3, 2];
        let specials = [0usize];
        let histories = vec![vec![2], vec![], vec![2, 3, 1], vec![]];
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let scores = Tensor::<B, 2>::from_data(TensorData::new(flat, [4, 6]), &device);

        for hist in [None, Some(histories.as_slice())] {
            let mask = exclusion_mask::<B>(4, 6, &specials, hist, &device);
            let got = ranks_from_scores(
                scores.clone(),
                positives_tensor::<B>(&positives, &device),
                Some(mask),
            );
            let want: Vec<usize> = (0..4)
                .map(|r| {
                    full_rank(
                        &rows[r],
                        positives[r],
                        &specials,
                        hist.map(|h| h[r].as_slice()),
                    )
                    .unwrap()
                })
                .collect();
            assert_eq!(got, want);
        }
        // hand-checked values without any exclusion: specials count too.
        let got = ranks_from_scores(
            scores.clone(),
            positives_tensor::<B>(&positives, &device),
            None,
        );
        assert_eq!(got, vec![4, 6, 3, 6]);
    }

    #[test]
    fn tensor_ranks_empty() {
        let device = Default::default();
        let scores = Tensor::<B, 2>::zeros([0, 5], &device);
        let pos = positives_tensor::<B>(&[], &device);
        assert!(ranks_from_scores(scores, pos, None).is_empty());
    }
}
