//! Pretraining on item sequences, validated by next-item ranking.

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use peterrec_data::batch::epoch_batches;
use peterrec_data::sequence::UserSequence;
use peterrec_data::split::NextItemExample;
use peterrec_model::io::paths::set_trainable;
use peterrec_model::NextItNetLM;
use serde::{Deserialize, Serialize};

use super::common::{check_finite, check_lengths_and_warn, check_tokens, Run, ToF64};
use crate::config::PretrainConfig;
use crate::error::{Result, TrainError};
use crate::eval::{evaluate_next_item, RankingReport};
use crate::log::EpochRecord;
use crate::progress::EpochProgress;

/// What a pretraining run reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PretrainReport {
    /// Epochs run.
    pub epochs: usize,
    /// Epoch of the kept model.
    pub best_epoch: usize,
    /// Validation ranking of the kept model.
    pub valid: RankingReport,
    /// Per-epoch records.
    pub history: Vec<EpochRecord>,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// The training rows of `train`: the last `max_len + 1` items of each sequence of two or more
/// items, and with `windows` also the earlier windows of a longer one, ending every `max_len / 2`
/// items (the first window starts at the first item).
fn training_windows(train: &[UserSequence], max_len: usize, windows: bool) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    for s in train {
        if s.items.len() < 2 {
            continue;
        }
        let n = s.items.len();
        let span = max_len + 1;
        if windows && n > span {
            let stride = (max_len / 2).max(1);
            let mut end = n;
            loop {
                out.push(s.items[end.saturating_sub(span)..end].to_vec());
                if end <= span {
                    break;
                }
                end = end.saturating_sub(stride).max(span);
            }
        } else {
            out.push(s.items[n.saturating_sub(span)..].to_vec());
        }
    }
    out
}

/// Pretrains `model` on the training sequences, validating next-item ranking on `valid` after
/// every epoch. Returns the best model (by validation NDCG@10) and the report.
pub fn pretrain<B: AutodiffBackend>(
    model: NextItNetLM<B>,
    train: &[UserSequence],
    valid: &[NextItemExample],
    cfg: &PretrainConfig,
    device: &B::Device,
) -> Result<(NextItNetLM<B>, PretrainReport)> {
    cfg.train.validate()?;
    if !(0.0..1.0).contains(&cfg.dropout) {
        return Err(TrainError::Config(format!(
            "dropout {} is not a probability in [0, 1)",
            cfg.dropout
        )));
    }
    let t = &cfg.train;
    let config = &model.backbone.config().clone();
    config.validate()?;
    check_lengths_and_warn(t.max_len, config)?;
    check_tokens(
        train
            .iter()
            .map(|s| (s.user.as_str(), s.items.as_slice()))
            .chain(valid.iter().flat_map(|e| {
                [
                    (e.user.as_str(), e.history.as_slice()),
                    (e.user.as_str(), std::slice::from_ref(&e.target)),
                ]
            })),
        config.num_tokens,
    )?;
    let rows = training_windows(train, t.max_len, cfg.windows);
    if rows.is_empty() {
        return Err(TrainError::Input(
            "no training sequence has two or more items".into(),
        ));
    }
    let (mut model, mut run) = Run::<B, NextItNetLM<B>, _, RankingReport>::start(
        t,
        model,
        || t.adam().init::<B, NextItNetLM<B>>(),
        |m| set_trainable(m, |_| true),
        device,
    )?;
    model.backbone = model.backbone.with_dropout(cfg.dropout);
    for epoch in run.first_epoch..=t.epochs {
        let mut bar = EpochProgress::new(epoch, Some(t.epochs), rows.len() as u64, t.quiet);
        let batches = epoch_batches(rows.len(), t.batch_size, Some(&mut run.rng));
        if cfg.dropout > 0.0 {
            // The dropout masks come from the backend's generator: seeded per epoch, so a run
            // resumed at an epoch boundary draws the same masks as an uninterrupted one.
            B::seed(
                device,
                t.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
        }
        for (step, idx) in batches.iter().enumerate() {
            let seqs: Vec<&[u32]> = idx.iter().map(|&i| rows[i].as_slice()).collect();
            let batch = cfg
                .objective
                .batch::<B>(&seqs, t.max_len, &mut run.rng, device);
            let out = match &cfg.sampled {
                Some(s) => {
                    model.sampled_loss(batch.inputs, batch.targets, &batch.mask, s, &mut run.rng)
                }
                None => model.train_loss(batch.inputs, batch.targets, &batch.mask),
            };
            if out.count == 0 {
                continue;
            }
            let loss = out.loss.clone().into_scalar().to_f64_lossy();
            check_finite(loss, epoch, step)?;
            let grads = GradientsParams::from_grads(out.loss.backward(), &model);
            model = run
                .optim
                .step(t.lr_at(epoch, step, batches.len()), model, grads);
            bar.step(seqs.len(), loss);
        }
        let stats = bar.finish();
        let report = evaluate_next_item(&model.valid(), valid, t.max_len, &cfg.ranking, device);
        let metric = report
            .full
            .ndcg_at(10)
            .unwrap_or_else(|| report.full.ndcg.last().copied().unwrap_or(0.0));
        let extra = serde_json::json!({"phase": "pretrain", "valid": report.flat()});
        let stop = run.end_epoch(
            epoch,
            &stats,
            &model,
            report,
            ("ndcg@10", metric),
            extra,
            |inner| match &t.checkpoint {
                Some(path) => peterrec_model::save_pretrained(inner, path)
                    .map_err(|e| TrainError::checkpoint(path, e.to_string())),
                None => Ok(()),
            },
        )?;
        if stop {
            break;
        }
    }
    let done = run.finish(|m| evaluate_next_item(m, valid, t.max_len, &cfg.ranking, device));
    let report = PretrainReport {
        epochs: done.history.len(),
        best_epoch: done.best_epoch,
        valid: done.valid,
        history: done.history,
        seconds: done.seconds,
    };
    // Back on the autodiff backend so callers can keep training or fine-tune, without dropout.
    let mut model = NextItNetLM::from_inner(done.model);
    model.backbone = model.backbone.with_dropout(0.0);
    Ok((model, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_long_sequences() {
        let s = UserSequence {
            user: "u".into(),
            items: (4..24).collect(),
        };
        let w = training_windows(std::slice::from_ref(&s), 5, true);
        assert!(w.iter().all(|x| x.len() == 6));
        assert_eq!(w[0], (18..24).collect::<Vec<u32>>());
        assert_eq!(w.last().unwrap()[0], 4);
        assert_eq!(training_windows(&[s], 5, false).len(), 1);
    }
}
