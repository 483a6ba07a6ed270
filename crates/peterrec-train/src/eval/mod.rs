//! Evaluation: ranking metrics (full and sampled), classification metrics, and the evaluation of
//! trained models with them.
//!
//! # Ranking conventions
//!
//! All ranking functions turn a row of scores (one per catalogue item) and the index of the
//! positive item into a 1-based **rank**:
//!
//! ```text
//! rank = 1 + #{eligible items i ≠ positive : score[i] ≥ score[positive]}
//! ```
//!
//! * **Ties count against the positive.** An item whose score *equals* the positive's is ranked
//!   above it. A model that gives every item the same score therefore gets the worst possible
//!   rank, never a lucky first place.
//! * **NaN**: a NaN score of another item never beats the positive; a NaN score of the positive
//!   is beaten by every eligible item (it is ranked last).
//! * **Eligible** items are all catalogue items except the special tokens (padding, mask, CLS…),
//!   which are never ranked, and, when asked for, the items already in the user's history.
//! * **The positive is always ranked**, even when it also appears in the history (a repeated
//!   item); excluding it would make the hit impossible.
//!
//! From a rank, [`hit_at`], [`ndcg_at`] and [`mrr_at`] give HR@k, NDCG@k = 1/log2(rank + 1) and
//! MRR@k = 1/rank, each 0 when `rank > k`. [`RankingMetrics`] accumulates them over users.
//!
//! # Two protocols, named apart
//!
//! * **Full ranking** ([`full_rank`], [`ranks_from_scores`]): the positive is ranked against the
//!   whole eligible catalogue. This is the honest number.
//! * **Sampled ranking** ([`sampled_negatives`], [`sampled_rank`], [`sampled_rank_for_user`],
//!   [`sampled_rank_with`]): the older papers' protocols (PeterRec's and NextItNet's among them)
//!   — the positive against [`SAMPLED_NEGATIVES`] (100) negatives, drawn uniformly or in
//!   proportion to the items' training counts. They inflate every metric and are only reported
//!   beside full ranking, under `sampled_` and `sampled_pop_` names (see
//!   [`RankingMeans::to_flat_map`]).
//!
//! # Classification
//!
//! [`accuracy`], [`macro_f1`], [`ConfusionMatrix`], [`majority_class`] and
//! [`majority_baseline_accuracy`]; [`ClassificationReport`] bundles them. Functions return
//! `None` on empty input instead of NaN.
//!
//! # Trained models
//!
//! [`evaluate_next_item`] ranks the next item with a pretrained model; [`evaluate_task`] scores a
//! fine-tuned model on a task split ([`TaskEvaluation`]). Both take [`RankingOptions`].
//! [`NextItemBaselines`] ranks the same next-item targets without a model (popularity, and a
//! first-order Markov chain), fitted on the same training sequences.

mod baselines;
mod classification;
mod inputs;
mod model;
mod ranking;
mod sampled;

pub use baselines::NextItemBaselines;
pub use classification::{
    accuracy, argmax_rows, macro_f1, majority_baseline_accuracy, majority_class,
    ClassificationReport, ConfusionMatrix,
};
pub use inputs::left_padded;
pub use model::{evaluate_next_item, evaluate_task, RankingOptions, RankingReport, TaskEvaluation};
pub use ranking::{
    eligible_count, exclusion_mask, full_rank, hit_at, mrr_at, ndcg_at, positives_tensor,
    ranks_from_scores, RankingMeans, RankingMetrics,
};
pub use sampled::{
    sampled_negatives, sampled_negatives_from, sampled_rank, sampled_rank_for_user,
    sampled_rank_with, SAMPLED_NEGATIVES,
};
