//! Next-item recommendation: pretrains NextItNet on any supported data set and reports
//! leave-last-out, full-ranking next-item metrics on the test split.
//!
//! ```text
//! cargo run --release --example nextitem -- --format ml-1m --path $PETERREC_DATA/ml-1m
//! # ML-1M HR@10 0.28 / NDCG@10 0.16, 444 s on 2 cores, best epoch at 337 s (docs/results.md):
//! cargo run --release --features flex --example nextitem -- --format ml-1m --path $PETERREC_DATA/ml-1m \
//!     --device flex --max-len 50 --batch-size 64 --lr 2e-3 --lr-schedule cosine --windows --epochs 4
//! cargo run --release --example nextitem -- --format ml-100k --path $PETERREC_DATA/ml-100k --epochs 30
//! cargo run --release --example nextitem -- --format sequences --path $PETERREC_DATA/amazon/Beauty.txt
//! cargo run --release --example nextitem -- --format peterrec --path $PETERREC_DATA/peterrec-demo
//! cargo run --release --features cuda --example nextitem -- --format ml-1m --path $PETERREC_DATA/ml-1m --device cuda
//! ```
//!
//! Protocol: each user's last item is the test target, the one before it the validation target,
//! and the rest the training sequence (`leave_one_out`). Pretraining keeps the epoch with the
//! best validation NDCG@10 (early stopping with `--patience`); that model is then evaluated on
//! the test targets, ranking every item of the catalogue (reserved tokens never ranked, items
//! already in the user's history excluded). The papers' sampled protocol (the positive against
//! 99 random negatives) is reported beside it under `sampled_*` names.
//!
//! Prints a readable summary, then ONE JSON line with at least `hr@10`, `ndcg@10`, `mrr@10`,
//! `epochs` and `seconds`.

// mimalloc, keeping freed memory (faster steps; see the module).
#[path = "common/alloc.rs"]
mod alloc;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use clap::{Parser, ValueEnum};
use peterrec::data::batch::SeqObjective;
use peterrec::data::movielens::MovieLens;
use peterrec::data::readers::peterrec::read_pretrain_file;
use peterrec::data::readers::sequences::read_sequence_file;
use peterrec::data::sequence::{build_vocab_and_encode, SequenceStats};
use peterrec::data::split::leave_one_out;
use peterrec::data::task::demo::DEMO_PRETRAIN_FILE;
use peterrec::data::{UserSequence, Vocab, NUM_RESERVED};
use peterrec::model::{
    save_pretrained, NegativeDistribution, NegativeSampler, NextItNetConfig, ParamReport,
};
use peterrec::train::{
    check_device, evaluate_next_item, pretrain, with_backend, DeviceChoice, LrSchedule,
    PretrainConfig, PretrainReport, RankingOptions, RankingReport, TrainConfig,
};
use serde_json::{json, Value};

type AnyError = Box<dyn Error>;

/// Data set format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// MovieLens 1M directory (ratings.dat, users.dat, movies.dat).
    #[value(name = "ml-1m")]
    Ml1m,
    /// MovieLens 100K directory (u.data, u.user, u.item).
    #[value(name = "ml-100k")]
    Ml100k,
    /// Sequence file, one user per line: `user item item ...` (oldest first).
    Sequences,
    /// The original PeterRec pretraining CSV (comma-separated tokens, left-padded with `0`), or a
    /// directory holding the demo pretraining file.
    Peterrec,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Ml1m => "ml-1m",
            Format::Ml100k => "ml-100k",
            Format::Sequences => "sequences",
            Format::Peterrec => "peterrec",
        }
    }
}

/// The pretraining objective: `next` (causal next-item at every position) or `masked:P`
/// (next-item with inputs masked with probability P).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Objective(SeqObjective);

impl FromStr for Objective {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        if s == "next" {
            return Ok(Objective(SeqObjective::NextItem));
        }
        match s.strip_prefix("masked:").map(str::parse::<f64>) {
            Some(Ok(p)) if (0.0..1.0).contains(&p) => {
                Ok(Objective(SeqObjective::MaskedNextItem { p }))
            }
            _ => Err(format!(
                "unknown objective `{s}` (expected `next` or `masked:P` with 0 <= P < 1)"
            )),
        }
    }
}

