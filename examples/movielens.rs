//! Transfer learning on MovieLens: pretrains NextItNet on the users' rating sequences, then
//! fine-tunes PeterRec (serial and parallel), FineAll, FineCLS, FineLast-1 and Scratch on the
//! gender, age, occupation and cold-start tasks, and prints one table.
//!
//! ```text
//! cargo run --release --example movielens -- --path $PETERREC_DATA/ml-1m --out table.json
//! cargo run --release --example movielens -- --path $PETERREC_DATA/ml-1m --epochs 1 --finetune-epochs 1 --out /tmp/r.json
//! cargo run --release --example movielens -- --path $PETERREC_DATA/ml-100k --tasks gender,cold-start --strategies peterrec-serial,finecls
//! # the run of docs/results.md (about 25 minutes on 2 shared cores):
//! cargo run --release --example movielens -- --path $PETERREC_DATA/ml-1m --epochs 4 --pretrain-max-len 50 \
//!     --batch-size 64 --lr 2e-3 --finetune-epochs 3 --finetune-lr 5e-3 --cold-start-train-per-user 2 --out results-ml1m.json
//! ```
//! The release (ML-1M or ML-100K) is detected by the files in `--path`.
//!
//! - **Backbones.** The profile tasks fine-tune a backbone pretrained (next-item objective) on
//!   every user's chronological sequence; the cold-start task one pretrained on the source-domain
//!   sequences only (movies outside the target genres, `cold_start_task`), with the source
//!   vocabulary. Each backbone is pretrained once with early stopping on leave-last-out
//!   validation NDCG@10, and its leave-last-out test metrics (full ranking, history excluded;
//!   the sampled protocol beside it) are printed.
//! - **Tasks.** Gender (2 classes), age (7) and occupation (21): a classifier on the `[CLS]`
//!   vector, softmax cross-entropy, test accuracy (macro-F1 and the majority-class baseline
//!   beside it). Cold start: a target-item head over the target-domain movies, trained with the
//!   softmax cross-entropy over all target items (`--cold-start-loss bce:N` switches to the
//!   original BCE with N sampled negatives), test NDCG@10 (HR@10 beside it) over all target items.
//!   Users are split 70/10/20 into train / validation / test by default (`--split`); every
//!   strategy starts from a clone of the same pretrained backbone and keeps its best validation
//!   epoch.
//! - **Columns.** Test metric, trainable parameters (`ParamReport`), the size in bytes of the task
//!   file `save_task` writes (what must be stored per task on top of the shared backbone), and
//!   the wall seconds of the fine-tuning run (training, validation and test evaluation).
//!
//! `--seeds 0,1,2` repeats the fine-tuning (and the user split) per seed and reports the mean,
//! with the standard deviation in the `--out` file; `--backbone-dir DIR` caches the pretrained
//! backbones between runs (for iterating on fine-tuning settings).
//!
//! The table is written to `--out` (JSON, atomically) and the last stdout line is
//! `{"rows":[{"task":..,"strategy":..,"metric":..,"value":..,"trainable_params":..,"task_file_bytes":..,"seconds":..}, ...]}`.

// mimalloc, keeping freed memory (faster steps; see the module).
#[path = "common/alloc.rs"]
mod alloc;

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use clap::Parser;
use peterrec::data::batch::SeqObjective;
use peterrec::data::movielens::{MovieLens, ProfileAttribute, Variant};
use peterrec::data::split::{leave_one_out, LeaveOneOut, SplitConfig};
use peterrec::data::task::cold_start::{cold_start_task, ColdStartConfig};
use peterrec::data::task::profile::{profile_task, ProfileTaskConfig};
use peterrec::data::{FineTuneExample, Task, UserSequence, Vocab, NUM_RESERVED};
use peterrec::model::{
    load_pretrained, save_pretrained, FineTuneConfig, HeadKind, NegativeDistribution,
    NegativeSampler, NextItNetConfig, NextItNetLM, ParamReport, Strategy,
};
use peterrec::train::checkpoint::write_json_atomic;
use peterrec::train::eval::{full_rank, RankingMetrics};
use peterrec::train::{
    check_device, evaluate_next_item, finetune, pretrain, with_backend, DeviceChoice, FineTuneLoss,
    FineTuneTrainConfig, LrSchedule, PretrainConfig, PretrainReport, RankingOptions, RankingReport,
    TaskEvaluation, TrainConfig,
};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::json;

