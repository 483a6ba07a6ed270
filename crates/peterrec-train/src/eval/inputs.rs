//! Model inputs built from item histories, as the loops, the evaluation and the server feed
//! them to a model.

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use peterrec_data::batch::finetune_rows;
use peterrec_data::task::FineTuneExample;
use peterrec_data::vocab::PAD;

/// The most recent `max_len` items of `seq`, left-padded with PAD, followed by `suffix`.
pub fn left_padded(seq: &[u32], max_len: usize, suffix: &[u32]) -> Vec<i64> {
    let keep = &seq[seq.len().saturating_sub(max_len)..];
    let mut row = vec![PAD as i64; max_len - keep.len()];
    row.extend(keep.iter().map(|&v| v as i64));
    row.extend(suffix.iter().map(|&v| v as i64));
    row
}

/// Builds a `[rows, len]` Int tensor from equal-length rows.
pub fn int_rows<B: Backend>(rows: Vec<Vec<i64>>, device: &B::Device) -> Tensor<B, 2, Int> {
    let n = rows.len();
    let l = rows.first().map_or(0, Vec::len);
    let flat: Vec<i64> = rows.into_iter().flatten().collect();
    Tensor::from_data(TensorData::new(flat, [n, l]), device)
}

/// Fine-tuning inputs of `examples` (see [`finetune_rows`]: `[CLS]` appended, or at both ends).
pub(crate) fn finetune_inputs<B: Backend>(
    examples: &[FineTuneExample],
    max_len: usize,
    causal: bool,
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    let refs: Vec<&FineTuneExample> = examples.iter().collect();
    finetune_rows(&refs, max_len, causal)
        .to_batch::<B>(device)
        .inputs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_padding_keeps_the_most_recent_items() {
        assert_eq!(left_padded(&[5, 6, 7], 5, &[2]), vec![0, 0, 5, 6, 7, 2]);
        assert_eq!(left_padded(&[5, 6, 7, 8], 2, &[]), vec![7, 8]);
    }
}