/// Pretrain NextItNet and report leave-last-out next-item metrics.
#[derive(Debug, Parser)]
#[command(about = "Pretrain NextItNet on a data set and report full-ranking next-item metrics")]
struct Args {
    /// Format of the data.
    #[arg(long, value_enum)]
    format: Format,
    /// Data directory (MovieLens, PeterRec demo) or file (sequences, PeterRec CSV).
    #[arg(long)]
    path: PathBuf,
    /// Maximum pretraining epochs.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Epochs without validation improvement before stopping.
    #[arg(long, default_value_t = 3)]
    patience: usize,
    /// Channels C.
    #[arg(long, default_value_t = 64)]
    channels: usize,
    /// Block dilations, comma separated (block d holds convolutions of dilation d and 2d).
    #[arg(long, default_value = "1,4,1,4", value_delimiter = ',')]
    dilations: Vec<usize>,
    /// Most recent items per training row and per evaluation history.
    #[arg(long, default_value_t = 100)]
    max_len: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Learning-rate schedule over the planned epochs: `constant`, `cosine`, `cosine:WARMUP_STEPS`
    /// or `cosine:WARMUP_STEPS:FINAL_RATIO`.
    #[arg(long, default_value = "constant")]
    lr_schedule: LrSchedule,
    /// L2 weight decay (0 for none).
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// Seed of initialisation, shuffling and sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Sampled softmax with this many shared uniform negatives per step (default: full softmax).
    #[arg(long)]
    sampled_negatives: Option<usize>,
    /// Objective: `next` or `masked:P`.
    #[arg(long, default_value = "next")]
    objective: Objective,
    /// Sub-sequence augmentation: train on every window of a long sequence, not only the last.
    #[arg(long)]
    windows: bool,
    /// Users with fewer items are left out (MovieLens).
    #[arg(long, default_value_t = 3)]
    min_len: usize,
    /// Device: `cpu`, `flex`, `cuda` or `cuda:N` (`flex` and CUDA need a build with `--features flex` / `cuda`).
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// JSON-lines metrics log (one line per epoch).
    #[arg(long)]
    log: Option<PathBuf>,
    /// Save the kept model (backbone and softmax head) to this file.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Hide the progress bars.
    #[arg(long)]
    quiet: bool,
}

/// Sequences and vocabulary of the chosen data set.
struct Dataset {
    name: String,
    vocab: Vocab,
    sequences: Vec<UserSequence>,
}

