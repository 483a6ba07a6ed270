//! End-to-end: synthetic and real data through pretraining, fine-tuning, saving and reloading.

use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use peterrec::data::batch::SeqObjective;
use peterrec::data::split::{leave_one_out, SplitConfig};
use peterrec::data::synthetic::{try_generate, SyntheticConfig};
use peterrec::data::task::demo::{peterrec_demo, DemoTaskConfig};
use peterrec::model::io::paths::collect_params;
use peterrec::model::{
    FineTuneConfig, FineTuneModel, HeadKind, Insertion, NextItNetConfig, Strategy,
};
use peterrec::train::eval::evaluate_task;
use peterrec::train::{
    finetune, pretrain, Cpu, CpuAutodiff, FineTuneLoss, FineTuneTrainConfig, LrSchedule,
    PretrainConfig, RankingOptions, TrainConfig, TrainError,
};

fn quiet(epochs: usize, lr: f64) -> TrainConfig {
    TrainConfig::new()
        .with_epochs(epochs)
        .with_batch_size(32)
        .with_lr(lr)
        .with_lr_schedule(LrSchedule::Constant)
        .with_max_len(12)
        .with_patience(10)
        .with_quiet(true)
}

fn pretrain_config(train: TrainConfig) -> PretrainConfig {
    PretrainConfig::new()
        .with_train(train)
        .with_objective(SeqObjective::NextItem)
        .with_ranking(RankingOptions::new())
        .with_windows(false)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("peterrec-e2e-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn synthetic_pretrain_finetune_save_and_reload() {
    let device = Default::default();
    let data = try_generate(
        &SyntheticConfig::default()
            .with_users(240)
            .with_items(40)
            .with_types(2)
            .with_lengths(8, 12),
    )
    .unwrap();
    let config = NextItNetConfig::new(data.vocab.len(), 16, vec![1, 2]).with_seed(3);
    let split = leave_one_out(&data.sequences);
    let lm = config.init_lm::<CpuAutodiff>(&device).unwrap();
    let (lm, pre) = pretrain(
        lm,
        &split.train,
        &split.valid,
        &pretrain_config(quiet(2, 5e-3)),
        &device,
    )
    .unwrap();
    assert_eq!(pre.epochs, 2);
    assert_eq!(pre.valid.full.count, split.valid.len());
    assert!(pre.valid.full.hr_at(10).unwrap() > 0.0);

    let task = data
        .classification_task(&SplitConfig::fractions(0.6, 0.2, 1))
        .unwrap();
    let pretrained = collect_params(&lm.backbone.valid(), |_| true);
    let model = FineTuneConfig::new(
        Strategy::PeterRec {
            insertion: Insertion::Serial,
        },
        HeadKind::Classifier { outputs: 2 },
    )
    .init(lm.backbone.clone(), &device)
    .unwrap();
    let cfg = FineTuneTrainConfig::new()
        .with_train(quiet(2, 1e-2))
        .with_loss(FineTuneLoss::Softmax)
        .with_ranking(RankingOptions::new());
    let (tuned, report) = finetune(model, &task, &cfg, &device).unwrap();
    assert_eq!(report.epochs, 2);
    // The backbone is frozen except for every block's ln2.
    let after = collect_params(&tuned.backbone, |n| {
        !n.contains("mp1") && !n.contains("mp2")
    });
    assert_eq!(after.len(), pretrained.len());
    for (b, a) in pretrained.iter().zip(&after) {
        assert_eq!(b.name, a.name);
        if b.name.contains("ln2") {
            assert_ne!(b.values, a.values, "{} should train", b.name);
        } else {
            assert_eq!(b.values, a.values, "{} should be frozen", b.name);
        }
    }

    // Save the task alone, reload it onto the pretrained backbone, get the same test result.
    let dir = tmp("synthetic");
    tuned.save_task(dir.join("task.safetensors")).unwrap();
    let reloaded =
        FineTuneModel::<Cpu>::load_task(lm.backbone.valid(), dir.join("task.safetensors"), &device)
            .unwrap();
    let train_labels: Vec<usize> = task.train.iter().map(|e| e.label as usize).collect();
    let again = evaluate_task(
        &reloaded,
        &task.test,
        &train_labels,
        12,
        &RankingOptions::new(),
        &device,
    );
    assert_eq!(again, report.test);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn an_absurd_learning_rate_is_a_divergence_error_and_keeps_the_last_good_checkpoint() {
    let device = Default::default();
    let data = try_generate(
        &SyntheticConfig::default()
            .with_users(64)
            .with_items(20)
            .with_lengths(6, 8),
    )
    .unwrap();
    let config = NextItNetConfig::new(data.vocab.len(), 8, vec![1]).with_seed(5);
    let split = leave_one_out(&data.sequences);
    let dir = tmp("diverge");
    let ckpt = dir.join("best.safetensors");
    // One sane epoch writes a checkpoint.
    let mut train = quiet(1, 1e-3);
    train.checkpoint = Some(ckpt.clone());
    let lm = config.init_lm::<CpuAutodiff>(&device).unwrap();
    let (lm, _) = pretrain(
        lm,
        &split.train,
        &split.valid,
        &pretrain_config(train.clone()),
        &device,
    )
    .unwrap();
    let saved = std::fs::read(&ckpt).unwrap();
    // Then an absurd learning rate.
    train.lr = 1e30;
    train.epochs = 5;
    let err = pretrain(
        lm,
        &split.train,
        &split.valid,
        &pretrain_config(train),
        &device,
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::Divergence { .. }), "{err}");
    assert_eq!(
        std::fs::read(&ckpt).unwrap(),
        saved,
        "the last good checkpoint was replaced"
    );
    std::fs::remove_dir_all(dir).ok();
}

fn data_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let value = std::env::var_os("PETERREC_DATA").unwrap_or_else(|| {
        panic!(
            "this test needs the real data sets: set PETERREC_DATA to the folder holding \
             peterrec-demo/ (`.ci/run` sets it)"
        )
    });
    let p = PathBuf::from(&value);
    for candidate in [p.clone(), root.join(&p)] {
        if candidate.join("peterrec-demo").is_dir() {
            return candidate;
        }
    }
    panic!(
        "this test needs the real data sets: set PETERREC_DATA to the folder holding peterrec-demo/ \
         ({} has none)",
        p.display()
    );
}

