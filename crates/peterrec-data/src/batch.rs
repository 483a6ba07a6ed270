//! Batching: sequences and fine-tuning examples to Burn `Int` tensors.
//!
//! Each objective has a host-side function returning plain `Vec<u32>` rows (`*_rows`, easy to
//! inspect and test) and a tensor function returning the Burn batch. All randomness comes from
//! the caller's [`ChaCha8Rng`], so the same seed gives the same batches bit for bit.
//!
//! Layout of a [`SeqBatch`] for the sequence `a b c d` with `max_len = 5`:
//!
//! | objective | inputs | targets | mask |
//! | --- | --- | --- | --- |
//! | next item | `_ _ a b c` | `_ _ b c d` | `0 0 1 1 1` |
//! | masked next item (p) | `_ _ a M c` | `_ _ b c d` | `0 0 1 1 1` |
//! | cloze | `_ a M c d` | `_ _ b _ _` | `0 0 1 0 0` |
//!
//! (`_` = [`PAD`], `M` = [`MASK`].) A [`FineTuneBatch`] holds the most recent `max_len` items
//! left-padded, with [`CLS`] as the last column (causal models, width `max_len + 1`) or as both
//! the first and the last column (non-causal models, width `max_len + 2`): the model reads the
//! user vector at the last column, plus the first one in centred mode.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::sequence::{left_pad_into, most_recent};
use crate::task::FineTuneExample;
use crate::vocab::{CLS, MASK, NUM_RESERVED, PAD};

/// Fraction of item positions masked by the cloze objective.
pub const CLOZE_RATIO: f64 = 0.3;
/// At most this many positions are masked per sequence by the cloze objective.
pub const CLOZE_MAX_MASKED: usize = 30;
/// Of the masked positions: this share is replaced by [`MASK`] …
pub const CLOZE_MASK_SHARE: f64 = 0.8;
/// … this share by a random item (the rest is left unchanged).
pub const CLOZE_RANDOM_SHARE: f64 = 0.1;

/// A batch of sequences for a sequence objective; all tensors are `[batch, len]`.
#[derive(Debug, Clone)]
pub struct SeqBatch<B: Backend> {
    /// Input tokens.
    pub inputs: Tensor<B, 2, Int>,
    /// Target tokens ([`PAD`] where `mask` is 0).
    pub targets: Tensor<B, 2, Int>,
    /// 1 where the position is predicted (contributes to the loss), 0 otherwise.
    pub mask: Tensor<B, 2, Int>,
}

/// A batch of fine-tuning examples.
#[derive(Debug, Clone)]
pub struct FineTuneBatch<B: Backend> {
    /// `[batch, len]` tokens: source sequence left-padded, with [`CLS`] (see the module docs).
    pub inputs: Tensor<B, 2, Int>,
    /// `[batch]` labels.
    pub labels: Tensor<B, 1, Int>,
}

/// Host-side rows of a [`SeqBatch`], row-major `[batch, len]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SeqRows {
    /// Number of rows.
    pub batch: usize,
    /// Row length.
    pub len: usize,
    /// Input tokens.
    pub inputs: Vec<u32>,
    /// Target tokens.
    pub targets: Vec<u32>,
    /// Loss mask (0 or 1).
    pub mask: Vec<u32>,
}

/// Host-side rows of a [`FineTuneBatch`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FineTuneRows {
    /// Number of rows.
    pub batch: usize,
    /// Row length.
    pub len: usize,
    /// Input tokens, row-major `[batch, len]`.
    pub inputs: Vec<u32>,
    /// Labels, `[batch]`.
    pub labels: Vec<u32>,
}

