//! Quickstart: pretrain NextItNet on embedded synthetic data, then fine-tune PeterRec and FineCLS
//! to predict each user's planted type.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//! The synthetic data has four user types, each walking its own Markov chain over 200 items (40%
//! of a type's transitions lead into its own quarter of the catalogue); the type is the label of
//! the fine-tuning task. Prints a line per stage and ends with one JSON line.

#[path = "common/alloc.rs"]
mod alloc;

use std::time::Instant;

use peterrec::prelude::*;

fn main() -> peterrec::Result<()> {
    alloc::keep_freed_memory();
    let start = Instant::now();
    let device = Default::default();
    let data = SyntheticConfig::new()
        .with_users(2000)
        .with_affinity(0.4)
        .generate()?;
    let task = data.classification_task(&SplitConfig::fractions(0.7, 0.1, 7))?;
    println!(
        "synthetic data: {} users, {} items, {} types; task split {}/{}/{}",
        data.sequences.len(),
        data.vocab.num_items(),
        data.config.num_types,
        task.train.len(),
        task.valid.len(),
        task.test.len()
    );

    // The sequences hold at most 30 items: rows of 30 and a receptive field that fits them.
    let train = |epochs: usize, lr: f64| {
        TrainConfig::new()
            .with_epochs(epochs)
            .with_lr(lr)
            .with_lr_schedule(LrSchedule::Constant)
            .with_max_len(30)
    };

    // 1. Pretrain on every user's sequence (self-supervised: labels are not used).
    let backbone = NextItNetConfig::new(data.vocab.len(), 64, vec![1, 2, 1]).with_seed(1);
    let pretrain = PretrainConfig::new()
        .with_train(train(10, 5e-3).with_patience(2))
        .with_ranking(RankingOptions::new().with_sampled(false))
        .with_windows(false);
    let pretrained = Pretrainer::new(backbone)
        .with_config(pretrain)
        .fit::<DefaultAutodiffBackend>(&data.sequences, &device)?;
    let valid = &pretrained.report.valid.full;
    println!(
        "pretrained {} epochs in {:.1}s: validation HR@10 {:.3}, NDCG@10 {:.3}",
        pretrained.report.epochs,
        pretrained.report.seconds,
        valid.hr_at(10).unwrap_or(0.0),
        valid.ndcg_at(10).unwrap_or(0.0)
    );

    // 2. Fine-tune two strategies on the user-type task from the same backbone.
    let mut results = Vec::new();
    for strategy in [
        Strategy::PeterRec {
            insertion: Insertion::Serial,
        },
        Strategy::FineCls,
    ] {
        let tuned = FineTuner::new(strategy)
            .with_config(FineTuneTrainConfig::new().with_train(train(30, 1e-2).with_patience(5)))
            .fit(pretrained.model.backbone.clone(), &task, &device)?;
        let params = ParamReport::of(&tuned.model);
        let TaskEvaluation::Classification(test) = tuned.report.test else {
            unreachable!("a classifier head gives a classification report")
        };
        println!(
            "{strategy}: test accuracy {:.3} (macro-F1 {:.3}), {} trainable of {} parameters, best epoch {}",
            test.accuracy.unwrap_or(0.0),
            test.macro_f1.unwrap_or(0.0),
            params.trainable,
            params.total,
            tuned.report.best_epoch
        );
        results.push((test, params.trainable));
    }
    let majority = results[0].0.majority_accuracy.unwrap_or(0.0);
    println!("majority-class baseline: {majority:.3}");
    println!(
        "{}",
        serde_json::json!({
            "peterrec_accuracy": results[0].0.accuracy,
            "finecls_accuracy": results[1].0.accuracy,
            "majority_accuracy": majority,
            "peterrec_trainable_params": results[0].1,
            "finecls_trainable_params": results[1].1,
            "pretrain_valid_hr@10": valid.hr_at(10),
            "pretrain_epochs": pretrained.report.epochs,
            "seconds": start.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}
