//! Evaluation of trained models: next-item ranking by a pretrained model, and target-item
//! ranking or classification by a fine-tuned one.

use burn::config::Config;
use burn::tensor::{backend::Backend, Tensor};
use peterrec_data::batch::input_tensor;
use peterrec_data::sampler::ItemSampler;
use peterrec_data::split::NextItemExample;
use peterrec_data::task::FineTuneExample;
use peterrec_data::vocab::NUM_RESERVED;
use peterrec_model::{FineTuneModel, HeadKind, NextItNetLM};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::classification::{argmax_rows, ClassificationReport};
use super::inputs::finetune_inputs;
use super::ranking::{
    exclusion_mask, positives_tensor, ranks_from_scores, RankingMeans, RankingMetrics,
};
use super::sampled::{sampled_rank_for_user, sampled_rank_with};

/// Options of a ranking evaluation.
#[derive(Config, Debug)]
pub struct RankingOptions {
    /// Cut-offs `k` (default 5, 10 and 20).
    #[config(default = "vec![5, 10, 20]")]
    pub ks: Vec<usize>,
    /// Never rank the items already in the user's history (default true).
    #[config(default = true)]
    pub exclude_history: bool,
    /// Users per forward pass (default 256).
    #[config(default = 256)]
    pub batch_size: usize,
    /// Also report the older papers' sampled protocol, the positive against 100 negatives drawn
    /// uniformly (default true).
    #[config(default = true)]
    pub sampled: bool,
    /// Training count of every item, indexed like the scores. With `sampled`, the report also
    /// holds the popularity-weighted sampled protocol: 100 negatives drawn in proportion to
    /// these counts (default none; [`Pretrained::test_report`](crate::Pretrained::test_report)
    /// fills it from the training sequences).
    pub popularity: Option<Vec<u64>>,
    /// Seed of the sampled protocols' negatives (default 0).
    #[config(default = 0)]
    pub seed: u64,
}

impl Default for RankingOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Full-ranking metrics, and the sampled protocols' beside them when asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankingReport {
    /// Full ranking over the whole catalogue.
    pub full: RankingMeans,
    /// The sampled protocol with 100 uniform negatives, named as such.
    pub sampled: Option<RankingMeans>,
    /// The sampled protocol with 100 popularity-weighted negatives, named as such.
    #[serde(default)]
    pub sampled_popularity: Option<RankingMeans>,
}

impl RankingReport {
    /// Flat `name → value` map (`hr@10`, `sampled_hr@10`, `sampled_pop_hr@10`, ...).
    pub fn flat(&self) -> std::collections::BTreeMap<String, f64> {
        let mut m = self.full.to_flat_map("");
        if let Some(s) = &self.sampled {
            m.extend(s.to_flat_map("sampled_"));
        }
        if let Some(s) = &self.sampled_popularity {
            m.extend(s.to_flat_map("sampled_pop_"));
        }
        m
    }
}

/// Running full and sampled ranking metrics of one evaluation.
pub(super) struct Accumulator {
    full: RankingMetrics,
    sampled: Option<(RankingMetrics, ChaCha8Rng)>,
    popular: Option<(ItemSampler, RankingMetrics, ChaCha8Rng)>,
}

impl Accumulator {
    /// Empty metrics for `opts`. A popularity sampler is built from `opts.popularity` (when
    /// `opts.sampled`); counts that are all zero leave that protocol out.
    pub(super) fn new(opts: &RankingOptions) -> Self {
        let popular = opts
            .popularity
            .as_ref()
            .filter(|_| opts.sampled)
            .and_then(|counts| {
                let n = u32::try_from(counts.len()).ok()?;
                ItemSampler::popularity(counts, 0..n, 1.0).ok()
            })
            .map(|s| {
                let rng = ChaCha8Rng::seed_from_u64(opts.seed ^ POPULARITY_STREAM);
                (s, RankingMetrics::new(&opts.ks), rng)
            });
        Self {
            full: RankingMetrics::new(&opts.ks),
            sampled: opts.sampled.then(|| {
                let rng = ChaCha8Rng::seed_from_u64(opts.seed);
                (RankingMetrics::new(&opts.ks), rng)
            }),
            popular,
        }
    }

    /// Whether a sampled protocol needs the scores on the host.
    fn samples(&self) -> bool {
        self.sampled.is_some() || self.popular.is_some()
    }

    /// Adds one user's sampled ranks from a host score row.
    pub(super) fn add_sampled(
        &mut self,
        row: &[f32],
        positive: usize,
        specials: &[usize],
        history: &[usize],
    ) {
        if let Some((metrics, rng)) = &mut self.sampled {
            if let Some(rank) = sampled_rank_for_user(rng, row, positive, specials, history) {
                metrics.add_rank(rank);
            }
        }
        if let Some((sampler, metrics, rng)) = &mut self.popular {
            if let Some(rank) = sampled_rank_with(rng, sampler, row, positive, specials, history) {
                metrics.add_rank(rank);
            }
        }
    }

    /// Adds one user's full-ranking rank.
    pub(super) fn add_full(&mut self, rank: usize) {
        self.full.add_rank(rank);
    }

    pub(super) fn report(&self) -> RankingReport {
        RankingReport {
            full: self.full.mean(),
            sampled: self.sampled.as_ref().map(|(m, _)| m.mean()),
            sampled_popularity: self.popular.as_ref().map(|(_, m, _)| m.mean()),
        }
    }
}

