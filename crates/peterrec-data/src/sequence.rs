//! Per-user item sequences: chronological ordering, filtering, truncation, padding, statistics.

use std::collections::HashMap;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use crate::vocab::{UnseenPolicy, Vocab, PAD};

/// One user's item sequence, as vocabulary indices, oldest first, without padding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserSequence {
    /// External user id.
    pub user: String,
    /// Item indices (>= [`crate::vocab::NUM_RESERVED`] or [`crate::vocab::UNK`]), oldest first.
    pub items: Vec<u32>,
}

impl UserSequence {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// `true` when the sequence holds no item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Groups timestamped events per user and orders each user's events chronologically.
///
/// Ties are broken deterministically by input order (the sort is stable): half of ML-1M's
/// consecutive ratings share a second, so "timestamp, then file position" is what makes
/// sequences reproducible. Users are returned in order of first appearance.
pub fn chronological<U, I>(events: impl IntoIterator<Item = (U, I, u64)>) -> Vec<(U, Vec<I>)>
where
    U: Eq + Hash + Clone,
{
    let mut slot: HashMap<U, usize> = HashMap::new();
    let mut groups: Vec<(U, Vec<(u64, I)>)> = Vec::new();
    for (user, item, ts) in events {
        let k = match slot.get(&user) {
            Some(&k) => k,
            None => {
                slot.insert(user.clone(), groups.len());
                groups.push((user, Vec::new()));
                groups.len() - 1
            }
        };
        groups[k].1.push((ts, item));
    }
    groups
        .into_iter()
        .map(|(user, mut evs)| {
            evs.sort_by_key(|&(ts, _)| ts); // stable: file order within a second
            (user, evs.into_iter().map(|(_, item)| item).collect())
        })
        .collect()
}

/// Groups events per user in input order (for data that is already chronological, or has no
/// timestamps). Users are returned in order of first appearance.
pub fn in_file_order<U, I>(events: impl IntoIterator<Item = (U, I)>) -> Vec<(U, Vec<I>)>
where
    U: Eq + Hash + Clone,
{
    chronological(events.into_iter().map(|(u, i)| (u, i, 0)))
}

/// Keeps the sequences with at least `min_len` items.
pub fn filter_min_len(sequences: Vec<UserSequence>, min_len: usize) -> Vec<UserSequence> {
    sequences
        .into_iter()
        .filter(|s| s.items.len() >= min_len)
        .collect()
}

/// Shortens every sequence to its most recent `max_len` items.
pub fn keep_recent(sequences: &mut [UserSequence], max_len: usize) {
    for s in sequences {
        let cut = s.items.len().saturating_sub(max_len);
        s.items.drain(..cut);
    }
}

/// The most recent `max_len` items of `items` (all of them when shorter).
pub fn most_recent(items: &[u32], max_len: usize) -> &[u32] {
    &items[items.len().saturating_sub(max_len)..]
}

/// The most recent `len` items, left-padded with [`PAD`] to exactly `len`.
pub fn left_pad(items: &[u32], len: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(len);
    left_pad_into(&mut out, items, len);
    out
}

/// Appends the most recent `len` items of `items` to `out`, left-padded with [`PAD`] to exactly
/// `len` (what [`left_pad`] returns, without a vector of its own).
pub fn left_pad_into(out: &mut Vec<u32>, items: &[u32], len: usize) {
    let kept = most_recent(items, len);
    out.resize(out.len() + (len - kept.len()), PAD);
    out.extend_from_slice(kept);
}

/// Encodes string sequences with `vocab`, applying `policy` to unseen ids.
///
/// Returns the sequences (users whose every item was dropped are omitted) and the total
/// number of unseen ids.
pub fn encode_sequences<'a>(
    raw: impl IntoIterator<Item = (String, &'a [String])>,
    vocab: &Vocab,
    policy: UnseenPolicy,
) -> (Vec<UserSequence>, usize) {
    let mut unseen = 0;
    let mut out = Vec::new();
    for (user, items) in raw {
        let enc = vocab.encode(items.iter().map(String::as_str), policy);
        unseen += enc.unseen;
        if !enc.ids.is_empty() {
            out.push(UserSequence {
                user,
                items: enc.ids,
            });
        }
    }
    (out, unseen)
}

/// Builds a vocabulary from string sequences (order of first appearance) and encodes them.
pub fn build_vocab_and_encode<'a>(
    raw: impl IntoIterator<Item = (String, &'a [String])> + Clone,
) -> (Vocab, Vec<UserSequence>) {
    let vocab = Vocab::from_sequences(
        raw.clone()
            .into_iter()
            .map(|(_, items)| items.iter().map(String::as_str)),
    );
    let (seqs, _) = encode_sequences(raw, &vocab, UnseenPolicy::Unk);
    (vocab, seqs)
}

/// Summary figures of a set of sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceStats {
    /// Number of users (sequences).
    pub users: usize,
    /// Number of distinct items occurring in the sequences.
    pub items: usize,
    /// Total number of items over all sequences.
    pub interactions: usize,
    /// Shortest sequence length.
    pub min_len: usize,
    /// Median sequence length (nearest rank).
    pub p50: usize,
    /// 90th percentile of sequence length (nearest rank).
    pub p90: usize,
    /// 99th percentile of sequence length (nearest rank).
    pub p99: usize,
    /// Longest sequence length.
    pub max_len: usize,
}

