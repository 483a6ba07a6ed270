//! Resume: a run stopped after epoch k and resumed continues exactly where it stopped.
//!
//! The saved state (weights, Adam moments, loop RNG, early stopping, history) comes back bit for
//! bit, and a resumed run ends with bitwise the same weights, losses and validation metrics as an
//! uninterrupted one, on the ndarray backend. That needs a bitwise reproducible step: the training
//! losses (`NextItNetLM::train_loss`, `FineTuneModel::softmax_train_loss`, the BCE loss) are;
//! Burn 0.21's op-by-op `log_softmax` + `gather` cross-entropy is not (two identical backward
//! passes in one process differ in the last bits), which is why the loops do not use it.

use std::path::PathBuf;

use peterrec::data::batch::SeqObjective;
use peterrec::data::split::{leave_one_out, SplitConfig};
use peterrec::data::synthetic::{try_generate, SyntheticConfig, SyntheticData};
use peterrec::model::io::paths::{collect_params, NamedTensor};
use peterrec::model::{FineTuneConfig, HeadKind, Insertion, NextItNetConfig, Strategy};
use peterrec::train::{
    finetune, pretrain, CpuAutodiff, EpochRecord, FineTuneLoss, FineTuneTrainConfig, LrSchedule,
    PretrainConfig, RankingOptions, TrainConfig,
};

fn data() -> SyntheticData {
    try_generate(
        &SyntheticConfig::default()
            .with_users(120)
            .with_items(30)
            .with_types(2)
            .with_lengths(6, 10),
    )
    .unwrap()
}

const BATCH: usize = 16;

/// Loop settings. The learning rate warms up linearly over `warmup_epochs` epochs of `rows`
/// training rows and then stays (a cosine ending at ratio 1): the rates of a resumed run depend on
/// the global step it restarts at, but not on the planned number of epochs, which the
/// interrupted run (fewer epochs) and the resumed one (more) do not share.
fn train(
    epochs: usize,
    state_dir: Option<PathBuf>,
    rows: usize,
    warmup_epochs: usize,
) -> TrainConfig {
    TrainConfig::new()
        .with_epochs(epochs)
        .with_batch_size(BATCH)
        .with_lr_schedule(LrSchedule::WarmupCosine {
            warmup_steps: warmup_epochs * rows.div_ceil(BATCH),
            final_ratio: 1.0,
        })
        .with_lr(5e-3)
        .with_weight_decay(1e-4)
        .with_max_len(10)
        .with_patience(100)
        .with_quiet(true)
        .with_state_dir(state_dir)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("peterrec-resume-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    d
}

/// Histories agree bitwise: same epochs and best flags, same losses and validation metrics.
fn assert_same_history(a: &[EpochRecord], b: &[EpochRecord]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!((x.epoch, x.best), (y.epoch, y.best));
        assert_eq!(
            x.train_loss.to_bits(),
            y.train_loss.to_bits(),
            "{x:?} vs {y:?}"
        );
        assert_eq!(
            x.valid_metric.to_bits(),
            y.valid_metric.to_bits(),
            "{x:?} vs {y:?}"
        );
    }
}

/// Asserts two models' parameters are bitwise equal (same names, same values).
fn assert_same_params(a: &[NamedTensor], b: &[NamedTensor]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.name, y.name);
        let differ = x
            .values
            .iter()
            .zip(&y.values)
            .filter(|(p, q)| p.to_bits() != q.to_bits())
            .count();
        assert_eq!(differ, 0, "`{}`: {differ} values differ", x.name);
    }
}

#[test]
fn pretraining_resumed_after_two_epochs_equals_four_uninterrupted_epochs_bitwise() {
    let device = Default::default();
    let d = data();
    let config = NextItNetConfig::new(d.vocab.len(), 8, vec![1, 2]).with_seed(9);
    let split = leave_one_out(&d.sequences);
    let cfg = |t: TrainConfig| {
        PretrainConfig::new()
            .with_train(t)
            // Masked next-item: the RNG stream matters, so resume must restore it.
            .with_objective(SeqObjective::MaskedNextItem { p: 0.2 })
            .with_ranking(RankingOptions::new())
            .with_windows(false)
            // The tests of this file run in parallel and the backends' generator is shared.
            .with_dropout(0.0)
    };
    let init = || config.init_lm::<CpuAutodiff>(&device).unwrap();
    let (full, full_report) = pretrain(
        init(),
        &split.train,
        &split.valid,
        &cfg(train(4, None, split.train.len(), 3)),
        &device,
    )
    .unwrap();

    let dir = tmp("pretrain");
    let (_, first) = pretrain(
        init(),
        &split.train,
        &split.valid,
        &cfg(train(2, Some(dir.clone()), split.train.len(), 3)),
        &device,
    )
    .unwrap();
    assert_eq!(first.epochs, 2);
    // A fresh process would rebuild the model from its configuration: do the same.
    let (resumed, resumed_report) = pretrain(
        init(),
        &split.train,
        &split.valid,
        &cfg(train(4, Some(dir.clone()), split.train.len(), 3)),
        &device,
    )
    .unwrap();
    assert_same_history(&resumed_report.history, &full_report.history);
    assert_eq!(resumed_report.best_epoch, full_report.best_epoch);
    assert_same_params(
        &collect_params(&resumed, |_| true),
        &collect_params(&full, |_| true),
    );
    // Only the last and the best epoch are kept.
    let epochs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("epoch-"))
        .collect();
    assert!(!epochs.is_empty() && epochs.len() <= 2, "{epochs:?}");
    std::fs::remove_dir_all(dir).ok();
}