#[test]
fn original_peterrec_demo_files_pretrain_and_fine_tune() {
    let device = Default::default();
    let bundle =
        peterrec_demo(data_dir().join("peterrec-demo"), &DemoTaskConfig::default()).unwrap();
    assert_eq!(bundle.pretrain.len(), 30);
    assert_eq!(
        bundle.task.train.len() + bundle.task.valid.len() + bundle.task.test.len(),
        47
    );
    let config = NextItNetConfig::new(bundle.vocab.len(), 8, vec![1, 2]);
    let split = leave_one_out(&bundle.pretrain);
    let lm = config.init_lm::<CpuAutodiff>(&device).unwrap();
    let (lm, _) = pretrain(
        lm,
        &split.train,
        &split.valid,
        &pretrain_config(quiet(1, 1e-3)),
        &device,
    )
    .unwrap();
    let model = FineTuneConfig::new(
        Strategy::PeterRec {
            insertion: Insertion::Parallel,
        },
        HeadKind::TargetItems {
            outputs: bundle.task.num_outputs(),
        },
    )
    .init(lm.backbone, &device)
    .unwrap();
    let cfg = FineTuneTrainConfig::new()
        .with_train(quiet(1, 1e-3))
        .with_loss(FineTuneLoss::BceNegatives { negatives: 1 })
        .with_ranking(RankingOptions::new());
    let (_, report) = finetune(model, &bundle.task, &cfg, &device).unwrap();
    assert_eq!(report.epochs, 1);
}

#[test]
fn model_free_baselines_on_ml100k_follow_the_training_counts() {
    use peterrec::data::{DataFormat, Dataset};
    use peterrec::train::eval::NextItemBaselines;

    let data = Dataset::load(DataFormat::Ml100k, data_dir().join("ml-100k"), 3).unwrap();
    let split = leave_one_out(&data.sequences);
    // 100,000 ratings by 943 users (all with 20 or more); two per user are held out.
    assert_eq!(split.test.len(), 943);
    let baselines = NextItemBaselines::fit(&split.train, data.vocab.len());
    assert_eq!(
        baselines.item_counts().iter().sum::<u64>(),
        100_000 - 2 * 943
    );
    let options = baselines.with_counts(&RankingOptions::new());
    let popularity = baselines.evaluate_popularity(&split.test, &options);
    let markov = baselines.evaluate_markov(&split.test, &options);
    let (pop, chain) = (
        popularity.full.hr_at(10).unwrap(),
        markov.full.hr_at(10).unwrap(),
    );
    // The chain knows what followed the user's last film; popularity only what is watched most.
    assert!(
        chain > pop + 0.02,
        "Markov HR@10 {chain} vs popularity {pop}"
    );
    // Negatives drawn by popularity are harder to beat than uniform ones.
    let hr =
        |m: &Option<peterrec::train::eval::RankingMeans>| m.as_ref().unwrap().hr_at(10).unwrap();
    for r in [&popularity, &markov] {
        assert!(hr(&r.sampled_popularity) < hr(&r.sampled), "{r:?}");
        assert!(hr(&r.sampled) > r.full.hr_at(10).unwrap());
    }
}
