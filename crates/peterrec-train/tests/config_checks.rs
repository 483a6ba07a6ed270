//! Configuration checks of the training loops: lengths against the backbone's convolutions, and
//! data whose vocabulary does not match the backbone, are typed errors before any step.

use peterrec_data::batch::SeqObjective;
use peterrec_data::sequence::UserSequence;
use peterrec_data::split::leave_one_out;
use peterrec_data::task::{FineTuneExample, Task, TaskKind};
use peterrec_model::{FineTuneConfig, HeadKind, NextItNetConfig, Strategy};
use peterrec_train::{
    check_lengths, finetune, pretrain, CpuAutodiff, FineTuneLoss, FineTuneTrainConfig, LrSchedule,
    PretrainConfig, RankingOptions, TrainConfig, TrainError,
};

fn train(max_len: usize) -> TrainConfig {
    TrainConfig::new()
        .with_epochs(1)
        .with_batch_size(4)
        .with_lr(1e-3)
        .with_lr_schedule(LrSchedule::Constant)
        .with_max_len(max_len)
        .with_quiet(true)
}

fn pretrain_cfg(max_len: usize) -> PretrainConfig {
    PretrainConfig::new()
        .with_train(train(max_len))
        .with_objective(SeqObjective::NextItem)
        .with_ranking(RankingOptions::new().with_sampled(false))
        .with_windows(false)
}

fn sequences(top: u32) -> Vec<UserSequence> {
    (0..6)
        .map(|u| UserSequence {
            user: format!("u{u}"),
            items: (0..8).map(|i| 4 + (u * 3 + i) % (top - 4)).collect(),
        })
        .collect()
}

#[test]
fn lengths_are_checked_against_the_widest_convolution_and_the_receptive_field() {
    // Blocks [1, 4]: widest convolution dilation 8, padding 16; receptive field 1 + 2·15 = 31.
    let config = NextItNetConfig::new(30, 4, vec![1, 4]);
    assert!(matches!(check_lengths(15, &config), Err(TrainError::Config(m)) if m.contains("16")));
    let w = check_lengths(16, &config)
        .unwrap()
        .expect("a warning below the receptive field");
    assert!(w.contains("31"), "{w}");
    assert!(check_lengths(29, &config).unwrap().is_some());
    assert_eq!(check_lengths(30, &config).unwrap(), None);
    // A kernel of 1 has no padding at all.
    let k1 = NextItNetConfig::new(30, 4, vec![8]).with_kernel_size(1);
    assert_eq!(check_lengths(1, &k1).unwrap(), None);
}

#[test]
fn pretraining_rejects_a_short_max_len_and_a_vocabulary_that_does_not_match() {
    let device = Default::default();
    let config = NextItNetConfig::new(20, 4, vec![1, 4]);
    let split = leave_one_out(&sequences(20));
    let lm = config.init_lm::<CpuAutodiff>(&device).unwrap();
    let r = pretrain(lm, &split.train, &split.valid, &pretrain_cfg(8), &device);
    assert!(matches!(r, Err(TrainError::Config(_))), "{:?}", r.err());

    // Sequences indexed by a 40-token vocabulary, backbone of 20 tokens.
    let split = leave_one_out(&sequences(40));
    let lm = config.init_lm::<CpuAutodiff>(&device).unwrap();
    match pretrain(lm, &split.train, &split.valid, &pretrain_cfg(16), &device) {
        Err(TrainError::Input(m)) => assert!(m.contains("does not match"), "{m}"),
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn fine_tuning_rejects_items_outside_the_backbone() {
    let device = Default::default();
    let config = NextItNetConfig::new(20, 4, vec![1]);
    let example = |u: usize, top: u32| FineTuneExample {
        user: format!("u{u}"),
        seq: vec![4, 5, top],
        label: (u % 2) as u32,
    };
    let task = |top: u32| Task {
        name: "t".into(),
        kind: TaskKind::Classification {
            num_classes: 2,
            class_names: vec!["a".into(), "b".into()],
        },
        train: (0..4).map(|u| example(u, 6)).collect(),
        valid: vec![example(4, 6)],
        test: vec![example(5, top)],
    };
    let cfg = FineTuneTrainConfig::new()
        .with_train(train(4))
        .with_loss(FineTuneLoss::Softmax)
        .with_ranking(RankingOptions::new());
    let model = || {
        FineTuneConfig::new(Strategy::FineCls, HeadKind::Classifier { outputs: 2 })
            .init(config.init::<CpuAutodiff>(&device), &device)
            .unwrap()
    };
    match finetune(model(), &task(20), &cfg, &device) {
        Err(TrainError::Input(m)) => assert!(m.contains("u5") && m.contains("20"), "{m}"),
        other => panic!("{:?}", other.err()),
    }
    // The same task within the vocabulary trains.
    finetune(model(), &task(19), &cfg, &device).unwrap();
}

#[test]
fn fine_tuning_losses_parse_from_their_flag_names() {
    assert_eq!(
        "softmax".parse::<FineTuneLoss>().unwrap(),
        FineTuneLoss::Softmax
    );
    assert_eq!(
        " BCE:99 ".parse::<FineTuneLoss>().unwrap(),
        FineTuneLoss::BceNegatives { negatives: 99 }
    );
    for bad in ["bce:0", "bce:", "bce:-1", "hinge", ""] {
        assert!(
            matches!(bad.parse::<FineTuneLoss>(), Err(TrainError::Config(_))),
            "{bad}"
        );
    }
}