/// Fine-tunes for 3 epochs uninterrupted, and for 1 epoch then resumed to 3, and compares.
fn fine_tuning_resumes_bitwise(loss: FineTuneLoss, name: &str) {
    let device = Default::default();
    let d = data();
    let config = NextItNetConfig::new(d.vocab.len(), 8, vec![1, 2]).with_seed(9);
    let task = d
        .classification_task(&SplitConfig::fractions(0.6, 0.2, 3))
        .unwrap();
    let model = || {
        FineTuneConfig::new(
            Strategy::PeterRec {
                insertion: Insertion::Serial,
            },
            HeadKind::Classifier { outputs: 2 },
        )
        .init(config.init::<CpuAutodiff>(&device), &device)
        .unwrap()
    };
    let rows = task.train.len();
    let cfg = |t: TrainConfig| {
        FineTuneTrainConfig::new()
            .with_train(t)
            .with_loss(loss)
            .with_ranking(RankingOptions::new())
    };
    let (full, full_report) =
        finetune(model(), &task, &cfg(train(3, None, rows, 2)), &device).unwrap();
    let dir = tmp(name);
    finetune(
        model(),
        &task,
        &cfg(train(1, Some(dir.clone()), rows, 2)),
        &device,
    )
    .unwrap();
    let (resumed, resumed_report) = finetune(
        model(),
        &task,
        &cfg(train(3, Some(dir.clone()), rows, 2)),
        &device,
    )
    .unwrap();
    assert_same_history(&resumed_report.history, &full_report.history);
    assert_same_params(
        &collect_params(&resumed, |_| true),
        &collect_params(&full, |_| true),
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn fine_tuning_resumed_after_one_epoch_equals_three_uninterrupted_epochs_bitwise() {
    // BCE against sampled negatives: the loop RNG draws the negatives, so it must be restored.
    fine_tuning_resumes_bitwise(FineTuneLoss::BceNegatives { negatives: 1 }, "finetune-bce");
    // Softmax over all outputs (the fused loss).
    fine_tuning_resumes_bitwise(FineTuneLoss::Softmax, "finetune-softmax");
}

#[test]
fn saved_state_comes_back_bitwise() {
    use burn::module::AutodiffModule;
    use burn::optim::{AdamConfig, GradientsParams, Optimizer};
    use peterrec::train::checkpoint::{load_last, save_epoch, CheckpointDir, LoopState};
    use peterrec::train::{EarlyStopping, Mode};
    use rand::{RngCore, SeedableRng};

    let device = Default::default();
    let config = NextItNetConfig::new(20, 8, vec![1]).with_seed(2);
    let mut model = config.init_lm::<CpuAutodiff>(&device).unwrap();
    let mut optim =
        AdamConfig::new().init::<CpuAutodiff, peterrec::model::NextItNetLM<CpuAutodiff>>();
    let batch = SeqObjective::NextItem.batch::<CpuAutodiff>(
        &[&[4, 5, 6, 7, 8][..], &[9, 10, 11, 12][..]],
        4,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(0),
        &device,
    );
    for _ in 0..2 {
        let out = model.loss(batch.inputs.clone(), batch.targets.clone(), &batch.mask);
        let grads = GradientsParams::from_grads(out.loss.backward(), &model);
        model = optim.step(1e-2, model, grads);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(77);
    rng.next_u64();
    let state = LoopState {
        epoch: 3,
        rng: rng.clone(),
        stopper: EarlyStopping::new(4, Mode::Max),
        history: Vec::new(),
        best_epoch: 3,
        best_eval: serde_json::json!({"x": 0.1}),
        stopped: false,
    };
    let root = tmp("bitwise");
    let dir = CheckpointDir::open(&root).unwrap();
    save_epoch(&dir, &model, &optim, &state, true).unwrap();
    let fresh = config.init_lm::<CpuAutodiff>(&device).unwrap();
    // Written by Burn's Adam, read by the fused one (the loops' optimizer): the same state type.
    let fresh_optim = peterrec::model::FusedAdamConfig::new()
        .init::<CpuAutodiff, peterrec::model::NextItNetLM<CpuAutodiff>>();
    let mut restored = load_last(&dir, fresh, fresh_optim, &device)
        .unwrap()
        .expect("a saved epoch");
    assert_eq!(
        collect_params(&restored.model, |_| true),
        collect_params(&model, |_| true)
    );
    assert_eq!(
        collect_params(&restored.best.unwrap(), |_| true),
        collect_params(&model.valid(), |_| true)
    );
    assert_eq!(restored.state.epoch, 3);
    assert_eq!(restored.state.rng, rng);
    // The restored (fused) optimizer continues like the original (Burn's): one more step from
    // both gives bitwise the same weights.
    let out = model.train_loss(batch.inputs.clone(), batch.targets.clone(), &batch.mask);
    let grads = GradientsParams::from_grads(out.loss.backward(), &model);
    let grads_again = GradientsParams::from_grads(
        restored
            .model
            .train_loss(batch.inputs.clone(), batch.targets.clone(), &batch.mask)
            .loss
            .backward(),
        &restored.model,
    );
    let a = optim.step(1e-2, model, grads);
    let b = restored.optim.step(1e-2, restored.model, grads_again);
    assert_same_params(&collect_params(&a, |_| true), &collect_params(&b, |_| true));
    std::fs::remove_dir_all(root).ok();
}
