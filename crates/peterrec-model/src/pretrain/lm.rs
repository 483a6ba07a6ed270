//! The pretraining model: backbone plus softmax head, with the next-item and cloze objectives.

use burn::module::Module;
use burn::tensor::{
    activation::relu,
    backend::{AutodiffBackend, Backend},
    Bool, DType, Int, Tensor, TensorData,
};
use rand_chacha::ChaCha8Rng;

use crate::backbone::{NextItNet, NextItNetConfig};
use crate::error::Result as ModelResult;
use crate::head::{SoftmaxHead, SoftmaxHeadConfig};
use crate::loss::{
    cross_entropy, masked_positions, sampled_softmax_loss, select_positions, LossOutput,
};
use crate::ops::cross_entropy::linear_cross_entropy;
use crate::ops::host::{route_for, Route};
use crate::ops::sampled::{sampled_cross_entropy, Candidates};
use crate::sampled::NegativeSampler;

/// NextItNet with its pretraining head.
///
/// All three pretraining objectives share one loss: predict `targets` at the positions where
/// `mask` is 1. Causal next-item (targets are the inputs shifted by one), masked next-item (some
/// inputs replaced by MASK) and the centred cloze objective (targets only at masked positions)
/// differ only in the batch, which `peterrec_data::batch` builds.
#[derive(Module, Debug)]
pub struct NextItNetLM<B: Backend> {
    /// The backbone.
    pub backbone: NextItNet<B>,
    /// The pretraining head.
    pub head: SoftmaxHead<B>,
}

impl NextItNetConfig {
    /// Builds the backbone and the original NextItNet pretraining head, with its own output
    /// weight ([`Self::init_lm_with`] to choose).
    pub fn init_lm<B: Backend>(&self, device: &B::Device) -> ModelResult<NextItNetLM<B>> {
        self.init_lm_with(false, device)
    }

    /// Builds the backbone and its pretraining head, scoring items with the item embedding
    /// table when `tied` ([`SoftmaxHeadConfig::tied`]).
    pub fn init_lm_with<B: Backend>(
        &self,
        tied: bool,
        device: &B::Device,
    ) -> ModelResult<NextItNetLM<B>> {
        let backbone = self.try_init(device)?;
        let head = SoftmaxHeadConfig::new(self.channels, self.num_tokens)
            .with_tied(tied)
            .with_init_std(self.init_std)
            .with_seed(self.seed)
            .init(device);
        Ok(NextItNetLM { backbone, head })
    }
}

impl<B: Backend> NextItNetLM<B> {
    /// Logits at every position.
    ///
    /// # Shapes
    /// - tokens: `[batch, length]`
    /// - output: `[batch, length, V]`
    pub fn forward(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.head.forward(
            self.backbone.forward(tokens),
            &self.backbone.embedding.weight,
        )
    }

    /// Logits of the item following the last position (next-item scores). Only the positions
    /// that the last one depends on are computed ([`crate::NextItNet::forward_at`]).
    ///
    /// # Shapes
    /// - tokens: `[batch, length]`
    /// - output: `[batch, V]`
    pub fn next_item_logits(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        let [b, l] = tokens.dims();
        let hidden = self.backbone.forward_at(tokens, &[l - 1]);
        let c = hidden.dims()[2];
        self.head
            .forward(hidden.reshape([b, c]), &self.backbone.embedding.weight)
    }

    /// Hidden states and targets at the positions where `mask` is 1 (`None` if there are none).
    ///
    /// # Shapes
    /// - inputs, targets, mask: `[batch, length]`
    /// - output: `([n, C], [n])`
    fn predicted_states(
        &self,
        inputs: Tensor<B, 2, Int>,
        targets: Tensor<B, 2, Int>,
        mask: &Tensor<B, 2, Int>,
    ) -> Option<(Tensor<B, 2>, Tensor<B, 1, Int>)> {
        let index = masked_positions(mask);
        if index.is_empty() {
            return None;
        }
        Some(select_positions(
            self.backbone.forward(inputs),
            targets,
            &index,
        ))
    }

    /// Full-softmax cross-entropy over the positions where `mask` is 1; only those positions go
    /// through the `C × V` projection.
    ///
    /// # Shapes
    /// - inputs, targets, mask: `[batch, length]`
    pub fn loss(
        &self,
        inputs: Tensor<B, 2, Int>,
        targets: Tensor<B, 2, Int>,
        mask: &Tensor<B, 2, Int>,
    ) -> LossOutput<B> {
        let Some((h, t)) = self.predicted_states(inputs, targets, mask) else {
            return empty_loss(&mask.device());
        };
        let count = t.dims()[0];
        LossOutput {
            loss: cross_entropy(self.head.forward(h, &self.backbone.embedding.weight), t),
            count,
        }
    }

