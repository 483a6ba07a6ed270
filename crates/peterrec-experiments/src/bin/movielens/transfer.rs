//! The fine-tuning runs: every strategy on every task (and seed), each from a clone of the same
//! pretrained backbone, and their figures gathered into the table's rows.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use peterrec_data::movielens::MovieLens;
use peterrec_data::split::SplitConfig;
use peterrec_data::task::cold_start::{cold_start_task, ColdStartConfig};
use peterrec_data::task::profile::{profile_task, ProfileTaskConfig};
use peterrec_data::Task;
use peterrec_experiments::baselines::{cap_per_user, popularity};
use peterrec_experiments::stats::{mean, sd};
use peterrec_experiments::tasks::fine_tune_strategy;
use peterrec_model::{NextItNetConfig, NextItNetLM, Strategy};
use peterrec_train::{FineTuneLoss, FineTuneTrainConfig, TaskEvaluation, TrainConfig};

use crate::args::{Args, TaskName};
use crate::backbone::{pretrain_backbone, ranking};
use crate::report::{Baseline, Detail, Outcome, Popularity, Row};
use crate::AnyError;

/// A pretrained backbone (named), its configuration and the tasks fine-tuned from it.
type Group<B> = (
    String,
    NextItNetLM<B>,
    NextItNetConfig,
    Vec<(TaskName, u64, Task)>,
);

/// One fine-tuning run's figures.
struct RunResult {
    value: f64,
    secondary: f64,
    sampled_ndcg: Option<f64>,
    valid: f64,
    best_epoch: usize,
    epochs: usize,
    trainable: usize,
    total: usize,
    task_file_bytes: u64,
    seconds: f64,
    majority: Option<f64>,
}

