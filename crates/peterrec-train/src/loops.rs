//! Training loops: pretraining on item sequences and fine-tuning on a task.
//!
//! Both loops are generic over `B: AutodiffBackend`, shuffle with a seeded ChaCha8 stream,
//! evaluate on the validation split after every epoch, stop early after `patience` epochs without
//! improvement, keep (and optionally save, atomically) the best model, log one JSON line per
//! evaluation, and stop with [`TrainError::Divergence`] on a NaN or infinite loss, leaving the last
//! good checkpoint in place.

use std::path::PathBuf;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::{backend::AutodiffBackend, Int, Tensor, TensorData};
use peterrec_data::batch::{epoch_batches, finetune_rows, SeqObjective};
use peterrec_data::sequence::UserSequence;
use peterrec_data::split::NextItemExample;
use peterrec_data::task::Task;
use peterrec_model::{
    FineTuneModel, FusedAdamConfig, NegativeSampler, NextItNetConfig, NextItNetLM,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::CheckpointDir;
use crate::error::{Result, TrainError};
use crate::evaluate::{
    evaluate_next_item, evaluate_task, RankingOptions, RankingReport, TaskEvaluation,
};
use crate::log::{EarlyStopping, MetricsLog, Mode};
use crate::progress::{EpochProgress, EpochStats};
use crate::resume::{load_last, save_epoch, LoopState};
use crate::schedule::LrSchedule;
use peterrec_model::io::paths::set_trainable;

/// Optimizer and schedule settings shared by both loops.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Maximum number of epochs.
    pub epochs: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Adam betas.
    pub betas: (f32, f32),
    /// How the learning rate moves from `lr` over the planned `epochs` (constant by default).
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// L2 weight decay (0 for none).
    pub weight_decay: f32,
    /// Most recent items kept per sequence.
    pub max_len: usize,
    /// Epochs without validation improvement before stopping.
    pub patience: usize,
    /// Seed of shuffling and sampling.
    pub seed: u64,
    /// Hide the progress bar.
    pub quiet: bool,
    /// JSON-lines metrics log (one line per evaluation).
    pub log_path: Option<PathBuf>,
    /// File the best model is saved to (atomically) whenever validation improves.
    pub checkpoint: Option<PathBuf>,
    /// Directory where the full loop state is saved after every epoch (see [`crate::resume`]).
    /// When it already holds a saved epoch, the run resumes from there, exactly.
    pub state_dir: Option<PathBuf>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 64,
            lr: 1e-3,
            betas: (0.9, 0.999),
            lr_schedule: LrSchedule::Constant,
            weight_decay: 0.0,
            max_len: 50,
            patience: 3,
            seed: 0,
            quiet: false,
            log_path: None,
            checkpoint: None,
            state_dir: None,
        }
    }
}

impl TrainConfig {
    /// Adam with these settings, fused on the CPU backends ([`FusedAdamConfig`]).
    fn adam(&self) -> FusedAdamConfig {
        FusedAdamConfig::new()
            .with_beta_1(self.betas.0)
            .with_beta_2(self.betas.1)
            .with_weight_decay((self.weight_decay > 0.0).then_some(self.weight_decay))
    }

    fn validate(&self) -> Result<()> {
        if self.batch_size == 0 || self.max_len == 0 {
            return Err(TrainError::Config(
                "batch_size and max_len must be positive".into(),
            ));
        }
        if self.lr.is_nan() || self.lr <= 0.0 {
            return Err(TrainError::Config(format!(
                "learning rate {} must be positive",
                self.lr
            )));
        }
        self.lr_schedule.validate()
    }

    /// The learning rate of 0-based `step` of `epoch` (from 1), `steps_per_epoch` steps each.
    fn lr_at(&self, epoch: usize, step: usize, steps_per_epoch: usize) -> f64 {
        let global = (epoch - 1) * steps_per_epoch + step;
        self.lr_schedule
            .lr_at(self.lr, global, self.epochs * steps_per_epoch)
    }
}