    /// Sampled-softmax cross-entropy over the positions where `mask` is 1: each position's
    /// true item against negatives shared by the batch, with `log Q` correction and accidental
    /// hits removed.
    ///
    /// # Shapes
    /// - inputs, targets, mask: `[batch, length]`
    pub fn sampled_loss(
        &self,
        inputs: Tensor<B, 2, Int>,
        targets: Tensor<B, 2, Int>,
        mask: &Tensor<B, 2, Int>,
        sampler: &NegativeSampler,
        rng: &mut ChaCha8Rng,
    ) -> LossOutput<B> {
        let device = mask.device();
        let Some((h, t)) = self.predicted_states(inputs, targets, mask) else {
            return empty_loss(&device);
        };
        let h = relu(h);
        let n = t.dims()[0];
        let true_ids: Vec<i64> = t.to_data().convert::<i64>().to_vec().expect("int targets");
        let negatives = sampler.sample(rng);
        let true_log_q: Vec<f32> = true_ids.iter().map(|&i| sampler.log_q(i as u32)).collect();
        let neg_log_q: Vec<f32> = negatives.iter().map(|&i| sampler.log_q(i)).collect();
        let (weight, bias) = self.head.weight_and_bias(&self.backbone.embedding.weight); // [C, V]
        let dtypes = [
            h.dtype(),
            weight.dtype(),
            bias.as_ref().map_or(DType::F32, |b| b.dtype()),
        ];
        match (route_for::<B>(&dtypes), &bias) {
            (Route::Tensor, _) | (_, None) => {}
            (route, Some(bias)) => {
                let targets: Vec<usize> = true_ids.iter().map(|&t| t as usize).collect();
                let negatives: Vec<usize> = negatives.iter().map(|&j| j as usize).collect();
                let candidates = Candidates {
                    targets: &targets,
                    negatives: &negatives,
                    true_log_q: &true_log_q,
                    neg_log_q: &neg_log_q,
                };
                let loss = sampled_cross_entropy(route, h, weight, bias.clone(), &candidates);
                return LossOutput { loss, count: n };
            }
        }
        let loss = tensor_sampled_loss(
            h, weight, bias, t, &true_ids, &negatives, true_log_q, neg_log_q,
        );
        LossOutput { loss, count: n }
    }
}

impl<B: AutodiffBackend> NextItNetLM<B> {
    /// The full-softmax training loss: the value of [`NextItNetLM::loss`], with the head and its
    /// softmax cross-entropy fused ([`linear_cross_entropy`]) so that no `[n, V]` tensor enters
    /// the autodiff graph. The pretraining loop uses this one.
    ///
    /// # Shapes
    /// - inputs, targets, mask: `[batch, length]`
    pub fn train_loss(
        &self,
        inputs: Tensor<B, 2, Int>,
        targets: Tensor<B, 2, Int>,
        mask: &Tensor<B, 2, Int>,
    ) -> LossOutput<B> {
        let Some((h, t)) = self.predicted_states(inputs, targets, mask) else {
            return empty_loss(&mask.device());
        };
        let count = t.dims()[0];
        let (weight, bias) = self.head.weight_and_bias(&self.backbone.embedding.weight);
        LossOutput {
            loss: linear_cross_entropy(relu(h), weight, bias, t),
            count,
        }
    }
}

/// The sampled-softmax loss by Burn tensor operations (any backend; the reference of the host
/// route, `crate::ops::sampled`).
///
/// # Shapes
/// - h: `[n, C]`, weight: `[C, V]`, bias: `[V]`, t: `[n]` (its values also in `true_ids`)
#[allow(clippy::too_many_arguments)]
pub(crate) fn tensor_sampled_loss<B: Backend>(
    h: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
    t: Tensor<B, 1, Int>,
    true_ids: &[i64],
    negatives: &[u32],
    true_log_q: Vec<f32>,
    neg_log_q: Vec<f32>,
) -> Tensor<B, 1> {
    let device = h.device();
    let n = t.dims()[0];
    let s = negatives.len();
    let neg_ids: Vec<i64> = negatives.iter().map(|&v| v as i64).collect();
    let neg_idx = Tensor::<B, 1, Int>::from_data(TensorData::new(neg_ids.clone(), [s]), &device);
    let mut neg_logits = h.clone().matmul(weight.clone().select(1, neg_idx.clone()));
    let true_w = weight.select(1, t.clone()).transpose(); // [n, C]
    let mut true_logits = (h * true_w).sum_dim(1).reshape([n]);
    if let Some(bias) = bias {
        neg_logits = neg_logits + bias.clone().select(0, neg_idx).reshape([1, s]);
        true_logits = true_logits + bias.select(0, t);
    }
    let hits: Vec<bool> = true_ids
        .iter()
        .flat_map(|&ti| neg_ids.iter().map(move |&ni| ni == ti))
        .collect();
    sampled_softmax_loss(
        true_logits,
        neg_logits,
        Tensor::from_data(TensorData::new(true_log_q, [n]), &device),
        Tensor::from_data(TensorData::new(neg_log_q, [s]), &device),
        Tensor::<B, 2, Bool>::from_data(TensorData::new(hits, [n, s]), &device),
    )
}

