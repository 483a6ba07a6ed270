//! Top-k selection of score rows.
//!
//! Burn 0.21's `topk_with_indices` on the ndarray backend sorts every row completely. Scores are
//! read to the host anyway to be returned, so the selection runs there: for `k ≤ 64` one scan
//! that keeps the best `k` so far, else a linear-time partition (`select_nth_unstable_by`)
//! followed by a sort of the `k` winners.

use std::cmp::Ordering;

/// Largest `k` served by one scan with a sorted list of the best `k` so far; beyond it, a
/// partition of all indices.
const SCAN_MAX_K: usize = 64;

/// [`top_k`] by one pass over the row, keeping the best `k` so far sorted: each score is
/// compared with the current `k`-th best and almost always dropped, so a top-10 of 10,000
/// scores costs about one comparison per score, where a partition of all indices moves them
/// many times. Worst case (ascending scores) `O(n·k)`.
fn top_k_scan(scores: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    for (i, &s) in scores.iter().enumerate() {
        // Scanning in index order, a score equal to the k-th best ranks below it.
        if best.len() == k && s.total_cmp(&best[k - 1].1) != Ordering::Greater {
            continue;
        }
        let at = best.partition_point(|&(_, b)| b.total_cmp(&s) != Ordering::Less);
        best.insert(at, (i as u32, s));
        best.truncate(k);
    }
    best
}

/// Best first; ties broken by the lower index.
fn order(scores: &[f32], a: u32, b: u32) -> Ordering {
    scores[b as usize]
        .total_cmp(&scores[a as usize])
        .then(a.cmp(&b))
}

/// The `k` highest scores of one row with their indices, best first (ties: lower index first;
/// NaNs ordered as in `f32::total_cmp`: a positive NaN above `+∞`, a negative one, such as
/// x86's `∞ − ∞`, below `−∞`). Returns all of them when `k ≥ len`.
pub fn top_k(scores: &[f32], k: usize) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    if k <= SCAN_MAX_K && k < scores.len() {
        return top_k_scan(scores, k);
    }
    let mut idx: Vec<u32> = (0..scores.len() as u32).collect();
    let k = k.min(idx.len());
    if k == 0 {
        return Vec::new();
    }
    if k < idx.len() {
        idx.select_nth_unstable_by(k - 1, |&a, &b| order(scores, a, b));
        idx.truncate(k);
    }
    idx.sort_unstable_by(|&a, &b| order(scores, a, b));
    idx.into_iter().map(|i| (i, scores[i as usize])).collect()
}

/// [`top_k`] of each row of a row-major `[rows, cols]` score matrix.
pub fn top_k_rows(scores: &[f32], cols: usize, k: usize) -> Vec<Vec<(u32, f32)>> {
    if cols == 0 {
        return Vec::new();
    }
    scores.chunks(cols).map(|row| top_k(row, k)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_full_sort(scores: &[f32], k: usize) -> Vec<(u32, f32)> {
        let mut idx: Vec<u32> = (0..scores.len() as u32).collect();
        idx.sort_by(|&a, &b| order(scores, a, b));
        idx.truncate(k);
        idx.into_iter().map(|i| (i, scores[i as usize])).collect()
    }

    #[test]
    fn matches_a_full_sort_with_ties() {
        // Few distinct values, so most of the top 10 are ties decided by index.
        let scores: Vec<f32> = (0..1000u32).map(|i| ((i * 7919) % 13) as f32).collect();
        // k ≤ 64 scans; 77 and up partition.
        for k in [0, 1, 10, 64, 65, 77, 999, 1000, 1500] {
            assert_eq!(top_k(&scores, k), by_full_sort(&scores, k), "k = {k}");
        }
        assert_eq!(top_k(&[1.0, 3.0, 3.0, 2.0], 2), vec![(1, 3.0), (2, 3.0)]);
    }

    /// The scan against a full sort where it works hardest (ascending scores: every score
    /// enters the list) and on NaN, infinities and signed zeros.
    #[test]
    fn scan_matches_a_full_sort_on_ordered_and_special_values() {
        let ascending: Vec<f32> = (0..500).map(|i| i as f32).collect();
        let descending: Vec<f32> = ascending.iter().rev().copied().collect();
        let special = vec![
            0.0,
            -0.0,
            f32::NAN,
            1.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            f32::NAN,
            1.0,
            -f32::NAN,
            0.0,
        ];
        for scores in [ascending, descending, special] {
            // All four scan; 64 scans the 500-score rows (the 11 special values partition).
            for k in [1, 3, 9, 64] {
                let want = by_full_sort(&scores, k);
                let got = top_k(&scores, k);
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!((g.0, g.1.to_bits()), (w.0, w.1.to_bits()), "k = {k}");
                }
            }
        }
    }

    #[test]
    fn rows_are_ranked_independently() {
        let got = top_k_rows(&[0.0, 2.0, 1.0, 5.0, 4.0, 3.0], 3, 2);
        assert_eq!(
            got,
            vec![vec![(1, 2.0), (2, 1.0)], vec![(0, 5.0), (1, 4.0)]]
        );
    }
}