/// Checks a maximum sequence length against a backbone's convolutions.
///
/// A `max_len` shorter than the padding of the widest convolution (`(k−1)·2d` for the largest
/// block dilation `d`) is an error: that convolution would read nothing but padding through
/// every tap but its current one. A `max_len` (plus the `[CLS]` or target position) below the
/// receptive field is allowed but returns a warning: the network then never sees a history as
/// long as it could use.
pub fn check_lengths(max_len: usize, config: &NextItNetConfig) -> Result<Option<String>> {
    let widest = config.widest_dilation();
    let padding = config.widest_padding().unwrap_or(usize::MAX);
    if max_len < padding {
        return Err(TrainError::Config(format!(
            "max_len {max_len} is shorter than the padding of the widest convolution \
             ((k-1)*2*{widest} = {padding}); use max_len >= {padding} or smaller dilations"
        )));
    }
    let field = config.receptive_field();
    Ok((max_len + 1 < field).then(|| {
        format!(
            "warning: max_len {max_len} is below the backbone's receptive field of {field} \
             positions; the network cannot use all the history it could see"
        )
    }))
}

/// Checks that every token of `seqs` is a row of a backbone with `num_tokens` embeddings (a
/// vocabulary built from other data than the backbone's would put ids past its end).
fn check_tokens<'a>(
    seqs: impl IntoIterator<Item = (&'a str, &'a [u32])>,
    num_tokens: usize,
) -> Result<()> {
    for (user, items) in seqs {
        if let Some(&t) = items.iter().find(|&&t| t as usize >= num_tokens) {
            return Err(TrainError::Data(format!(
                "user {user}: item index {t} is outside the backbone's {num_tokens} tokens \
                 (the vocabulary does not match the backbone)"
            )));
        }
    }
    Ok(())
}

/// Prints the warning of [`check_lengths`], if any.
fn check_lengths_and_warn(max_len: usize, config: &NextItNetConfig) -> Result<()> {
    if let Some(w) = check_lengths(max_len, config)? {
        eprintln!("{w}");
    }
    Ok(())
}

/// One epoch's record, as written to the metrics log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation headline metric.
    pub valid_metric: f64,
    /// Name of that metric.
    pub metric: String,
    /// Sequences per second of training.
    pub seqs_per_sec: f64,
    /// Seconds since the run started.
    pub elapsed: f64,
    /// Whether this epoch is the best so far.
    pub best: bool,
}

/// Opens the metrics log: appended to when resuming from a state directory, else truncated.
fn open_log(t: &TrainConfig) -> Result<Option<MetricsLog>> {
    match &t.log_path {
        Some(p) if t.state_dir.is_some() => MetricsLog::append(p).map(Some),
        Some(p) => MetricsLog::create(p).map(Some),
        None => Ok(None),
    }
}

fn check_finite(loss: f64, epoch: usize, step: usize) -> Result<()> {
    if loss.is_finite() {
        Ok(())
    } else {
        Err(TrainError::Divergence { epoch, step, loss })
    }
}

/// The bookkeeping both loops share: RNG, optimizer, early stopping, history, the best model so
/// far, the metrics log and the state directory (restored from it when it holds a saved epoch).
struct Run<B: AutodiffBackend, M: AutodiffModule<B>, O, E> {
    rng: ChaCha8Rng,
    optim: O,
    stopper: EarlyStopping,
    history: Vec<EpochRecord>,
    best: (M::InnerModule, usize, Option<E>),
    log: Option<MetricsLog>,
    dir: Option<CheckpointDir>,
    first_epoch: usize,
    start: Instant,
}