fn empty_loss<B: Backend>(device: &B::Device) -> LossOutput<B> {
    LossOutput {
        loss: Tensor::zeros([1], device),
        count: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampled::NegativeDistribution;
    use burn::backend::{Autodiff, NdArray};
    use rand::SeedableRng;

    type A = Autodiff<NdArray<f32>>;

    #[test]
    fn the_sampled_loss_takes_the_host_route_and_matches_the_tensor_route() {
        let device = Default::default();
        let lm = NextItNetConfig::new(30, 8, vec![1, 2])
            .init_lm::<A>(&device)
            .unwrap();
        let rows = |v: &[[i64; 5]; 2]| {
            Tensor::<A, 2, Int>::from_data(TensorData::new(v.concat(), [2, 5]), &device)
        };
        let inputs = rows(&[[0, 5, 6, 7, 8], [9, 10, 11, 12, 13]]);
        let targets = rows(&[[0, 6, 7, 8, 9], [10, 11, 12, 13, 14]]);
        let mask = rows(&[[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]]);
        let sampler = NegativeSampler {
            num_negatives: 6,
            distribution: NegativeDistribution::Uniform,
            first_item: 4,
            num_tokens: 30,
        };
        let before = crate::ops::host::host_runs();
        let host = lm.sampled_loss(
            inputs.clone(),
            targets.clone(),
            &mask,
            &sampler,
            &mut ChaCha8Rng::seed_from_u64(3),
        );
        assert!(crate::ops::host::host_runs() > before, "the host route ran");
        // The same negatives through the tensor route.
        let negatives = sampler.sample(&mut ChaCha8Rng::seed_from_u64(3));
        let (h, t) = lm.predicted_states(inputs, targets, &mask).unwrap();
        let ids: Vec<i64> = t.to_data().convert::<i64>().to_vec().unwrap();
        let true_log_q = ids.iter().map(|&i| sampler.log_q(i as u32)).collect();
        let neg_log_q = negatives.iter().map(|&i| sampler.log_q(i)).collect();
        let (weight, bias) = lm.head.weight_and_bias(&lm.backbone.embedding.weight);
        let tensor = tensor_sampled_loss(
            relu(h),
            weight,
            bias,
            t,
            &ids,
            &negatives,
            true_log_q,
            neg_log_q,
        );
        assert_eq!(host.count, 9);
        let (a, b) = (host.loss.into_scalar(), tensor.into_scalar());
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }

    #[test]
    fn a_tied_head_trains_the_item_table_through_the_fused_loss() {
        let device = Default::default();
        let cfg = NextItNetConfig::new(30, 8, vec![1, 2]).with_seed(5);
        let rows = |v: &[[i64; 5]; 2]| {
            Tensor::<A, 2, Int>::from_data(TensorData::new(v.concat(), [2, 5]), &device)
        };
        let inputs = rows(&[[0, 5, 6, 7, 8], [9, 10, 11, 12, 13]]);
        let targets = rows(&[[0, 6, 7, 8, 9], [10, 11, 12, 13, 14]]);
        let mask = rows(&[[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]]);
        // The loss and the item table's gradient, by the fused loss or by autodiff.
        let run = |tied: bool, fused: bool| -> (f32, Vec<f32>) {
            let lm = cfg.init_lm_with::<A>(tied, &device).unwrap();
            let out = if fused {
                lm.train_loss(inputs.clone(), targets.clone(), &mask)
            } else {
                lm.loss(inputs.clone(), targets.clone(), &mask)
            };
            let loss = out.loss.clone().into_scalar();
            let grads = out.loss.backward();
            let g = lm.backbone.embedding.weight.grad(&grads).unwrap();
            (loss, g.into_data().to_vec().unwrap())
        };
        let (fused_loss, fused) = run(true, true);
        let (reference_loss, reference) = run(true, false);
        assert!((fused_loss - reference_loss).abs() < 1e-5);
        for (a, b) in fused.iter().zip(&reference) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // Item 29 is neither an input nor a target: only the output side reaches its row.
        let row = |g: &[f32]| g[29 * 8..30 * 8].to_vec();
        assert!(row(&fused).iter().any(|&x| x != 0.0));
        assert!(row(&run(false, true).1).iter().all(|&x| x == 0.0));
        // The tied head has no weight of its own.
        let params = |tied: bool| cfg.init_lm_with::<A>(tied, &device).unwrap().num_params();
        assert_eq!(params(false) - params(true), 8 * 30);
    }
}
