//! Losses over selected positions: full softmax, sampled softmax and sampled binary cross-entropy.

use burn::tensor::{
    activation::{log_sigmoid, log_softmax},
    backend::Backend,
    Int, Tensor,
};

use crate::positions::index_tensor;

/// A scalar loss and the number of predictions it averages.
#[derive(Debug, Clone)]
pub struct LossOutput<B: Backend> {
    /// Mean loss over the predicted positions, shape `[1]`.
    pub loss: Tensor<B, 1>,
    /// Number of predicted positions (0 gives a zero loss).
    pub count: usize,
}

/// Flat indices `b·L + t` of the positions where `mask` is non-zero, read on the host.
///
/// # Shapes
/// - mask: `[batch, length]`
pub fn masked_positions<B: Backend>(mask: &Tensor<B, 2, Int>) -> Vec<i64> {
    let values: Vec<i64> = mask
        .to_data()
        .convert::<i64>()
        .to_vec()
        .expect("integer mask");
    values
        .iter()
        .enumerate()
        .filter(|(_, &m)| m != 0)
        .map(|(i, _)| i as i64)
        .collect()
}

/// Gathers the rows of `hidden` (`[batch, length, C]`) and `targets` (`[batch, length]`) at the
/// flat positions `index` into `([n, C], [n])`.
pub fn select_positions<B: Backend>(
    hidden: Tensor<B, 3>,
    targets: Tensor<B, 2, Int>,
    index: &[i64],
) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
    let [b, l, c] = hidden.dims();
    let device = hidden.device();
    let idx = index_tensor::<B>(index.to_vec(), &device);
    let h = hidden.reshape([b * l, c]).select(0, idx.clone());
    let t = targets.reshape([b * l]).select(0, idx);
    (h, t)
}

/// Mean cross-entropy of `logits` (`[n, V]`) against `targets` (`[n]`).
pub fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    let n = targets.dims()[0];
    let logp = log_softmax(logits, 1);
    let picked = logp.gather(1, targets.reshape([n, 1]));
    picked.mean().neg()
}

/// Sampled-softmax cross-entropy.
///
/// Each row's candidates are its true item plus `S` negatives shared by the batch. Logits are
/// corrected by `−log Q` (the expected number of times the sampler draws the candidate), and a
/// negative equal to the row's true item (an accidental hit) is removed from that row.
///
/// # Shapes
/// - true_logits: `[n]`, logit of each row's true item
/// - neg_logits: `[n, S]`
/// - true_log_q: `[n]`, `log Q(true item)`
/// - neg_log_q: `[S]`
/// - hits: `[n, S]`, true where the negative equals the row's true item
pub fn sampled_softmax_loss<B: Backend>(
    true_logits: Tensor<B, 1>,
    neg_logits: Tensor<B, 2>,
    true_log_q: Tensor<B, 1>,
    neg_log_q: Tensor<B, 1>,
    hits: Tensor<B, 2, burn::tensor::Bool>,
) -> Tensor<B, 1> {
    let [n, s] = neg_logits.dims();
    let pos = (true_logits - true_log_q).reshape([n, 1]);
    let neg = (neg_logits - neg_log_q.reshape([1, s])).mask_fill(hits, -1.0e9);
    let logits = Tensor::cat(vec![pos, neg], 1);
    let logp = log_softmax(logits, 1);
    logp.narrow(1, 0, 1).mean().neg()
}

/// Binary cross-entropy with sampled negatives: `−log σ(s⁺) − Σ log(1 − σ(s⁻))`, averaged over rows.
///
/// # Shapes
/// - pos_scores: `[n]`
/// - neg_scores: `[n, S]`
pub fn bce_negatives_loss<B: Backend>(
    pos_scores: Tensor<B, 1>,
    neg_scores: Tensor<B, 2>,
) -> Tensor<B, 1> {
    let [n, _] = neg_scores.dims();
    let pos = log_sigmoid(pos_scores);
    let neg = log_sigmoid(neg_scores.neg()).sum_dim(1).reshape([n]);
    (pos + neg).mean().neg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::TensorData;

    type B = NdArray<f32>;

    fn t2(v: Vec<f32>, s: [usize; 2]) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(v, s), &Default::default())
    }

    #[test]
    fn cross_entropy_matches_hand_computation() {
        // Row 0: logits [0, ln 3] target 1 -> p = 3/4; row 1: [0, 0] target 0 -> p = 1/2.
        let logits = t2(vec![0.0, 3f32.ln(), 0.0, 0.0], [2, 2]);
        let targets = Tensor::<B, 1, Int>::from_data(
            TensorData::new(vec![1i64, 0], [2]),
            &Default::default(),
        );
        let got = cross_entropy(logits, targets).into_scalar();
        let want = -((0.75f32).ln() + (0.5f32).ln()) / 2.0;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }

    #[test]
    fn sampled_softmax_removes_accidental_hits_and_applies_log_q() {
        let d = Default::default();
        let true_logits = Tensor::<B, 1>::from_data(TensorData::new(vec![1.0f32], [1]), &d);
        let neg_logits = t2(vec![1.0, 2.0], [1, 2]);
        let zeros = Tensor::<B, 1>::zeros([1], &d);
        let log_q = Tensor::<B, 1>::from_data(TensorData::new(vec![0.0f32, 2.0f32.ln()], [2]), &d);
        let hits = Tensor::<B, 2, burn::tensor::Bool>::from_data(
            TensorData::new(vec![true, false], [1, 2]),
            &d,
        );
        let got = sampled_softmax_loss(true_logits, neg_logits, zeros, log_q, hits).into_scalar();
        // Candidates: true e^1, negative 2 with logit 2 - ln 2; the hit is gone.
        let want = -(1f32.exp() / (1f32.exp() + (2f32.exp() / 2.0))).ln();
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn bce_matches_hand_computation() {
        let d = Default::default();
        let pos = Tensor::<B, 1>::from_data(TensorData::new(vec![0.0f32], [1]), &d);
        let neg = t2(vec![0.0, 0.0], [1, 2]);
        let got = bce_negatives_loss(pos, neg).into_scalar();
        let want = 3.0 * 2f32.ln();
        assert!((got - want).abs() < 1e-6);
    }
}