impl<B, M, O, E> Run<B, M, O, E>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
    E: Serialize + serde::de::DeserializeOwned,
{
    /// Starts a run, or resumes it from `t.state_dir`. `refreeze` re-applies what is trainable to
    /// a model read back from disk.
    fn start(
        t: &TrainConfig,
        model: M,
        optim: impl Fn() -> O,
        refreeze: impl FnOnce(M) -> M,
        device: &B::Device,
    ) -> Result<(M, Self)> {
        let mut run = Run {
            rng: ChaCha8Rng::seed_from_u64(t.seed),
            optim: optim(),
            stopper: EarlyStopping::new(t.patience, Mode::Max),
            history: Vec::new(),
            best: (model.valid(), 0, None),
            log: open_log(t)?,
            dir: t.state_dir.as_ref().map(CheckpointDir::open).transpose()?,
            first_epoch: 1,
            start: Instant::now(),
        };
        let Some(dir) = &run.dir else {
            return Ok((model, run));
        };
        let Some(r) = load_last(dir, model.clone(), optim(), device)? else {
            return Ok((model, run));
        };
        run.optim = r.optim;
        run.rng = r.state.rng;
        run.stopper = r.state.stopper;
        run.history = r.state.history;
        if let Some(b) = r.best {
            run.best = (
                b,
                r.state.best_epoch,
                serde_json::from_value(r.state.best_eval).ok(),
            );
        }
        run.first_epoch = if r.state.stopped {
            usize::MAX
        } else {
            r.state.epoch + 1
        };
        Ok((refreeze(r.model), run))
    }

    /// Records an evaluated epoch: logs it, keeps the model if it is the best so far (calling
    /// `save_best` on it), saves the loop state, and says whether to stop.
    #[allow(clippy::too_many_arguments)]
    fn end_epoch(
        &mut self,
        epoch: usize,
        stats: &EpochStats,
        model: &M,
        eval: E,
        metric: (&str, f64),
        log_extra: serde_json::Value,
        save_best: impl FnOnce(&M::InnerModule) -> Result<()>,
    ) -> Result<bool> {
        let decision = self.stopper.update(epoch, metric.1);
        let record = EpochRecord {
            epoch,
            train_loss: stats.mean_loss.unwrap_or(f64::NAN),
            valid_metric: metric.1,
            metric: metric.0.into(),
            seqs_per_sec: stats.sequences_per_second,
            elapsed: self.start.elapsed().as_secs_f64(),
            best: decision.improved,
        };
        if let Some(log) = self.log.as_mut() {
            log.log(&serde_json::json!({"record": &record, "details": log_extra}))?;
        }
        self.history.push(record);
        if decision.improved {
            let inner = model.valid();
            save_best(&inner)?;
            self.best = (inner, epoch, Some(eval));
        }
        if let Some(dir) = &self.dir {
            let state = LoopState {
                epoch,
                rng: self.rng.clone(),
                stopper: self.stopper.clone(),
                history: self.history.clone(),
                best_epoch: self.best.1,
                best_eval: serde_json::to_value(&self.best.2)
                    .map_err(|e| TrainError::json(None, e))?,
                stopped: decision.stop,
            };
            save_epoch(dir, model, &self.optim, &state, decision.improved)?;
        }
        Ok(decision.stop)
    }
}

/// Pretraining objective and head.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PretrainConfig {
    /// Shared loop settings.
    pub train: TrainConfig,
    /// Next-item, masked next-item or cloze.
    pub objective: SeqObjective,
    /// Sampled softmax instead of the full softmax.
    pub sampled: Option<NegativeSampler>,
    /// Validation/test ranking options.
    pub ranking: RankingOptions,
    /// Also train on every prefix window (sub-sequence augmentation): a sequence longer than
    /// `max_len + 1` contributes its windows ending every `max_len / 2` items, not only the last.
    pub windows: bool,
}

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
        return Err(TrainError::Data(
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
    for epoch in run.first_epoch..=t.epochs {
        let mut bar = EpochProgress::new(epoch, Some(t.epochs), rows.len() as u64, t.quiet);
        let batches = epoch_batches(rows.len(), t.batch_size, Some(&mut run.rng));
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
    let Run {
        best,
        history,
        start,
        ..
    } = run;
    let (best_model, best_epoch, valid_report) = best;
    let valid_report = match valid_report {
        Some(r) => r,
        None => evaluate_next_item(&best_model, valid, t.max_len, &cfg.ranking, device),
    };
    let report = PretrainReport {
        epochs: history.len(),
        best_epoch,
        valid: valid_report,
        history,
        seconds: start.elapsed().as_secs_f64(),
    };
    // Back on the autodiff backend so callers can keep training or fine-tune.
    Ok((NextItNetLM::from_inner(best_model), report))
}

/// The fine-tuning loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum FineTuneLoss {
    /// Softmax cross-entropy over all classes or target items.
    Softmax,
    /// Binary cross-entropy against `negatives` uniformly sampled wrong outputs per example
    /// (the original cold-start loss).
    BceNegatives {
        /// Negatives per example.
        negatives: usize,
    },
}

impl std::str::FromStr for FineTuneLoss {
    type Err = TrainError;

    /// Parses `softmax` or `bce:N` (N ≥ 1 negatives per example), as the examples' flags take it.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        if s == "softmax" {
            return Ok(FineTuneLoss::Softmax);
        }
        match s.strip_prefix("bce:").map(str::parse::<usize>) {
            Some(Ok(negatives)) if negatives > 0 => Ok(FineTuneLoss::BceNegatives { negatives }),
            _ => Err(TrainError::Config(format!(
                "unknown loss `{s}` (expected `softmax` or `bce:N` with N >= 1)"
            ))),
        }
    }
}