fn int_tensor<B: Backend, const D: usize>(
    values: &[u32],
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D, Int> {
    let data: Vec<i64> = values.iter().map(|&v| i64::from(v)).collect();
    Tensor::from_data(TensorData::new(data, shape), device)
}

impl SeqRows {
    fn new(batch: usize, len: usize) -> Self {
        SeqRows {
            batch,
            len,
            inputs: vec![PAD; batch * len],
            targets: vec![PAD; batch * len],
            mask: vec![0; batch * len],
        }
    }

    /// Converts to Burn tensors on `device`.
    pub fn to_batch<B: Backend>(&self, device: &B::Device) -> SeqBatch<B> {
        let shape = [self.batch, self.len];
        SeqBatch {
            inputs: int_tensor(&self.inputs, shape, device),
            targets: int_tensor(&self.targets, shape, device),
            mask: int_tensor(&self.mask, shape, device),
        }
    }

    /// Row `r` of the inputs.
    pub fn input_row(&self, r: usize) -> &[u32] {
        &self.inputs[r * self.len..(r + 1) * self.len]
    }

    /// Number of positions with mask 1.
    pub fn num_predicted(&self) -> usize {
        self.mask.iter().filter(|&&m| m == 1).count()
    }
}

impl FineTuneRows {
    /// Converts to Burn tensors on `device`.
    pub fn to_batch<B: Backend>(&self, device: &B::Device) -> FineTuneBatch<B> {
        FineTuneBatch {
            inputs: int_tensor(&self.inputs, [self.batch, self.len], device),
            labels: int_tensor(&self.labels, [self.batch], device),
        }
    }
}

/// Causal next-item rows: keeps the most recent `max_len + 1` items of each sequence;
/// inputs = `s[..n-1]`, targets = `s[1..]`, left-padded with [`PAD`] to `max_len`; mask 1 on
/// real target positions. A sequence with fewer than 2 items gives an all-padding row.
/// `max_len` is clamped to at least 1.
pub fn next_item_rows(seqs: &[&[u32]], max_len: usize) -> SeqRows {
    let len = max_len.max(1);
    let mut rows = SeqRows::new(seqs.len(), len);
    for (r, s) in seqs.iter().enumerate() {
        let kept = most_recent(s, len + 1);
        if kept.len() < 2 {
            continue;
        }
        let n = kept.len() - 1;
        let off = r * len + (len - n);
        rows.inputs[off..off + n].copy_from_slice(&kept[..n]);
        rows.targets[off..off + n].copy_from_slice(&kept[1..]);
        rows.mask[off..off + n].fill(1);
    }
    rows
}

/// [`next_item_rows`] with each real input item replaced by [`MASK`] with probability `p`
/// (clamped to `[0, 1]`; one draw per real input position, row by row, left to right).
pub fn masked_next_item_rows(
    seqs: &[&[u32]],
    max_len: usize,
    p: f64,
    rng: &mut ChaCha8Rng,
) -> SeqRows {
    let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
    let mut rows = next_item_rows(seqs, max_len);
    for (x, &m) in rows.inputs.iter_mut().zip(&rows.mask) {
        if m == 1 && rng.random::<f64>() < p {
            *x = MASK;
        }
    }
    rows
}

/// BERT-style cloze rows: the most recent `max_len` items, left-padded; `round(0.3 n)` of the
/// `n` item positions (at least 1, at most 30) are chosen; each chosen input becomes [`MASK`]
/// (80%), a uniformly random item in `NUM_RESERVED..num_tokens` (10%) or stays unchanged (10%).
/// Targets hold the original item at chosen positions, [`PAD`] elsewhere; mask marks the chosen
/// positions. If `num_tokens <= NUM_RESERVED` (no item to draw), random replacements use MASK.
pub fn cloze_rows(
    seqs: &[&[u32]],
    max_len: usize,
    num_tokens: usize,
    rng: &mut ChaCha8Rng,
) -> SeqRows {
    let len = max_len.max(1);
    let num_tokens = u32::try_from(num_tokens).unwrap_or(u32::MAX);
    let mut rows = SeqRows::new(seqs.len(), len);
    let mut positions: Vec<usize> = Vec::with_capacity(len);
    for (r, s) in seqs.iter().enumerate() {
        let kept = most_recent(s, len);
        let n = kept.len();
        if n == 0 {
            continue;
        }
        let off = r * len + (len - n);
        rows.inputs[off..off + n].copy_from_slice(kept);
        let k = ((CLOZE_RATIO * n as f64).round() as usize).clamp(1, CLOZE_MAX_MASKED.min(n));
        positions.clear();
        positions.extend(0..n);
        let (chosen, _) = positions.partial_shuffle(rng, k);
        chosen.sort_unstable();
        for &j in chosen.iter() {
            let at = off + j;
            rows.targets[at] = kept[j];
            rows.mask[at] = 1;
            let u = rng.random::<f64>();
            if u < CLOZE_MASK_SHARE {
                rows.inputs[at] = MASK;
            } else if u < CLOZE_MASK_SHARE + CLOZE_RANDOM_SHARE {
                rows.inputs[at] = if num_tokens > NUM_RESERVED {
                    rng.random_range(NUM_RESERVED..num_tokens)
                } else {
                    MASK
                };
            }
        }
    }
    rows
}

/// One model input row: `prefix`, then the most recent `max_len` items of `seq` left-padded
/// with [`PAD`] to exactly `max_len`, then `suffix`; its width is
/// `prefix.len() + max_len + suffix.len()`. Every model input of a history is built by it:
/// fine-tuning rows ([`finetune_rows`], affixes from [`cls_affixes`]), evaluation and serving
/// ([`input_tensor`]).
///
/// ```
/// use peterrec_data::batch::{cls_affixes, input_row};
/// use peterrec_data::{CLS, PAD};
///
/// assert_eq!(input_row(&[5, 6, 7], 4, &[], &[]), vec![PAD, 5, 6, 7]);
/// let (prefix, suffix) = cls_affixes(false);
/// assert_eq!(input_row(&[5, 6, 7], 2, prefix, suffix), vec![CLS, 6, 7, CLS]);
/// ```
pub fn input_row(seq: &[u32], max_len: usize, prefix: &[u32], suffix: &[u32]) -> Vec<u32> {
    let mut row = Vec::with_capacity(prefix.len() + max_len + suffix.len());
    push_input_row(&mut row, seq, max_len, prefix, suffix);
    row
}

/// Appends [`input_row`]`(seq, max_len, prefix, suffix)` to `out`.
fn push_input_row(out: &mut Vec<u32>, seq: &[u32], max_len: usize, prefix: &[u32], suffix: &[u32]) {
    out.extend_from_slice(prefix);
    left_pad_into(out, seq, max_len);
    out.extend_from_slice(suffix);
}

/// Where a fine-tuned model reads its user vector, as the `(prefix, suffix)` of [`input_row`]:
/// [`CLS`] as the last column for a causal backbone, [`CLS`] as both the first and the last
/// column for a non-causal (centred) one.
pub fn cls_affixes(causal: bool) -> (&'static [u32], &'static [u32]) {
    if causal {
        (&[], &[CLS])
    } else {
        (&[CLS], &[CLS])
    }
}

/// A `[seqs.len(), prefix.len() + max_len + suffix.len()]` `Int` tensor whose row `r` is
/// [`input_row`]`(seqs[r], max_len, prefix, suffix)`.
pub fn input_tensor<B: Backend, S: AsRef<[u32]>>(
    seqs: &[S],
    max_len: usize,
    prefix: &[u32],
    suffix: &[u32],
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    let len = prefix.len() + max_len + suffix.len();
    let mut values = Vec::with_capacity(seqs.len() * len);
    for s in seqs {
        push_input_row(&mut values, s.as_ref(), max_len, prefix, suffix);
    }
    int_tensor(&values, [seqs.len(), len], device)
}

/// Fine-tuning rows: the [`input_row`] of each example's sequence with `max_len` items and the
/// [`CLS`] affixes of [`cls_affixes`]: [`CLS`] as the last column (`causal`, width
/// `max_len + 1`), or as both the first and the last column (non-causal, width `max_len + 2`),
/// where `peterrec_model`'s `FineTuneModel` reads the user vector. `max_len` is clamped to at
/// least 1.
pub fn finetune_rows(examples: &[&FineTuneExample], max_len: usize, causal: bool) -> FineTuneRows {
    let max_len = max_len.max(1);
    let (prefix, suffix) = cls_affixes(causal);
    let len = prefix.len() + max_len + suffix.len();
    let mut inputs = Vec::with_capacity(examples.len() * len);
    for e in examples {
        push_input_row(&mut inputs, &e.seq, max_len, prefix, suffix);
    }
    FineTuneRows {
        batch: examples.len(),
        len,
        inputs,
        labels: examples.iter().map(|e| e.label).collect(),
    }
}

/// Causal next-item batch; see [`next_item_rows`].
pub fn next_item_batch<B: Backend>(
    seqs: &[&[u32]],
    max_len: usize,
    device: &B::Device,
) -> SeqBatch<B> {
    next_item_rows(seqs, max_len).to_batch(device)
}

/// Masked next-item batch; see [`masked_next_item_rows`].
pub fn masked_next_item_batch<B: Backend>(
    seqs: &[&[u32]],
    max_len: usize,
    p: f64,
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> SeqBatch<B> {
    masked_next_item_rows(seqs, max_len, p, rng).to_batch(device)
}

/// Cloze batch; see [`cloze_rows`]. `num_tokens` is the vocabulary size ([`crate::Vocab::len`]).
pub fn cloze_batch<B: Backend>(
    seqs: &[&[u32]],
    max_len: usize,
    num_tokens: usize,
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> SeqBatch<B> {
    cloze_rows(seqs, max_len, num_tokens, rng).to_batch(device)
}

/// Fine-tuning batch; see [`finetune_rows`].
pub fn finetune_batch<B: Backend>(
    examples: &[&FineTuneExample],
    max_len: usize,
    causal: bool,
    device: &B::Device,
) -> FineTuneBatch<B> {
    finetune_rows(examples, max_len, causal).to_batch(device)
}

/// A sequence objective, as a value: what a training loop holds to make its batches.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum SeqObjective {
    /// Causal next-item prediction ([`next_item_rows`]).
    NextItem,
    /// Next-item prediction with inputs masked with probability `p` ([`masked_next_item_rows`]).
    MaskedNextItem {
        /// Masking probability.
        p: f64,
    },
    /// BERT-style cloze ([`cloze_rows`]).
    Cloze {
        /// Vocabulary size (random replacements are drawn below it).
        num_tokens: usize,
    },
}

impl std::str::FromStr for SeqObjective {
    type Err = crate::error::DataError;

    /// Parses `next` (next item at every position) or `masked:P` (next item with inputs masked
    /// with probability `0 <= P < 1`). The cloze objective needs the vocabulary size and is built
    /// in code.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        if s == "next" {
            return Ok(SeqObjective::NextItem);
        }
        match s.strip_prefix("masked:").map(str::parse::<f64>) {
            Some(Ok(p)) if (0.0..1.0).contains(&p) => Ok(SeqObjective::MaskedNextItem { p }),
            _ => Err(crate::error::DataError::InvalidConfig(format!(
                "unknown objective `{s}` (expected `next` or `masked:P` with 0 <= P < 1)"
            ))),
        }
    }
}

