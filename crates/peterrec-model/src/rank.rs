//! Host-side top-k selection of score rows.
//!
//! Burn 0.21's `topk_with_indices` on the ndarray backend sorts every row completely; at 10,000
//! items that sort was half of a top-10 inference step (`docs/benchmarks.md`). Scores are read to
//! the host anyway to be returned, so the selection runs there: a linear-time partition
//! (`select_nth_unstable_by`) followed by a sort of the `k` winners.

use std::cmp::Ordering;

/// Best first; ties broken by the lower index.
fn order(scores: &[f32], a: u32, b: u32) -> Ordering {
    scores[b as usize]
        .total_cmp(&scores[a as usize])
        .then(a.cmp(&b))
}

/// The `k` highest scores of one row with their indices, best first (ties: lower index first;
/// NaN ranks above every number, as in `f32::total_cmp`). Returns all of them when `k ≥ len`.
pub fn top_k(scores: &[f32], k: usize) -> Vec<(u32, f32)> {
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
        for k in [0, 1, 10, 77, 999, 1000, 1500] {
            assert_eq!(top_k(&scores, k), by_full_sort(&scores, k), "k = {k}");
        }
        assert_eq!(top_k(&[1.0, 3.0, 3.0, 2.0], 2), vec![(1, 3.0), (2, 3.0)]);
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