impl SequenceStats {
    /// Computes the figures of `sequences`.
    pub fn compute(sequences: &[UserSequence]) -> Self {
        let mut distinct = std::collections::HashSet::new();
        for s in sequences {
            distinct.extend(s.items.iter().copied());
        }
        let lengths: Vec<usize> = sequences.iter().map(UserSequence::len).collect();
        Self::from_lengths(lengths, distinct.len())
    }

    /// Computes the figures from sequence lengths and a distinct-item count.
    pub fn from_lengths(mut lengths: Vec<usize>, distinct_items: usize) -> Self {
        lengths.sort_unstable();
        SequenceStats {
            users: lengths.len(),
            items: distinct_items,
            interactions: lengths.iter().sum(),
            min_len: lengths.first().copied().unwrap_or(0),
            p50: percentile(&lengths, 50.0),
            p90: percentile(&lengths, 90.0),
            p99: percentile(&lengths, 99.0),
            max_len: lengths.last().copied().unwrap_or(0),
        }
    }
}

/// Nearest-rank percentile of sorted values (`0` for an empty slice).
pub fn percentile(sorted: &[usize], p: f64) -> usize {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chronological_ties_keep_file_order() {
        let events = vec![
            ("u2", "c", 5),
            ("u1", "b", 10),
            ("u1", "a", 10),
            ("u1", "z", 3),
            ("u2", "a", 1),
            ("u1", "d", 10),
        ];
        let g = chronological(events);
        assert_eq!(g[0], ("u2", vec!["a", "c"]));
        assert_eq!(g[1], ("u1", vec!["z", "b", "a", "d"]));
    }

    #[test]
    fn truncate_and_pad() {
        assert_eq!(most_recent(&[5, 6, 7, 8], 2), &[7, 8]);
        assert_eq!(most_recent(&[5, 6], 4), &[5, 6]);
        assert_eq!(left_pad(&[5, 6], 4), vec![PAD, PAD, 5, 6]);
        assert_eq!(left_pad(&[5, 6, 7, 8, 9], 3), vec![7, 8, 9]);
        assert_eq!(left_pad(&[], 2), vec![PAD, PAD]);
        let mut seqs = vec![UserSequence {
            user: "u".into(),
            items: vec![4, 5, 6, 7],
        }];
        keep_recent(&mut seqs, 3);
        assert_eq!(seqs[0].items, vec![5, 6, 7]);
        keep_recent(&mut seqs, 10);
        assert_eq!(seqs[0].items, vec![5, 6, 7]);
    }

    #[test]
    fn min_len_filter_and_stats() {
        let seqs: Vec<UserSequence> = (1..=10)
            .map(|n| UserSequence {
                user: n.to_string(),
                items: (0..n).map(|k| 4 + k as u32).collect(),
            })
            .collect();
        let kept = filter_min_len(seqs.clone(), 3);
        assert_eq!(kept.len(), 8);
        assert!(kept.iter().all(|s| s.len() >= 3));
        let st = SequenceStats::compute(&seqs);
        assert_eq!(st.users, 10);
        assert_eq!(st.items, 10);
        assert_eq!(st.interactions, 55);
        assert_eq!(
            (st.min_len, st.p50, st.p90, st.p99, st.max_len),
            (1, 5, 9, 10, 10)
        );
        assert_eq!(SequenceStats::compute(&[]).p50, 0);
    }

    #[test]
    fn encode_reports_unseen() {
        let raw = [
            ("a".to_string(), vec!["x".to_string(), "y".to_string()]),
            ("b".to_string(), vec!["q".to_string()]),
        ];
        let (vocab, seqs) =
            build_vocab_and_encode(raw.iter().map(|(u, i)| (u.clone(), i.as_slice())));
        assert_eq!(vocab.num_items(), 3);
        assert_eq!(seqs[1].items, vec![6]);
        let small = Vocab::from_sequences([["x"]]);
        let (enc, unseen) = encode_sequences(
            raw.iter().map(|(u, i)| (u.clone(), i.as_slice())),
            &small,
            UnseenPolicy::Drop,
        );
        assert_eq!(unseen, 2);
        assert_eq!(enc.len(), 1, "user b lost its only item");
    }
}