impl SeqObjective {
    /// Host-side rows for `seqs`.
    pub fn rows(&self, seqs: &[&[u32]], max_len: usize, rng: &mut ChaCha8Rng) -> SeqRows {
        match *self {
            SeqObjective::NextItem => next_item_rows(seqs, max_len),
            SeqObjective::MaskedNextItem { p } => masked_next_item_rows(seqs, max_len, p, rng),
            SeqObjective::Cloze { num_tokens } => cloze_rows(seqs, max_len, num_tokens, rng),
        }
    }

    /// Tensor batch for `seqs`.
    pub fn batch<B: Backend>(
        &self,
        seqs: &[&[u32]],
        max_len: usize,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> SeqBatch<B> {
        self.rows(seqs, max_len, rng).to_batch(device)
    }
}

/// Indices `0..n` grouped into batches of at most `batch_size` (clamped to at least 1),
/// shuffled with `rng` when given, in order otherwise.
pub fn epoch_batches(n: usize, batch_size: usize, rng: Option<&mut ChaCha8Rng>) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    if let Some(rng) = rng {
        order.shuffle(rng);
    }
    order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn next_item_layout() {
        let a = [10u32, 11, 12, 13];
        let b = [20u32];
        let c = [30u32, 31, 32, 33, 34, 35, 36];
        let rows = next_item_rows(&[&a, &b, &c], 5);
        assert_eq!((rows.batch, rows.len), (3, 5));
        assert_eq!(rows.input_row(0), &[0, 0, 10, 11, 12]);
        assert_eq!(&rows.targets[0..5], &[0, 0, 11, 12, 13]);
        assert_eq!(&rows.mask[0..5], &[0, 0, 1, 1, 1]);
        assert_eq!(rows.input_row(1), &[0; 5]);
        assert_eq!(&rows.mask[5..10], &[0; 5]);
        // The most recent max_len + 1 = 6 items: 31..=36.
        assert_eq!(rows.input_row(2), &[31, 32, 33, 34, 35]);
        assert_eq!(&rows.targets[10..15], &[32, 33, 34, 35, 36]);
        assert_eq!(rows.num_predicted(), 8);
    }