type AnyError = Box<dyn Error>;

/// A fine-tuning task of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TaskName {
    Gender,
    Age,
    Occupation,
    ColdStart,
}

impl TaskName {
    fn name(self) -> &'static str {
        match self {
            TaskName::Gender => "gender",
            TaskName::Age => "age",
            TaskName::Occupation => "occupation",
            TaskName::ColdStart => "cold-start",
        }
    }

    fn attribute(self) -> Option<ProfileAttribute> {
        match self {
            TaskName::Gender => Some(ProfileAttribute::Gender),
            TaskName::Age => Some(ProfileAttribute::Age),
            TaskName::Occupation => Some(ProfileAttribute::Occupation),
            TaskName::ColdStart => None,
        }
    }
}

impl FromStr for TaskName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gender" => Ok(TaskName::Gender),
            "age" => Ok(TaskName::Age),
            "occupation" => Ok(TaskName::Occupation),
            "cold-start" | "coldstart" | "cold_start" => Ok(TaskName::ColdStart),
            other => Err(format!(
                "unknown task `{other}` (expected gender, age, occupation or cold-start)"
            )),
        }
    }
}

/// A user split `TRAIN,VALID` (fractions; the test part is the rest).
#[derive(Debug, Clone, Copy, PartialEq)]
struct SplitArg(f64, f64);

impl FromStr for SplitArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let bad = || format!("bad split `{s}` (expected `TRAIN,VALID`, e.g. `0.7,0.1`)");
        let [a, b] = parts.as_slice() else {
            return Err(bad());
        };
        let (a, b) = (
            a.parse::<f64>().map_err(|_| bad())?,
            b.parse::<f64>().map_err(|_| bad())?,
        );
        if a <= 0.0 || b <= 0.0 || a + b >= 1.0 {
            return Err(format!(
                "split `{s}`: train and validation fractions must be positive and leave a test part"
            ));
        }
        Ok(SplitArg(a, b))
    }
}