/// Fine-tuning settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FineTuneTrainConfig {
    /// Shared loop settings.
    pub train: TrainConfig,
    /// The loss.
    pub loss: FineTuneLoss,
    /// Ranking options (target-item tasks).
    pub ranking: RankingOptions,
}

/// What a fine-tuning run reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FineTuneReport {
    /// Epochs run.
    pub epochs: usize,
    /// Epoch of the kept model.
    pub best_epoch: usize,
    /// Validation result of the kept model.
    pub valid: TaskEvaluation,
    /// Test result of the kept model.
    pub test: TaskEvaluation,
    /// Per-epoch records.
    pub history: Vec<EpochRecord>,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// Fine-tunes `model` on `task` (its strategy decides what is trained), selecting the epoch by
/// the validation headline metric, and evaluates the kept model on the test split.
pub fn finetune<B: AutodiffBackend>(
    model: FineTuneModel<B>,
    task: &Task,
    cfg: &FineTuneTrainConfig,
    device: &B::Device,
) -> Result<(FineTuneModel<B::InnerBackend>, FineTuneReport)> {
    cfg.train.validate()?;
    let t = &cfg.train;
    if task.train.is_empty() {
        return Err(TrainError::Data(format!(
            "task `{}` has no training example",
            task.name
        )));
    }
    let outputs = model.head.outputs();
    if let Some(bad) = task
        .train
        .iter()
        .chain(&task.valid)
        .chain(&task.test)
        .find(|e| e.label as usize >= outputs)
    {
        return Err(TrainError::Data(format!(
            "task `{}`: label {} of user {} is outside the head's {outputs} outputs",
            task.name, bad.label, bad.user
        )));
    }
    check_lengths_and_warn(t.max_len, &model.meta.backbone)?;
    check_tokens(
        task.train
            .iter()
            .chain(&task.valid)
            .chain(&task.test)
            .map(|e| (e.user.as_str(), e.seq.as_slice())),
        model.backbone.num_tokens(),
    )?;
    let causal = model.backbone.causal();
    let train_labels: Vec<usize> = task.train.iter().map(|e| e.label as usize).collect();
    let (mut model, mut run) = Run::<B, FineTuneModel<B>, _, TaskEvaluation>::start(
        t,
        model,
        || t.adam().init::<B, FineTuneModel<B>>(),
        FineTuneModel::apply_freezing,
        device,
    )?;
    for epoch in run.first_epoch..=t.epochs {
        let mut bar = EpochProgress::new(epoch, Some(t.epochs), task.train.len() as u64, t.quiet);
        let batches = epoch_batches(task.train.len(), t.batch_size, Some(&mut run.rng));
        for (step, idx) in batches.iter().enumerate() {
            let examples: Vec<_> = idx.iter().map(|&i| &task.train[i]).collect();
            let batch = finetune_rows(&examples, t.max_len, causal).to_batch::<B>(device);
            let out = match cfg.loss {
                FineTuneLoss::Softmax => model.softmax_train_loss(batch.inputs, batch.labels),
                FineTuneLoss::BceNegatives { negatives } => {
                    let s = negatives.max(1);
                    let neg: Vec<i64> = examples
                        .iter()
                        .flat_map(|e| {
                            let label = e.label as usize;
                            (0..s)
                                .map(|_| {
                                    // Uniform over the other outputs.
                                    let r = run.rng.random_range(0..outputs.max(2) - 1);
                                    (if r >= label { r + 1 } else { r }).min(outputs - 1) as i64
                                })
                                .collect::<Vec<_>>()
                        })
                        .collect();
                    let neg = Tensor::<B, 2, Int>::from_data(
                        TensorData::new(neg, [examples.len(), s]),
                        device,
                    );
                    model.bce_loss(batch.inputs, batch.labels, neg)
                }
            };
            let loss = out.loss.clone().into_scalar().to_f64_lossy();
            check_finite(loss, epoch, step)?;
            let grads = GradientsParams::from_grads(out.loss.backward(), &model);
            model = run
                .optim
                .step(t.lr_at(epoch, step, batches.len()), model, grads);
            bar.step(examples.len(), loss);
        }
        let stats = bar.finish();
        let eval = evaluate_task(
            &model.valid(),
            &task.valid,
            &train_labels,
            t.max_len,
            &cfg.ranking,
            device,
        );
        let metric = (eval.headline_name(), eval.headline());
        let extra = serde_json::json!({"phase": "finetune", "task": task.name, "strategy": model.strategy().to_string()});
        let stop = run.end_epoch(epoch, &stats, &model, eval, metric, extra, |inner| match &t
            .checkpoint
        {
            Some(path) => inner
                .save_task(path)
                .map_err(|e| TrainError::checkpoint(path, e.to_string())),
            None => Ok(()),
        })?;
        if stop {
            break;
        }
    }
    let Run {
        best,
        history,
        start,
        ..
    } = run;
    let (best_model, best_epoch, valid) = best;
    let valid = match valid {
        Some(v) => v,
        None => evaluate_task(
            &best_model,
            &task.valid,
            &train_labels,
            t.max_len,
            &cfg.ranking,
            device,
        ),
    };
    let test = evaluate_task(
        &best_model,
        &task.test,
        &train_labels,
        t.max_len,
        &cfg.ranking,
        device,
    );
    let report = FineTuneReport {
        epochs: history.len(),
        best_epoch,
        valid,
        test,
        history,
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok((best_model, report))
}

trait ToF64 {
    fn to_f64_lossy(self) -> f64;
}

impl<E: burn::tensor::ElementConversion> ToF64 for E {
    fn to_f64_lossy(self) -> f64 {
        self.elem::<f64>()
    }
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

    /// The loops count steps across epochs: step `s` of epoch `e` is global step
    /// `(e − 1) · steps_per_epoch + s` of a plan of `epochs · steps_per_epoch` steps.
    #[test]
    fn the_loops_schedule_counts_steps_across_epochs() {
        let t = TrainConfig {
            epochs: 3,
            lr: 1.0,
            lr_schedule: LrSchedule::WarmupCosine {
                warmup_steps: 10,
                final_ratio: 0.0,
            },
            ..TrainConfig::default()
        };
        // 4 steps an epoch: epoch 2, step 1 is global step 5 of 12, still warming up: 6/10.
        assert_eq!(t.lr_at(2, 1, 4), 0.6);
        // Epoch 3, step 3 is global step 11: the last of the plan, the final rate.
        assert_eq!(t.lr_at(3, 3, 4), 0.0);
        // Epoch 3, step 0 is global step 8: warm-up, 9/10.
        assert_eq!(t.lr_at(3, 0, 4), 0.9);
        // The constant schedule ignores the step.
        let c = TrainConfig {
            lr: 0.25,
            ..TrainConfig::default()
        };
        assert_eq!(c.lr_at(7, 3, 4), 0.25);
    }

    /// A configuration saved before `lr_schedule` existed (no such key) loads as constant.
    #[test]
    fn a_config_without_a_schedule_loads_as_constant() {
        let t = TrainConfig {
            lr_schedule: LrSchedule::WarmupCosine {
                warmup_steps: 3,
                final_ratio: 0.5,
            },
            ..TrainConfig::default()
        };
        let mut json = serde_json::to_value(&t).unwrap();
        let back: TrainConfig = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back.lr_schedule, t.lr_schedule);
        json.as_object_mut().unwrap().remove("lr_schedule").unwrap();
        let old: TrainConfig = serde_json::from_value(json).unwrap();
        assert_eq!(old.lr_schedule, LrSchedule::Constant);
    }
}
