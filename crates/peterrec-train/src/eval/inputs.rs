//! Model inputs built from item histories, as the loops, the evaluation and the server feed
//! them to a model.

use burn::tensor::{backend::Backend, Int, Tensor};
use peterrec_data::batch::{finetune_rows, input_row};
use peterrec_data::task::FineTuneExample;

/// The most recent `max_len` items of `seq`, left-padded with PAD, followed by `suffix`: the
/// [`input_row`] of `seq` as `i64` tensor values.
pub fn left_padded(seq: &[u32], max_len: usize, suffix: &[u32]) -> Vec<i64> {
    input_row(seq, max_len, &[], suffix)
        .into_iter()
        .map(i64::from)
        .collect()
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