/// PeterRec and its baselines on MovieLens profile and cold-start tasks.
#[derive(Debug, Parser)]
#[command(
    about = "Pretrain NextItNet on MovieLens, fine-tune every strategy on gender, age, occupation and cold start, print one table"
)]
struct Args {
    /// MovieLens directory: ML-1M (ratings.dat, users.dat, movies.dat) or ML-100K (u.data, u.user, u.item).
    #[arg(long)]
    path: PathBuf,
    /// Maximum pretraining epochs (per backbone).
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Maximum fine-tuning epochs (per task and strategy).
    #[arg(long, default_value_t = 5)]
    finetune_epochs: usize,
    /// Epochs without validation improvement before stopping (pretraining and fine-tuning).
    #[arg(long, default_value_t = 3)]
    patience: usize,
    /// Channels C.
    #[arg(long, default_value_t = 64)]
    channels: usize,
    /// Block dilations, comma separated (block d holds convolutions of dilation d and 2d).
    #[arg(long, default_value = "1,4,1,4", value_delimiter = ',')]
    dilations: Vec<usize>,
    /// Most recent items of a fine-tuning input (before `[CLS]`).
    #[arg(long, default_value_t = 50)]
    max_len: usize,
    /// Most recent items of a pretraining row and of a next-item evaluation history.
    #[arg(long, default_value_t = 100)]
    pretrain_max_len: usize,
    /// Pretraining sequences per step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Fine-tuning examples per step.
    #[arg(long, default_value_t = 64)]
    finetune_batch_size: usize,
    /// Pretraining Adam learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Pretraining learning-rate schedule: `constant`, `cosine`, `cosine:WARMUP_STEPS` or
    /// `cosine:WARMUP_STEPS:FINAL_RATIO` (over `--epochs`).
    #[arg(long, default_value = "constant")]
    lr_schedule: LrSchedule,
    /// Pretraining on every window of a long sequence (sub-sequence augmentation), not only
    /// its most recent `--pretrain-max-len` items.
    #[arg(long)]
    windows: bool,
    /// Write the pretraining metrics (one JSON line per epoch) to `<DIR>/<backbone>.jsonl`.
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Fine-tuning Adam learning rate.
    #[arg(long, default_value_t = 5e-3)]
    finetune_lr: f64,
    /// Pretraining with a sampled softmax of this many shared negatives (default: full softmax).
    #[arg(long)]
    sampled_negatives: Option<usize>,
    /// Seed of initialisation, shuffling, sampling and the user split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fine-tune with each of these seeds (head/patch init, shuffling and user split change; the
    /// backbones are pretrained once with `--seed`); the table reports the mean and the spread.
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<u64>>,
    /// User split of the fine-tuning tasks: train and validation fractions (test: the rest).
    #[arg(long, default_value = "0.7,0.1")]
    split: SplitArg,
    /// Device: `cpu`, `flex`, `cuda` or `cuda:N` (`flex` and CUDA need a build with `--features flex` / `cuda`).
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// Write the table (JSON) to this file, atomically.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Strategies, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "peterrec-serial,peterrec-parallel,fineall,finecls,finelast-1,scratch"
    )]
    strategies: Vec<Strategy>,
    /// Tasks, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "gender,age,occupation,cold-start"
    )]
    tasks: Vec<TaskName>,
    /// Cold-start loss: `softmax` (over all target items) or `bce:N` (N sampled negatives).
    #[arg(long, default_value = "softmax")]
    cold_start_loss: FineTuneLoss,
    /// Cold start: examples kept per training or validation user (a seeded random subset of the
    /// user's target movies; the test keeps all); 0 keeps all. Every example repeats the user's
    /// whole source sequence, so this bounds the cost of a fine-tuning epoch.
    #[arg(long, default_value_t = 4)]
    cold_start_train_per_user: usize,
    /// Cache of pretrained backbones: `<name>.safetensors` found here is loaded instead of
    /// pretrained (its next-item figures are still measured); a missing one is pretrained and
    /// saved here. For iterating on fine-tuning; a table for the record should pretrain.
    #[arg(long)]
    backbone_dir: Option<PathBuf>,
    /// Hide the progress bars.
    #[arg(long)]
    quiet: bool,
}

/// ML-1M or ML-100K, by the files present.
fn detect(dir: &Path) -> Result<Variant, String> {
    if dir.join("ratings.dat").is_file() {
        Ok(Variant::Ml1m)
    } else if dir.join("u.data").is_file() {
        Ok(Variant::Ml100k)
    } else {
        Err(format!(
            "{} holds neither ratings.dat (ML-1M) nor u.data (ML-100K)",
            dir.display()
        ))
    }
}

/// Next-item figures of one pretrained backbone.
#[derive(Debug, Clone, Serialize)]
struct BackboneSummary {
    name: String,
    users: usize,
    items: usize,
    /// Loaded from `--backbone-dir` instead of pretrained in this run.
    loaded: bool,
    epochs: usize,
    best_epoch: usize,
    seconds: f64,
    params: usize,
    valid_ndcg_at_10: Option<f64>,
    /// Leave-last-out test metrics of the kept model (`sampled_*`: the sampled protocol).
    test: BTreeMap<String, f64>,
    /// Per-epoch pretraining history: (epoch, train loss, validation NDCG@10, seconds elapsed).
    history: Vec<(usize, f64, f64, f64)>,
}