fn load(format: Format, path: &Path, min_len: usize) -> Result<Dataset, AnyError> {
    let (name, vocab, sequences) = match format {
        Format::Ml1m | Format::Ml100k => {
            let ml = if format == Format::Ml1m {
                MovieLens::load_1m(path)?
            } else {
                MovieLens::load_100k(path)?
            };
            let (vocab, seqs) = ml.pretraining(min_len);
            (ml.name().to_string(), vocab, seqs)
        }
        Format::Sequences => {
            let raw = read_sequence_file(path)?;
            let (vocab, seqs) =
                build_vocab_and_encode(raw.iter().map(|s| (s.user.clone(), s.items.as_slice())));
            (file_stem(path), vocab, seqs)
        }
        Format::Peterrec => {
            let file = if path.is_dir() {
                path.join(DEMO_PRETRAIN_FILE)
            } else {
                path.to_path_buf()
            };
            let raw = read_pretrain_file(&file)?;
            let (vocab, seqs) = build_vocab_and_encode(
                raw.iter().map(|s| (s.line.to_string(), s.items.as_slice())),
            );
            (file_stem(&file), vocab, seqs)
        }
    };
    Ok(Dataset {
        name,
        vocab,
        sequences,
    })
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// What one run produced.
struct Outcome {
    report: PretrainReport,
    test: RankingReport,
    params: usize,
}

fn run<B: AutodiffBackend>(
    args: &Args,
    data: &Dataset,
    config: &NextItNetConfig,
    device: B::Device,
) -> Result<Outcome, AnyError> {
    let split = leave_one_out(&data.sequences);
    if split.valid.is_empty() {
        return Err("no sequence has three or more items: nothing to validate or test".into());
    }
    let lm = config.init_lm::<B>(&device)?;
    let params = ParamReport::of_module(&lm, |_| true).total;
    println!(
        "model: C={} dilations={:?} (receptive field {}), {} parameters; {} training rows, {} validation and {} test users",
        config.channels,
        config.dilations,
        config.receptive_field(),
        params,
        split.train.len(),
        split.valid.len(),
        split.test.len()
    );
    let ranking = RankingOptions::new()
        .with_ks(vec![1, 5, 10, 20])
        .with_seed(args.seed);
    let cfg = PretrainConfig::new()
        .with_train(
            TrainConfig::new()
                .with_epochs(args.epochs)
                .with_batch_size(args.batch_size)
                .with_lr(args.lr)
                .with_lr_schedule(args.lr_schedule)
                .with_weight_decay(args.weight_decay)
                .with_max_len(args.max_len)
                .with_patience(args.patience)
                .with_seed(args.seed)
                .with_quiet(args.quiet)
                .with_log_path(args.log.clone()),
        )
        .with_objective(args.objective.0)
        .with_sampled(args.sampled_negatives.map(|n| NegativeSampler {
            num_negatives: n,
            distribution: NegativeDistribution::Uniform,
            first_item: NUM_RESERVED,
            num_tokens: data.vocab.len() as u32,
        }))
        // Validation every epoch: full ranking only (the sampled protocol is for the test).
        .with_ranking(ranking.clone().with_sampled(false))
        .with_windows(args.windows);
    let (lm, report) = pretrain(lm, &split.train, &split.valid, &cfg, &device)?;
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
    let inner = lm.valid();
    let test = evaluate_next_item(&inner, &split.test, args.max_len, &ranking, &device);
    if let Some(path) = &args.save {
        save_pretrained(&inner, path)?;
        println!("saved the kept model to {}", path.display());
    }
    Ok(Outcome {
        report,
        test,
        params,
    })
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

fn real_main() -> Result<(), AnyError> {
    let start = Instant::now();
    let args = Args::parse();
    // Fail fast, before loading data, when the device cannot work here.
    check_device(args.device)?;
    let data = load(args.format, &args.path, args.min_len)?;
    let stats = SequenceStats::compute(&data.sequences);
    println!(
        "{} ({}): {} users, {} items, {} interactions, length p50 {} / max {}",
        data.name,
        args.format.name(),
        stats.users,
        data.vocab.num_items(),
        stats.interactions,
        stats.p50,
        stats.max_len
    );
    let config = NextItNetConfig::new(data.vocab.len(), args.channels, args.dilations.clone())
        .with_seed(args.seed);
    config.validate()?;
    let outcome = with_backend!(args.device, |B, device| run::<B>(
        &args, &data, &config, device
    ))??;
    let Outcome {
        report,
        test,
        params,
    } = outcome;

    let valid = &report.valid.full;
    println!(
        "kept epoch {} of {} ({:.1}s): validation HR@10 {:.4}, NDCG@10 {:.4}",
        report.best_epoch,
        report.epochs,
        report.seconds,
        valid.hr_at(10).unwrap_or(0.0),
        valid.ndcg_at(10).unwrap_or(0.0)
    );
    println!(
        "test, full ranking over {} items (history excluded), {} users:",
        data.vocab.num_items(),
        test.full.count
    );
    for &k in &test.full.ks {
        println!(
            "  HR@{k:<2} {:.4}   NDCG@{k:<2} {:.4}   MRR@{k:<2} {:.4}",
            test.full.hr_at(k).unwrap_or(0.0),
            test.full.ndcg_at(k).unwrap_or(0.0),
            test.full.mrr_at(k).unwrap_or(0.0)
        );
    }
    if let Some(s) = &test.sampled {
        println!(
            "test, sampled protocol (positive + 99 random negatives; inflated, for comparison with the papers): HR@10 {:.4}, NDCG@10 {:.4}",
            s.hr_at(10).unwrap_or(0.0),
            s.ndcg_at(10).unwrap_or(0.0)
        );
    }

    let mut line = serde_json::Map::new();
    line.insert("dataset".into(), json!(data.name));
    line.insert("format".into(), json!(args.format.name()));
    for (k, v) in test.flat() {
        line.insert(k, json!(v));
    }
    line.insert("test_users".into(), json!(test.full.count));
    line.insert("valid_hr@10".into(), json!(valid.hr_at(10)));
    line.insert("valid_ndcg@10".into(), json!(valid.ndcg_at(10)));
    line.insert("epochs".into(), json!(report.epochs));
    line.insert("best_epoch".into(), json!(report.best_epoch));
    line.insert("train_seconds".into(), json!(report.seconds));
    line.insert("seconds".into(), json!(start.elapsed().as_secs_f64()));
    line.insert("params".into(), json!(params));
    line.insert(
        "config".into(),
        json!({
            "channels": args.channels,
            "dilations": args.dilations,
            "max_len": args.max_len,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "lr_schedule": args.lr_schedule.to_string(),
            "weight_decay": args.weight_decay,
            "seed": args.seed,
            "patience": args.patience,
            "max_epochs": args.epochs,
            "objective": format!("{:?}", args.objective.0),
            "sampled_negatives": args.sampled_negatives,
            "windows": args.windows,
            "device": args.device.to_string(),
        }),
    );
    println!("{}", Value::Object(line));
    Ok(())
}
