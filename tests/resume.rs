//! Resume: a run stopped after epoch k and resumed continues where it stopped.
//!
//! The saved state (weights, loop RNG, early stopping, history) comes back bit for bit. A resumed
//! run is compared with an uninterrupted one within a tolerance, not bitwise: Burn 0.21's autodiff
//! sums the gradient contributions of a tensor with several consumers in an order that varies
//! between runs (two identical backward passes in one process give gradients that differ in the
//! last bits, while the forward loss is bitwise equal), so even two uninterrupted runs are not
//! bitwise equal.

use std::path::PathBuf;

use peterrec::data::batch::SeqObjective;
use peterrec::data::split::{leave_one_out, SplitConfig};
use peterrec::data::synthetic::{try_generate, SyntheticConfig, SyntheticData};
use peterrec::model::paths::{collect_params, NamedTensor};
use peterrec::model::{FineTuneConfig, HeadKind, Insertion, NextItNetConfig, Strategy};
use peterrec::train::{
    finetune, pretrain, CpuAutodiff, EpochRecord, FineTuneLoss, FineTuneTrainConfig,
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

fn train(epochs: usize, state_dir: Option<PathBuf>) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        lr: 5e-3,
        weight_decay: 1e-4,
        max_len: 10,
        patience: 100,
        quiet: true,
        state_dir,
        ..TrainConfig::default()
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("peterrec-resume-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    d
}

/// Histories agree: same epochs and best flags, losses and validation metrics within `tol`.
fn assert_same_history(a: &[EpochRecord], b: &[EpochRecord], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!((x.epoch, x.best), (y.epoch, y.best));
        assert!((x.train_loss - y.train_loss).abs() <= tol, "{x:?} vs {y:?}");
        assert!(
            (x.valid_metric - y.valid_metric).abs() <= tol,
            "{x:?} vs {y:?}"
        );
    }
}

/// Largest absolute difference between two models' parameters (same names required).
fn max_param_diff(a: &[NamedTensor], b: &[NamedTensor]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.name, y.name);
            x.values.iter().zip(&y.values).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

#[test]
fn pretraining_resumed_after_two_epochs_matches_four_uninterrupted_epochs() {
    let device = Default::default();
    let d = data();
    let config = NextItNetConfig::new(d.vocab.len(), 8, vec![1, 2]).with_seed(9);
    let split = leave_one_out(&d.sequences);
    let cfg = |t: TrainConfig| PretrainConfig {
        train: t,
        // Masked next-item: the RNG stream matters, so resume must restore it.
        objective: SeqObjective::MaskedNextItem { p: 0.2 },
        sampled: None,
        ranking: RankingOptions::default(),
        windows: false,
    };
    let init = || config.init_lm::<CpuAutodiff>(&device).unwrap();
    let (full, full_report) = pretrain(
        init(),
        &config,
        &split.train,
        &split.valid,
        &cfg(train(4, None)),
        &device,
    )
    .unwrap();

    let dir = tmp("pretrain");
    let (_, first) = pretrain(
        init(),
        &config,
        &split.train,
        &split.valid,
        &cfg(train(2, Some(dir.clone()))),
        &device,
    )
    .unwrap();
    assert_eq!(first.epochs, 2);
    // A fresh process would rebuild the model from its configuration: do the same.
    let (resumed, resumed_report) = pretrain(
        init(),
        &config,
        &split.train,
        &split.valid,
        &cfg(train(4, Some(dir.clone()))),
        &device,
    )
    .unwrap();
    assert_same_history(&resumed_report.history, &full_report.history, 1e-5);
    assert_eq!(resumed_report.best_epoch, full_report.best_epoch);
    let diff = max_param_diff(
        &collect_params(&resumed, |_| true),
        &collect_params(&full, |_| true),
    );
    assert!(diff < 1e-4, "max parameter difference {diff}");
    // Only the last and the best epoch are kept.
    let epochs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("epoch-"))
        .collect();
    assert!(!epochs.is_empty() && epochs.len() <= 2, "{epochs:?}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn fine_tuning_resumed_after_one_epoch_matches_three_uninterrupted_epochs() {
    let device = Default::default();
    let d = data();
    let config = NextItNetConfig::new(d.vocab.len(), 8, vec![1, 2]).with_seed(9);
    let task = d
        .classification_task(&SplitConfig::new(0.6, 0.2, 3))
        .unwrap();
    let model = || {
        FineTuneConfig::new(
            Strategy::PeterRec {
                insertion: Insertion::Serial,
            },
            HeadKind::Classifier { outputs: 2 },
        )
        .init(config.init::<CpuAutodiff>(&device), &config, &device)
        .unwrap()
    };
    let cfg = |t: TrainConfig| FineTuneTrainConfig {
        train: t,
        loss: FineTuneLoss::BceNegatives { negatives: 1 },
        ranking: RankingOptions::default(),
    };
    let (full, full_report) = finetune(model(), &task, &cfg(train(3, None)), &device).unwrap();
    let dir = tmp("finetune");
    finetune(model(), &task, &cfg(train(1, Some(dir.clone()))), &device).unwrap();
    let (resumed, resumed_report) =
        finetune(model(), &task, &cfg(train(3, Some(dir.clone()))), &device).unwrap();
    assert_same_history(&resumed_report.history, &full_report.history, 1e-5);
    let diff = max_param_diff(
        &collect_params(&resumed, |_| true),
        &collect_params(&full, |_| true),
    );
    assert!(diff < 1e-4, "max parameter difference {diff}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn saved_state_comes_back_bitwise() {
    use burn::module::AutodiffModule;
    use burn::optim::{AdamConfig, GradientsParams, Optimizer};
    use peterrec::train::checkpoint::CheckpointDir;
    use peterrec::train::resume::{load_last, save_epoch, LoopState};
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
    let fresh_optim =
        AdamConfig::new().init::<CpuAutodiff, peterrec::model::NextItNetLM<CpuAutodiff>>();
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
    // The restored optimizer continues like the original: one more step from both with the same
    // gradients (computed once, on the host) gives the same weights.
    let out = model.loss(batch.inputs.clone(), batch.targets.clone(), &batch.mask);
    let grads = GradientsParams::from_grads(out.loss.backward(), &model);
    let grads_again = GradientsParams::from_grads(
        restored
            .model
            .loss(batch.inputs.clone(), batch.targets.clone(), &batch.mask)
            .loss
            .backward(),
        &restored.model,
    );
    let a = optim.step(1e-2, model, grads);
    let b = restored.optim.step(1e-2, restored.model, grads_again);
    let diff = max_param_diff(&collect_params(&a, |_| true), &collect_params(&b, |_| true));
    assert!(diff < 1e-6, "{diff}");
    std::fs::remove_dir_all(root).ok();
}