/// One row of the table, as printed in the final JSON line.
#[derive(Debug, Clone, Serialize)]
struct Row {
    task: String,
    strategy: String,
    metric: String,
    value: f64,
    trainable_params: usize,
    task_file_bytes: u64,
    seconds: f64,
}

/// What else a row knows (kept in the `--out` file).
#[derive(Debug, Clone, Serialize)]
struct Detail {
    task: String,
    strategy: String,
    seeds: Vec<u64>,
    /// Test headline per seed.
    values: Vec<f64>,
    /// Standard deviation of `values` (0 with one seed).
    sd: f64,
    /// Macro-F1 (classification) or HR@10 (cold start), mean over seeds.
    secondary_name: String,
    secondary: f64,
    /// Sampled-protocol NDCG@10 (cold start), mean over seeds.
    sampled_ndcg_at_10: Option<f64>,
    valid_values: Vec<f64>,
    best_epochs: Vec<usize>,
    epochs_run: Vec<usize>,
    total_params: usize,
}

/// Majority-class baseline of a profile task.
#[derive(Debug, Clone, Serialize)]
struct Baseline {
    task: String,
    seed: u64,
    majority_accuracy: f64,
    train_examples: usize,
    valid_examples: usize,
    test_examples: usize,
}

/// Popularity baseline of a target-item task.
#[derive(Debug, Clone, Serialize)]
struct Popularity {
    task: String,
    seed: u64,
    hr_at_10: f64,
    ndcg_at_10: f64,
}

/// Test HR@10 and NDCG@10 of ranking the targets by their count in the training examples.
fn popularity(task: &Task) -> (f64, f64) {
    let mut counts = vec![0f32; task.num_outputs()];
    for e in &task.train {
        counts[e.label as usize] += 1.0;
    }
    let mut m = RankingMetrics::new(&[10]);
    for e in &task.test {
        m.add_rank(full_rank(&counts, e.label as usize, &[], None).unwrap_or(0));
    }
    let m = m.mean();
    (m.hr_at(10).unwrap_or(0.0), m.ndcg_at(10).unwrap_or(0.0))
}

/// A pretrained backbone (named), its configuration and the tasks fine-tuned from it.
type Group<B> = (
    String,
    NextItNetLM<B>,
    NextItNetConfig,
    Vec<(TaskName, u64, Task)>,
);

struct Outcome {
    popularity: Vec<Popularity>,
    backbones: Vec<BackboneSummary>,
    rows: Vec<Row>,
    details: Vec<Detail>,
    baselines: Vec<Baseline>,
}

fn ranking(seed: u64) -> RankingOptions {
    RankingOptions::new()
        .with_ks(vec![1, 5, 10, 20])
        .with_seed(seed)
}

/// Pretrains a fresh backbone on `split` (leave-last-out, early stopping on validation NDCG@10).
fn pretrain_lm<B: AutodiffBackend>(
    name: &str,
    vocab: &Vocab,
    split: &LeaveOneOut,
    config: &NextItNetConfig,
    args: &Args,
    device: &B::Device,
) -> Result<(NextItNetLM<B>, PretrainReport), AnyError> {
    let lm = config.init_lm::<B>(device)?;
    println!(
        "\n== pretraining the {name} backbone: {} users, {} items, C={} dilations={:?}, {} parameters, max length {}, up to {} epochs",
        split.train.len(),
        vocab.num_items(),
        config.channels,
        config.dilations,
        ParamReport::of_module(&lm, |_| true).total,
        args.pretrain_max_len,
        args.epochs
    );
    let cfg = PretrainConfig::new()
        .with_train(
            TrainConfig::new()
                .with_epochs(args.epochs)
                .with_batch_size(args.batch_size)
                .with_lr(args.lr)
                .with_lr_schedule(args.lr_schedule)
                .with_max_len(args.pretrain_max_len)
                .with_patience(args.patience)
                .with_seed(args.seed)
                .with_quiet(args.quiet)
                .with_log_path(
                    args.log_dir
                        .as_ref()
                        .map(|d| d.join(format!("{name}.jsonl"))),
                ),
        )
        .with_objective(SeqObjective::NextItem)
        .with_sampled(args.sampled_negatives.map(|n| NegativeSampler {
            num_negatives: n,
            distribution: NegativeDistribution::Uniform,
            first_item: NUM_RESERVED,
            num_tokens: vocab.len() as u32,
        }))
        .with_ranking(ranking(args.seed).with_sampled(false))
        .with_windows(args.windows);
    let (lm, report) = pretrain(lm, config, &split.train, &split.valid, &cfg, device)?;
    for r in &report.history {
        println!(
            "  epoch {:>3}: loss {:.4}, valid NDCG@10 {:.4}, {:.0} seq/s, {:.1}s elapsed{}",
            r.epoch,
            r.train_loss,
            r.valid_metric,
            r.seqs_per_sec,
            r.elapsed,
            if r.best { "  *" } else { "" }
        );
    }
    Ok((lm, report))
}

