//! Fine-tuning on a task, validated by the task's headline metric and tested on its test split.

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::{backend::AutodiffBackend, Int, Tensor, TensorData};
use peterrec_data::batch::{epoch_batches, finetune_rows};
use peterrec_data::sampler::ItemSampler;
use peterrec_data::task::Task;
use peterrec_model::FineTuneModel;
use serde::{Deserialize, Serialize};

use super::common::{check_finite, check_lengths_and_warn, check_tokens, Run, ToF64};
use crate::config::{FineTuneLoss, FineTuneTrainConfig};
use crate::error::{Result, TrainError};
use crate::eval::{evaluate_task, TaskEvaluation};
use crate::log::EpochRecord;
use crate::progress::EpochProgress;

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
        return Err(TrainError::Input(format!(
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
        return Err(TrainError::Input(format!(
            "task `{}`: label {} of user {} is outside the head's {outputs} outputs",
            task.name, bad.label, bad.user
        )));
    }
    // The wrong outputs a binary cross-entropy loss draws its negatives from.
    let others = ItemSampler::uniform(0..outputs as u32)
        .map_err(|_| TrainError::Input("the task head has no outputs".into()))?;
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
                            (0..s)
                                .map(|_| i64::from(others.draw_other(e.label, &mut run.rng)))
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
    let done = run.finish(|m| {
        evaluate_task(
            m,
            &task.valid,
            &train_labels,
            t.max_len,
            &cfg.ranking,
            device,
        )
    });
    let test = evaluate_task(
        &done.model,
        &task.test,
        &train_labels,
        t.max_len,
        &cfg.ranking,
        device,
    );
    let report = FineTuneReport {
        epochs: done.history.len(),
        best_epoch: done.best_epoch,
        valid: done.valid,
        test,
        history: done.history,
        seconds: done.seconds,
    };
    Ok((done.model, report))
}
