//! The `Flex` CPU backend (`--features flex`, `--device flex`) trains the same model as the
//! default `NdArray` backend: the same seeded pretraining and PeterRec fine-tuning runs on both
//! end with the same losses, validation metrics and weights, up to float rounding.
//!
//! `cargo test --release --features flex --test flex` (`.ci/run` runs it).
#![cfg(feature = "flex")]

use burn::tensor::backend::AutodiffBackend;
use peterrec::data::batch::SeqObjective;
use peterrec::data::split::{leave_one_out, SplitConfig};
use peterrec::data::synthetic::{try_generate, SyntheticConfig, SyntheticData};
use peterrec::model::paths::{collect_params, NamedTensor};
use peterrec::model::{FineTuneConfig, HeadKind, Insertion, NextItNetConfig, Strategy};
use peterrec::train::{
    finetune, pretrain, run_on, BackendTask, DeviceChoice, EpochRecord, FineTuneLoss,
    FineTuneTrainConfig, PretrainConfig, RankingOptions, TrainConfig,
};

fn data() -> SyntheticData {
    try_generate(
        &SyntheticConfig::default()
            .with_users(160)
            .with_items(40)
            .with_types(2)
            .with_lengths(6, 12),
    )
    .unwrap()
}

fn train(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        lr: 5e-3,
        max_len: 12,
        patience: 100,
        quiet: true,
        ..TrainConfig::default()
    }
}

/// Histories and weights of a 3-epoch pretraining and a 2-epoch PeterRec fine-tuning.
struct Runs;

type Outcome = (Vec<EpochRecord>, Vec<EpochRecord>, Vec<NamedTensor>);

impl BackendTask for Runs {
    type Output = Outcome;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Outcome {
        let d = data();
        let config = NextItNetConfig::new(d.vocab.len(), 16, vec![1, 2]).with_seed(5);
        let split = leave_one_out(&d.sequences);
        let cfg = PretrainConfig {
            train: train(3),
            objective: SeqObjective::NextItem,
            sampled: None,
            ranking: RankingOptions::default(),
            windows: false,
        };
        let lm = config.init_lm::<B>(&device).unwrap();
        let (lm, pre) = pretrain(lm, &config, &split.train, &split.valid, &cfg, &device).unwrap();
        let task = d
            .classification_task(&SplitConfig::new(0.6, 0.2, 3))
            .unwrap();
        let model = FineTuneConfig::new(
            Strategy::PeterRec {
                insertion: Insertion::Serial,
            },
            HeadKind::Classifier { outputs: 2 },
        )
        .init(lm.backbone, &config, &device)
        .unwrap();
        let ft_cfg = FineTuneTrainConfig {
            train: train(2),
            loss: FineTuneLoss::Softmax,
            ranking: RankingOptions::default(),
        };
        let (model, ft) = finetune(model, &task, &ft_cfg, &device).unwrap();
        (pre.history, ft.history, collect_params(&model, |_| true))
    }
}

fn assert_close_history(a: &[EpochRecord], b: &[EpochRecord], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().zip(b) {
        assert!(
            (x.train_loss - y.train_loss).abs() <= 1e-3 * x.train_loss.abs().max(1.0),
            "{what}: {x:?} vs {y:?}"
        );
        assert!(
            (x.valid_metric - y.valid_metric).abs() <= 1e-3,
            "{what}: {x:?} vs {y:?}"
        );
    }
}

#[test]
fn flex_trains_the_same_model_as_ndarray() {
    let (pre_nd, ft_nd, params_nd) = run_on(DeviceChoice::Cpu, Runs).unwrap();
    let (pre_fx, ft_fx, params_fx) = run_on(DeviceChoice::Flex, Runs).unwrap();
    assert_close_history(&pre_nd, &pre_fx, "pretraining");
    assert_close_history(&ft_nd, &ft_fx, "fine-tuning");
    // Training moved the weights (the comparison below is not between two initial states).
    assert!(pre_nd.last().unwrap().train_loss < pre_nd[0].train_loss);
    assert_eq!(params_nd.len(), params_fx.len());
    for (x, y) in params_nd.iter().zip(&params_fx) {
        assert_eq!(x.name, y.name);
        for (p, q) in x.values.iter().zip(&y.values) {
            assert!((p - q).abs() <= 1e-3, "`{}`: {p} vs {q}", x.name);
        }
    }
}