/// Pretrains one backbone on `sequences` (or loads it from `--backbone-dir`) and evaluates it
/// on the held-out last items.
fn pretrain_backbone<B: AutodiffBackend>(
    name: &str,
    vocab: &Vocab,
    sequences: &[UserSequence],
    args: &Args,
    device: &B::Device,
) -> Result<(NextItNetLM<B>, NextItNetConfig, BackboneSummary), AnyError> {
    let split = leave_one_out(sequences);
    let cached = args
        .backbone_dir
        .as_ref()
        .map(|d| d.join(format!("{name}.safetensors")));
    let (lm, config, report) = match cached.as_ref().filter(|p| p.is_file()) {
        Some(path) => {
            let (lm, config) = load_pretrained::<B>(path, device)?;
            if config.num_tokens != vocab.len() {
                return Err(format!(
                    "{}: {} tokens, but the {name} vocabulary has {}",
                    path.display(),
                    config.num_tokens,
                    vocab.len()
                )
                .into());
            }
            println!(
                "\n== loaded the {name} backbone from {} (C={} dilations={:?}); not pretrained in this run",
                path.display(),
                config.channels,
                config.dilations
            );
            (lm, config, None)
        }
        None => {
            let config = NextItNetConfig::new(vocab.len(), args.channels, args.dilations.clone())
                .with_seed(args.seed);
            let (lm, report) = pretrain_lm::<B>(name, vocab, &split, &config, args, device)?;
            if let Some(path) = &cached {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                save_pretrained(&lm.valid(), &config, path)?;
                println!("  saved to {}", path.display());
            }
            (lm, config, Some(report))
        }
    };
    let params = ParamReport::of_module(&lm, |_| true).total;
    let test: RankingReport = evaluate_next_item(
        &lm.valid(),
        &split.test,
        args.pretrain_max_len,
        &ranking(args.seed),
        device,
    );
    let at = |k| test.full.hr_at(k).unwrap_or(0.0);
    let nd = |k| test.full.ndcg_at(k).unwrap_or(0.0);
    let sampled = test.sampled.as_ref();
    let (epochs, best_epoch, seconds) = report
        .as_ref()
        .map_or((0, 0, 0.0), |r| (r.epochs, r.best_epoch, r.seconds));
    let kept = if report.is_some() {
        format!("kept epoch {best_epoch} of {epochs} ({seconds:.0}s)")
    } else {
        "loaded".to_string()
    };
    println!(
        "  {kept}. Test (leave-last-out, full ranking, history excluded, {} users): HR@10 {:.4}, NDCG@10 {:.4}, MRR@10 {:.4}, HR@20 {:.4}; sampled protocol (99 negatives): HR@10 {:.4}, NDCG@10 {:.4}",
        test.full.count,
        at(10),
        nd(10),
        test.full.mrr_at(10).unwrap_or(0.0),
        at(20),
        sampled.and_then(|s| s.hr_at(10)).unwrap_or(0.0),
        sampled.and_then(|s| s.ndcg_at(10)).unwrap_or(0.0),
    );
    let summary = BackboneSummary {
        name: name.to_string(),
        users: sequences.len(),
        items: vocab.num_items(),
        loaded: report.is_none(),
        epochs,
        best_epoch,
        seconds,
        params,
        valid_ndcg_at_10: report.as_ref().and_then(|r| r.valid.full.ndcg_at(10)),
        test: test.flat(),
        history: report
            .iter()
            .flat_map(|r| &r.history)
            .map(|r| (r.epoch, r.train_loss, r.valid_metric, r.elapsed))
            .collect(),
    };
    Ok((lm, config, summary))
}