/// Fine-tunes one strategy on one task from a clone of `lm`'s backbone, and measures the test
/// figures and the size of the task file.
#[allow(clippy::too_many_arguments)]
fn run_strategy<B: AutodiffBackend>(
    lm: &NextItNetLM<B>,
    task: &Task,
    strategy: Strategy,
    loss: FineTuneLoss,
    seed: u64,
    args: &Args,
    tmp: &Path,
    device: &B::Device,
) -> Result<RunResult, AnyError> {
    let start = Instant::now();
    let cfg = FineTuneTrainConfig {
        train: TrainConfig {
            epochs: args.finetune_epochs,
            batch_size: args.finetune_batch_size,
            lr: args.finetune_lr,
            max_len: args.max_len,
            patience: args.patience,
            seed,
            quiet: args.run.quiet,
            ..FineTuneTrainConfig::new().train
        },
        loss,
        ranking: ranking(seed),
    };
    let (tuned, report, params) = fine_tune_strategy(lm, task, strategy, &cfg, device)?;
    let file = tmp.join(format!("{}-{strategy}-{seed}.safetensors", task.name));
    tuned.save_task(&file)?;
    let task_file_bytes = std::fs::metadata(&file)?.len();
    std::fs::remove_file(&file)?;
    let (value, secondary, sampled_ndcg, majority) = match &report.test {
        TaskEvaluation::Classification(c) => (
            c.accuracy.unwrap_or(0.0),
            c.macro_f1.unwrap_or(0.0),
            None,
            c.majority_accuracy,
        ),
        TaskEvaluation::Ranking(r) => (
            r.full.ndcg_at(10).unwrap_or(0.0),
            r.full.hr_at(10).unwrap_or(0.0),
            r.sampled.as_ref().and_then(|s| s.ndcg_at(10)),
            None,
        ),
    };
    Ok(RunResult {
        value,
        secondary,
        sampled_ndcg,
        valid: report.valid.headline(),
        best_epoch: report.best_epoch,
        epochs: report.epochs,
        trainable: params.trainable,
        total: params.total,
        task_file_bytes,
        seconds: start.elapsed().as_secs_f64(),
        majority,
    })
}
/// Pretrains the backbones the tasks need and fine-tunes every strategy on every task and seed.
pub fn run<B: AutodiffBackend>(
    args: &Args,
    ml: &MovieLens,
    device: B::Device,
) -> Result<Outcome, AnyError> {
    let seeds = args.seeds.clone().unwrap_or_else(|| vec![args.run.seed]);
    let split = |seed: u64| SplitConfig::fractions(args.split.0, args.split.1, seed);
    let tmp = std::env::temp_dir().join(format!("peterrec-movielens-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let mut out = Outcome {
        popularity: Vec::new(),
        backbones: Vec::new(),
        rows: Vec::new(),
        details: Vec::new(),
        baselines: Vec::new(),
    };
    let profile_tasks: Vec<TaskName> = args
        .tasks
        .iter()
        .copied()
        .filter(|t| t.attribute().is_some())
        .collect();
    let mut groups: Vec<Group<B>> = Vec::new();

    if !profile_tasks.is_empty() {
        let (vocab, sequences) = ml.pretraining(1);
        let (lm, config, summary) =
            pretrain_backbone::<B>("all-items", &vocab, &sequences, args, &device)?;
        out.backbones.push(summary);
        let mut tasks = Vec::new();
        for &t in &profile_tasks {
            for &seed in &seeds {
                let cfg = ProfileTaskConfig {
                    split: split(seed),
                    ..ProfileTaskConfig::default()
                };
                let attribute = t.attribute().expect("a profile task");
                let (task, _) = profile_task(ml, attribute, &vocab, &cfg)?;
                tasks.push((t, seed, task));
            }
        }
        groups.push(("all-items".into(), lm, config, tasks));
    }
    if args.tasks.contains(&TaskName::ColdStart) {
        let cold = |seed: u64| ColdStartConfig {
            split: split(seed),
            ..ColdStartConfig::default()
        };
        let bundle = cold_start_task(ml, &cold(seeds[0]))?;
        println!(
            "\ncold start: target genres {:?}; {} users with source sequences, {} source items, {} target items, {} examples",
            cold(seeds[0]).target_genres,
            bundle.pretrain.len(),
            bundle.vocab.num_items(),
            bundle.task.num_outputs(),
            bundle.task.num_examples()
        );
        let (lm, config, summary) = pretrain_backbone::<B>(
            "source-domain",
            &bundle.vocab,
            &bundle.pretrain,
            args,
            &device,
        )?;
        out.backbones.push(summary);
        let mut tasks = Vec::new();
        for &seed in &seeds {
            let mut task = if seed == seeds[0] {
                bundle.task.clone()
            } else {
                cold_start_task(ml, &cold(seed))?.task
            };
            let before = (task.train.len(), task.valid.len());
            cap_per_user(&mut task.train, args.cold_start_train_per_user, seed);
            cap_per_user(&mut task.valid, args.cold_start_train_per_user, seed + 1);
            println!(
                "  seed {seed}: {} training examples (of {}) and {} validation examples (of {}), at most {} per user; {} test examples (all)",
                task.train.len(),
                before.0,
                task.valid.len(),
                before.1,
                if args.cold_start_train_per_user == 0 {
                    "all".to_string()
                } else {
                    args.cold_start_train_per_user.to_string()
                },
                task.test.len()
            );
            let (hr, ndcg) = popularity(&task);
            println!(
                "  seed {seed}: popularity baseline (targets ranked by training count, ties against the positive): test HR@10 {hr:.4}, NDCG@10 {ndcg:.4}"
            );
            out.popularity.push(Popularity {
                task: TaskName::ColdStart.name().into(),
                seed,
                hr_at_10: hr,
                ndcg_at_10: ndcg,
            });
            tasks.push((TaskName::ColdStart, seed, task));
        }
        groups.push(("source-domain".into(), lm, config, tasks));
    }

    // Fine-tune every strategy on every task (and seed) from a clone of the same backbone.
    let mut order: Vec<(TaskName, Strategy)> = Vec::new();
    let mut results: BTreeMap<(TaskName, usize), Vec<(u64, RunResult)>> = BTreeMap::new();
    for (backbone, lm, _, tasks) in &groups {
        for (t, seed, task) in tasks {
            println!(
                "\n== {} (seed {seed}, {} backbone): {} / {} / {} train / validation / test examples, {} outputs",
                t.name(),
                backbone,
                task.train.len(),
                task.valid.len(),
                task.test.len(),
                task.num_outputs()
            );
            let loss = if *t == TaskName::ColdStart {
                args.cold_start_loss
            } else {
                FineTuneLoss::Softmax
            };
            for (si, &strategy) in args.strategies.iter().enumerate() {
                let r = run_strategy::<B>(lm, task, strategy, loss, *seed, args, &tmp, &device)?;
                println!(
                    "  {:<18} test {} {:.4} ({} {:.4}), valid {:.4}, best epoch {}/{}, {} trainable of {}, task file {} B, {:.1}s",
                    strategy.to_string(),
                    if *t == TaskName::ColdStart { "NDCG@10" } else { "accuracy" },
                    r.value,
                    if *t == TaskName::ColdStart { "HR@10" } else { "macro-F1" },
                    r.secondary,
                    r.valid,
                    r.best_epoch,
                    r.epochs,
                    r.trainable,
                    r.total,
                    r.task_file_bytes,
                    r.seconds
                );
                if !order.contains(&(*t, strategy)) {
                    order.push((*t, strategy));
                }
                if si == 0 {
                    if let Some(m) = r.majority {
                        println!("  majority-class baseline: test accuracy {m:.4}");
                        out.baselines.push(Baseline {
                            task: t.name().into(),
                            seed: *seed,
                            majority_accuracy: m,
                            train_examples: task.train.len(),
                            valid_examples: task.valid.len(),
                            test_examples: task.test.len(),
                        });
                    }
                }
                results.entry((*t, si)).or_default().push((*seed, r));
            }
        }
    }
    std::fs::remove_dir_all(&tmp).ok();

    order.sort_by_key(|(t, s)| (*t, args.strategies.iter().position(|x| x == s)));
    for (t, strategy) in order {
        let si = args
            .strategies
            .iter()
            .position(|&x| x == strategy)
            .expect("listed strategy");
        let runs = &results[&(t, si)];
        let values: Vec<f64> = runs.iter().map(|(_, r)| r.value).collect();
        let metric = if t == TaskName::ColdStart {
            "ndcg@10"
        } else {
            "accuracy"
        };
        let first = &runs[0].1;
        out.rows.push(Row {
            task: t.name().into(),
            strategy: strategy.to_string(),
            metric: metric.into(),
            value: mean(&values),
            trainable_params: first.trainable,
            task_file_bytes: first.task_file_bytes,
            seconds: mean(&runs.iter().map(|(_, r)| r.seconds).collect::<Vec<_>>()),
        });
        let sampled: Vec<f64> = runs.iter().filter_map(|(_, r)| r.sampled_ndcg).collect();
        out.details.push(Detail {
            task: t.name().into(),
            strategy: strategy.to_string(),
            seeds: runs.iter().map(|(s, _)| *s).collect(),
            sd: sd(&values),
            values,
            secondary_name: if t == TaskName::ColdStart {
                "hr@10".into()
            } else {
                "macro_f1".into()
            },
            secondary: mean(&runs.iter().map(|(_, r)| r.secondary).collect::<Vec<_>>()),
            sampled_ndcg_at_10: (!sampled.is_empty()).then(|| mean(&sampled)),
            valid_values: runs.iter().map(|(_, r)| r.valid).collect(),
            best_epochs: runs.iter().map(|(_, r)| r.best_epoch).collect(),
            epochs_run: runs.iter().map(|(_, r)| r.epochs).collect(),
            total_params: first.total,
        });
    }
    Ok(out)
}