    #[test]
    fn masked_next_item_extremes() {
        let a = [10u32, 11, 12, 13];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let none = masked_next_item_rows(&[&a], 4, 0.0, &mut rng);
        assert_eq!(none, next_item_rows(&[&a], 4));
        let all = masked_next_item_rows(&[&a], 4, 1.0, &mut rng);
        assert_eq!(all.input_row(0), &[0, MASK, MASK, MASK]);
        assert_eq!(all.targets, next_item_rows(&[&a], 4).targets);
    }

    #[test]
    fn cloze_counts_and_replacements() {
        let long: Vec<u32> = (4..204).collect(); // 200 items
        let short = [7u32, 8];
        let mid: Vec<u32> = (4..14).collect(); // 10 items -> 3 masked
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut masked = 0usize;
        let mut kept = 0usize;
        let mut random = 0usize;
        for _ in 0..200 {
            let rows = cloze_rows(&[&long, &short, &mid], 100, 300, &mut rng);
            let per_row: Vec<usize> = (0..3)
                .map(|r| rows.mask[r * 100..(r + 1) * 100].iter().sum::<u32>() as usize)
                .collect();
            assert_eq!(per_row, vec![30, 1, 3]);
            for i in 0..rows.inputs.len() {
                if rows.mask[i] == 1 {
                    assert_ne!(rows.targets[i], PAD);
                    match rows.inputs[i] {
                        MASK => masked += 1,
                        x if x == rows.targets[i] => kept += 1,
                        x => {
                            assert!((NUM_RESERVED..300).contains(&x));
                            random += 1
                        }
                    }
                } else {
                    assert_eq!(rows.targets[i], PAD);
                }
            }
        }
        let total = (masked + kept + random) as f64;
        assert!(
            (masked as f64 / total - 0.8).abs() < 0.03,
            "{masked} of {total}"
        );
        assert!(random as f64 / total > 0.07 && (kept as f64 / total) > 0.07);
    }