/// Keeps at most `k` examples per user (a seeded random subset); 0 keeps all.
fn cap_per_user(examples: &mut Vec<FineTuneExample>, k: usize, seed: u64) {
    if k == 0 {
        return;
    }
    let mut by_user: BTreeMap<String, Vec<FineTuneExample>> = BTreeMap::new();
    for e in examples.drain(..) {
        by_user.entry(e.user.clone()).or_default().push(e);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc01d);
    for (_, mut mine) in by_user {
        mine.shuffle(&mut rng);
        mine.truncate(k);
        examples.extend(mine);
    }
}

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

#[allow(clippy::too_many_arguments)]
fn run_strategy<B: AutodiffBackend>(
    lm: &NextItNetLM<B>,
    config: &NextItNetConfig,
    task: &Task,
    strategy: Strategy,
    loss: FineTuneLoss,
    seed: u64,
    args: &Args,
    tmp: &Path,
    device: &B::Device,
) -> Result<RunResult, AnyError> {
    let start = Instant::now();
    let head = match task.kind {
        peterrec::data::TaskKind::Classification { num_classes, .. } => HeadKind::Classifier {
            outputs: num_classes,
        },
        peterrec::data::TaskKind::TargetItems { num_targets, .. } => HeadKind::TargetItems {
            outputs: num_targets,
        },
    };
    let model = FineTuneConfig::new(strategy, head).with_seed(seed).init(
        lm.backbone.clone(),
        config,
        device,
    )?;
    let params = ParamReport::of(&model);
    let cfg = FineTuneTrainConfig::new()
        .with_train(
            TrainConfig::new()
                .with_epochs(args.finetune_epochs)
                .with_batch_size(args.finetune_batch_size)
                .with_lr(args.finetune_lr)
                .with_lr_schedule(LrSchedule::Constant)
                .with_max_len(args.max_len)
                .with_patience(args.patience)
                .with_seed(seed)
                .with_quiet(args.quiet),
        )
        .with_loss(loss)
        .with_ranking(ranking(seed));
    let (tuned, report) = finetune(model, task, &cfg, device)?;
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

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn sd(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

fn run<B: AutodiffBackend>(
    args: &Args,
    ml: &MovieLens,
    device: B::Device,
) -> Result<Outcome, AnyError> {
    let seeds = args.seeds.clone().unwrap_or_else(|| vec![args.seed]);
    let split = |seed: u64| SplitConfig::new(args.split.0, args.split.1, seed);
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
    for (backbone, lm, config, tasks) in &groups {
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
                let r = run_strategy::<B>(
                    lm, config, task, strategy, loss, *seed, args, &tmp, &device,
                )?;
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

fn table(out: &Outcome) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| task | strategy | metric | test value | ± sd | secondary | trainable params | share of total | task file (bytes) | best epoch | seconds |"
    );
    let _ = writeln!(s, "|---|---|---|---:|---:|---|---:|---:|---:|---|---:|");
    for (row, d) in out.rows.iter().zip(&out.details) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.4} | {:.4} | {} {:.4} | {} | {:.1}% | {} | {} | {:.1} |",
            row.task,
            row.strategy,
            row.metric,
            row.value,
            d.sd,
            d.secondary_name,
            d.secondary,
            row.trainable_params,
            100.0 * row.trainable_params as f64 / d.total_params.max(1) as f64,
            row.task_file_bytes,
            d.best_epochs
                .iter()
                .zip(&d.epochs_run)
                .map(|(b, e)| format!("{b}/{e}"))
                .collect::<Vec<_>>()
                .join(","),
            row.seconds
        );
    }
    s
}