/// Mixed into the seed of the popularity-weighted negatives, so that they are drawn apart from
/// the uniform ones.
const POPULARITY_STREAM: u64 = 0x706f_7075_6c61_7269;

fn rank_rows<B: Backend>(
    scores: Tensor<B, 2>,
    positives: &[usize],
    histories: Vec<Vec<usize>>,
    specials: &[usize],
    opts: &RankingOptions,
    acc: &mut Accumulator,
) {
    let [b, n] = scores.dims();
    let device = scores.device();
    let hist = opts.exclude_history.then_some(histories.as_slice());
    let mask = exclusion_mask::<B>(b, n, specials, hist, &device);
    if acc.samples() {
        let host: Vec<f32> = scores
            .clone()
            .into_data()
            .convert::<f32>()
            .to_vec()
            .expect("scores");
        for (r, &p) in positives.iter().enumerate() {
            let history = hist.map_or(&[][..], |h| h[r].as_slice());
            acc.add_sampled(&host[r * n..(r + 1) * n], p, specials, history);
        }
    }
    for rank in ranks_from_scores(
        scores,
        positives_tensor::<B>(positives, &device),
        Some(mask),
    ) {
        acc.add_full(rank);
    }
}

/// Next-item ranking of `examples` (leave-one-out validation or test) by a pretrained model,
/// over every item of the vocabulary (reserved tokens are never ranked).
pub fn evaluate_next_item<B: Backend>(
    model: &NextItNetLM<B>,
    examples: &[NextItemExample],
    max_len: usize,
    opts: &RankingOptions,
    device: &B::Device,
) -> RankingReport {
    let specials: Vec<usize> = (0..NUM_RESERVED as usize).collect();
    let mut acc = Accumulator::new(opts);
    for chunk in examples.chunks(opts.batch_size.max(1)) {
        let histories: Vec<&[u32]> = chunk.iter().map(|e| e.history.as_slice()).collect();
        let inputs = input_tensor::<B, _>(&histories, max_len, &[], &[], device);
        let scores = model.next_item_logits(inputs);
        let positives: Vec<usize> = chunk.iter().map(|e| e.target as usize).collect();
        let histories = chunk
            .iter()
            .map(|e| e.history.iter().map(|&v| v as usize).collect())
            .collect();
        rank_rows(scores, &positives, histories, &specials, opts, &mut acc);
    }
    acc.report()
}

/// What a fine-tuned model scored on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// One value per evaluation, never in a hot path: boxing the ranking report would only make
// every match on it noisier.
#[allow(clippy::large_enum_variant)]
pub enum TaskEvaluation {
    /// Classification: accuracy, macro-F1 and the majority-class baseline.
    Classification(ClassificationReport),
    /// Target-item recommendation: ranking over all target items.
    Ranking(RankingReport),
}

impl TaskEvaluation {
    /// The headline number: accuracy, or NDCG@10 (the largest cut-off ≤ 10) for ranking.
    pub fn headline(&self) -> f64 {
        match self {
            TaskEvaluation::Classification(r) => r.accuracy.unwrap_or(0.0),
            TaskEvaluation::Ranking(r) => {
                let k = r
                    .full
                    .ks
                    .iter()
                    .rev()
                    .find(|&&k| k <= 10)
                    .or(r.full.ks.first());
                k.and_then(|&k| r.full.ndcg_at(k)).unwrap_or(0.0)
            }
        }
    }

    /// Name of the headline number.
    pub fn headline_name(&self) -> &'static str {
        match self {
            TaskEvaluation::Classification(_) => "accuracy",
            TaskEvaluation::Ranking(_) => "ndcg@10",
        }
    }
}

/// Evaluates a fine-tuned model on `examples`. `train_labels` give the majority baseline of
/// classification tasks; target-item tasks rank every target item (a user's other training
/// targets are not excluded).
pub fn evaluate_task<B: Backend>(
    model: &FineTuneModel<B>,
    examples: &[FineTuneExample],
    train_labels: &[usize],
    max_len: usize,
    opts: &RankingOptions,
    device: &B::Device,
) -> TaskEvaluation {
    let causal = model.backbone.causal();
    match model.head.kind() {
        HeadKind::Classifier { .. } => {
            let mut pred = Vec::with_capacity(examples.len());
            for chunk in examples.chunks(opts.batch_size.max(1)) {
                let logits = model.forward(finetune_inputs::<B>(chunk, max_len, causal, device));
                pred.extend(argmax_rows(logits));
            }
            let truth: Vec<usize> = examples.iter().map(|e| e.label as usize).collect();
            TaskEvaluation::Classification(ClassificationReport::new(train_labels, &truth, &pred))
        }
        HeadKind::TargetItems { .. } => {
            let mut acc = Accumulator::new(opts);
            let plain = opts.clone().with_exclude_history(false);
            for chunk in examples.chunks(opts.batch_size.max(1)) {
                let scores = model.forward(finetune_inputs::<B>(chunk, max_len, causal, device));
                let positives: Vec<usize> = chunk.iter().map(|e| e.label as usize).collect();
                let histories = vec![Vec::new(); chunk.len()];
                rank_rows(scores, &positives, histories, &[], &plain, &mut acc);
            }
            TaskEvaluation::Ranking(acc.report())
        }
    }
}