    #[test]
    fn finetune_layout() {
        let e1 = FineTuneExample {
            user: "a".into(),
            seq: vec![10, 11],
            label: 1,
        };
        let e2 = FineTuneExample {
            user: "b".into(),
            seq: vec![20, 21, 22, 23, 24],
            label: 0,
        };
        let causal = finetune_rows(&[&e1, &e2], 4, true);
        assert_eq!(causal.len, 5);
        assert_eq!(&causal.inputs[..5], &[0, 0, 10, 11, CLS]);
        assert_eq!(&causal.inputs[5..], &[21, 22, 23, 24, CLS]);
        assert_eq!(causal.labels, vec![1, 0]);
        let bi = finetune_rows(&[&e1, &e2], 4, false);
        assert_eq!(bi.len, 6);
        assert_eq!(&bi.inputs[..6], &[CLS, 0, 0, 10, 11, CLS]);
        assert_eq!(&bi.inputs[6..], &[CLS, 21, 22, 23, 24, CLS]);
    }

    #[test]
    fn input_rows_pad_truncate_and_affix() {
        assert_eq!(
            input_row(&[5, 6, 7], 5, &[], &[CLS]),
            vec![0, 0, 5, 6, 7, CLS]
        );
        assert_eq!(input_row(&[5, 6, 7, 8], 2, &[], &[]), vec![7, 8]);
        assert_eq!(input_row(&[5, 6], 0, &[], &[CLS]), vec![CLS]);
        assert_eq!(input_row(&[], 2, &[CLS], &[CLS]), vec![CLS, PAD, PAD, CLS]);
        let e = FineTuneExample {
            user: "u".into(),
            seq: vec![4, 5, 6, 7, 8, 9],
            label: 1,
        };
        let device = Default::default();
        for causal in [true, false] {
            let rows = finetune_rows(&[&e, &e], 3, causal);
            let (prefix, suffix) = cls_affixes(causal);
            let t = input_tensor::<burn::backend::NdArray, _>(
                &[e.seq.clone(), e.seq.clone()],
                3,
                prefix,
                suffix,
                &device,
            );
            assert_eq!(t.dims(), [2, rows.len]);
            let got: Vec<i64> = t.into_data().convert::<i64>().to_vec().unwrap();
            let want: Vec<i64> = rows.inputs.iter().map(|&v| i64::from(v)).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn epoch_batches_cover_everything() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let b = epoch_batches(10, 4, Some(&mut rng));
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 2]);
        let mut all: Vec<usize> = b.concat();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(epoch_batches(3, 0, None), vec![vec![0], vec![1], vec![2]]);
    }
}