fn real_main() -> Result<(), AnyError> {
    let start = Instant::now();
    let args = Args::parse();
    check_device(args.device)?;
    let variant = detect(&args.path)?;
    let ml = MovieLens::load(variant, &args.path)?;
    println!(
        "{}: {} ratings, {} users, {} movies (loaded in {:.1}s); device {}",
        ml.name(),
        ml.ratings().len(),
        ml.users().len(),
        ml.movies().len(),
        start.elapsed().as_secs_f64(),
        args.device
    );
    let out = with_backend!(args.device, |B, device| run::<B>(&args, &ml, device))??;

    println!("\n== next-item figures of the pretrained backbones (leave-last-out test, full ranking, history excluded)");
    for b in &out.backbones {
        let g = |k: &str| b.test.get(k).copied().unwrap_or(0.0);
        println!(
            "  {:<14} {} users, {} items: HR@10 {:.4}, NDCG@10 {:.4}, MRR@10 {:.4}; sampled HR@10 {:.4}, NDCG@10 {:.4}; epoch {} of {}, {:.0}s",
            b.name,
            b.users,
            b.items,
            g("hr@10"),
            g("ndcg@10"),
            g("mrr@10"),
            g("sampled_hr@10"),
            g("sampled_ndcg@10"),
            b.best_epoch,
            b.epochs,
            b.seconds
        );
    }
    if !out.baselines.is_empty() || !out.popularity.is_empty() {
        println!("\n== baselines (profiles: majority-class test accuracy; cold start: popularity)");
        for b in &out.baselines {
            println!(
                "  {:<10} seed {}: {:.4}",
                b.task, b.seed, b.majority_accuracy
            );
        }
    }
    for p in &out.popularity {
        println!(
            "  {} popularity, seed {}: HR@10 {:.4}, NDCG@10 {:.4}",
            p.task, p.seed, p.hr_at_10, p.ndcg_at_10
        );
    }
    let table = table(&out);
    println!("\n== transfer table ({})\n{table}", ml.name());
    let seconds = start.elapsed().as_secs_f64();
    println!("total wall time {seconds:.0}s");

    let rows = serde_json::to_value(&out.rows)?;
    if let Some(path) = &args.out {
        let file = json!({
            "dataset": ml.name(),
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "config": {
                "epochs": args.epochs,
                "finetune_epochs": args.finetune_epochs,
                "patience": args.patience,
                "channels": args.channels,
                "dilations": args.dilations,
                "max_len": args.max_len,
                "pretrain_max_len": args.pretrain_max_len,
                "batch_size": args.batch_size,
                "finetune_batch_size": args.finetune_batch_size,
                "lr": args.lr,
                "lr_schedule": args.lr_schedule.to_string(),
                "windows": args.windows,
                "finetune_lr": args.finetune_lr,
                "sampled_negatives": args.sampled_negatives,
                "seed": args.seed,
                "seeds": args.seeds,
                "split": [args.split.0, args.split.1],
                "cold_start_loss": format!("{:?}", args.cold_start_loss),
                "cold_start_train_per_user": args.cold_start_train_per_user,
                "device": args.device.to_string(),
            },
            "backbones": out.backbones,
            "baselines": out.baselines,
            "popularity": out.popularity,
            "details": out.details,
            "rows": rows,
            "seconds": seconds,
        });
        write_json_atomic(path, &file)?;
        println!("wrote {}", path.display());
    }
    println!("{}", json!({ "rows": rows }));
    Ok(())
}

fn main() -> ExitCode {
    alloc::keep_freed_memory();
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
