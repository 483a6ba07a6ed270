//! Pretraining and PeterRec fine-tuning on files in the original PeterRec CSV format.
//!
//! ```text
//! cargo run --release -p peterrec-experiments --bin peterrec_csv -- \
//!     --pretrain $PETERREC_DATA/peterrec-demo/history_sequences_20181014_fajie_transfer_pretrain_small.csv \
//!     --finetune $PETERREC_DATA/peterrec-demo/history_sequences_20181014_fajie_transfer_finetune_small.csv \
//!     --out-dir /tmp/peterrec-demo
//! ```
//!
//! - The pretraining file holds one user per line, comma-separated item tokens, oldest first,
//!   left-padded with the token `0`; it gives the vocabulary and the pretraining sequences.
//! - The fine-tuning file holds `<sequence>,,<target1>,<target2>,...`: each target is one example
//!   of a target-item task over the targets of the file (`peterrec_task`). Users (lines) are split
//!   into train / validation / test (`--split`).
//!
//! NextItNet is pretrained with the next-item objective (leave-last-out validation, early
//! stopping), then fine-tuned with `--strategy` (PeterRec serial by default). Reports the
//! backbone's next-item metrics and the test target-item metrics (full ranking over all targets;
//! the sampled protocol beside it under `sampled_*`). With `--out-dir`, saves the pretrained model
//! (`backbone.safetensors`), the task file (`task.safetensors`), the vocabulary (`vocab.json`)
//! and the report (`report.json`). Ends with one JSON line.

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use clap::Parser;
use peterrec_data::batch::SeqObjective;
use peterrec_data::split::{leave_one_out, SplitConfig};
use peterrec_data::task::demo::{peterrec_task, DemoTaskConfig};
use peterrec_data::{TaskBundle, UnseenPolicy};
use peterrec_experiments::alloc;
use peterrec_experiments::cli::RunArgs;
use peterrec_model::{
    save_pretrained, FineTuneConfig, HeadKind, NextItNetConfig, ParamReport, Strategy,
};
use peterrec_train::checkpoint::write_json_atomic;
use peterrec_train::{
    check_device, evaluate_next_item, finetune, pretrain, with_backend, FineTuneLoss,
    FineTuneTrainConfig, LrSchedule, PretrainConfig, RankingOptions, TaskEvaluation, TrainConfig,
};
use serde_json::{json, Map, Value};

// mimalloc, keeping freed memory (faster steps; see the module).
peterrec_experiments::global_mimalloc!();

type AnyError = Box<dyn Error>;

/// Pretrain NextItNet and fine-tune PeterRec on original PeterRec CSV files.
#[derive(Debug, Parser)]
#[command(
    about = "Pretrain NextItNet and fine-tune PeterRec on files in the original PeterRec CSV format"
)]
struct Args {
    /// Pretraining file: comma-separated item tokens per line, left-padded with `0`.
    #[arg(long)]
    pretrain: PathBuf,
    /// Fine-tuning file: `<sequence>,,<target1>,<target2>,...` per line.
    #[arg(long)]
    finetune: PathBuf,
    /// Maximum pretraining epochs.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Maximum fine-tuning epochs.
    #[arg(long, default_value_t = 20)]
    finetune_epochs: usize,
    /// Epochs without validation improvement before stopping.
    #[arg(long, default_value_t = 5)]
    patience: usize,
    /// Channels C.
    #[arg(long, default_value_t = 64)]
    channels: usize,
    /// Block dilations, comma separated.
    #[arg(long, default_value = "1,4,1,4", value_delimiter = ',')]
    dilations: Vec<usize>,
    /// Most recent items per sequence.
    #[arg(long, default_value_t = 50)]
    max_len: usize,
    /// Sequences (pretraining) or examples (fine-tuning) per step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Pretraining Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Fine-tuning Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    finetune_lr: f64,
    /// Fine-tuning strategy (peterrec-serial, peterrec-parallel, fineall, finecls, finelast-N, scratch).
    #[arg(long, default_value = "peterrec-serial")]
    strategy: Strategy,
    /// Fine-tuning loss: `softmax` over all targets, or `bce:N` (the original's BCE with N
    /// sampled negatives).
    #[arg(long, default_value = "softmax")]
    loss: FineTuneLoss,
    /// User split of the fine-tuning file: train and validation fractions (test: the rest).
    #[arg(long, default_value = "0.7,0.1", value_delimiter = ',', num_args = 2)]
    split: Vec<f64>,
    /// Drop fine-tuning items missing from the pretraining vocabulary (default: map them to UNK).
    #[arg(long)]
    drop_unseen: bool,
    /// Save backbone.safetensors, task.safetensors, vocab.json and report.json here.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    // --seed, --device and --quiet.
    #[command(flatten)]
    run: RunArgs,
}

fn ranking(seed: u64) -> RankingOptions {
    RankingOptions::new()
        .with_ks(vec![1, 5, 10, 20])
        .with_seed(seed)
}

fn run<B: AutodiffBackend>(
    args: &Args,
    bundle: &TaskBundle,
    device: B::Device,
) -> Result<Map<String, Value>, AnyError> {
    let mut out = Map::new();
    let config = NextItNetConfig::new(bundle.vocab.len(), args.channels, args.dilations.clone())
        .with_seed(args.run.seed);
    config.validate()?;
    let split = leave_one_out(&bundle.pretrain);
    let train = |epochs: usize, lr: f64| {
        TrainConfig::new()
            .with_epochs(epochs)
            .with_batch_size(args.batch_size)
            .with_lr(lr)
            .with_lr_schedule(LrSchedule::Constant)
            .with_max_len(args.max_len)
            .with_patience(args.patience)
            .with_seed(args.run.seed)
            .with_quiet(args.run.quiet)
    };

    // 1. Pretraining.
    let lm = config.init_lm::<B>(&device)?;
    let cfg = PretrainConfig::new()
        .with_train(train(args.epochs, args.lr))
        .with_objective(SeqObjective::NextItem)
        .with_ranking(ranking(args.run.seed).with_sampled(false))
        .with_windows(false);
    let (lm, pre) = pretrain(lm, &split.train, &split.valid, &cfg, &device)?;
    let next = evaluate_next_item(
        &lm.valid(),
        &split.test,
        args.max_len,
        &ranking(args.run.seed),
        &device,
    );
    println!(
        "pretrained {} epochs (kept {}, {:.1}s); next-item test over {} users (full ranking, history excluded): HR@10 {:.4}, NDCG@10 {:.4}",
        pre.epochs,
        pre.best_epoch,
        pre.seconds,
        next.full.count,
        next.full.hr_at(10).unwrap_or(0.0),
        next.full.ndcg_at(10).unwrap_or(0.0)
    );
    for (k, v) in next.flat() {
        out.insert(format!("pretrain_{k}"), json!(v));
    }
    out.insert("pretrain_epochs".into(), json!(pre.epochs));
    out.insert("pretrain_best_epoch".into(), json!(pre.best_epoch));
    out.insert("pretrain_seconds".into(), json!(pre.seconds));

    // 2. Fine-tuning.
    let head = HeadKind::TargetItems {
        outputs: bundle.task.num_outputs(),
    };
    let model = FineTuneConfig::new(args.strategy, head)
        .with_seed(args.run.seed)
        .init(lm.backbone.clone(), &device)?;
    let params = ParamReport::of(&model);
    let cfg = FineTuneTrainConfig::new()
        .with_train(train(args.finetune_epochs, args.finetune_lr))
        .with_loss(args.loss)
        .with_ranking(ranking(args.run.seed));
    let (tuned, report) = finetune(model, &bundle.task, &cfg, &device)?;
    let TaskEvaluation::Ranking(test) = &report.test else {
        return Err("a target-item head gives a ranking report".into());
    };
    println!(
        "{}: kept epoch {} of {} ({:.1}s), {} trainable of {} parameters",
        args.strategy,
        report.best_epoch,
        report.epochs,
        report.seconds,
        params.trainable,
        params.total
    );
    println!(
        "target-item test, {} examples, full ranking over {} targets:",
        test.full.count,
        bundle.task.num_outputs()
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
            "  sampled protocol (positive + up to 100 uniform negatives): HR@10 {:.4}, NDCG@10 {:.4}",
            s.hr_at(10).unwrap_or(0.0),
            s.ndcg_at(10).unwrap_or(0.0)
        );
    }
    for (k, v) in test.flat() {
        out.insert(k, json!(v));
    }
    out.insert("valid_ndcg@10".into(), json!(report.valid.headline()));
    out.insert("finetune_epochs".into(), json!(report.epochs));
    out.insert("finetune_best_epoch".into(), json!(report.best_epoch));
    out.insert("finetune_seconds".into(), json!(report.seconds));
    out.insert("trainable_params".into(), json!(params.trainable));
    out.insert("total_params".into(), json!(params.total));

    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir)?;
        let backbone = dir.join("backbone.safetensors");
        let task = dir.join("task.safetensors");
        let vocab = dir.join("vocab.json");
        save_pretrained(&lm.valid(), &backbone)?;
        tuned.save_task(&task)?;
        bundle.vocab.save_json(&vocab)?;
        for (name, path) in [("backbone", &backbone), ("task", &task), ("vocab", &vocab)] {
            let bytes = std::fs::metadata(path)?.len();
            println!("saved {name} to {} ({bytes} bytes)", path.display());
            out.insert(format!("{name}_file_bytes"), json!(bytes));
        }
    }
    Ok(out)
}

fn real_main() -> Result<(), AnyError> {
    let start = Instant::now();
    let args = Args::parse();
    check_device(args.run.device)?;
    let [train, valid] = args.split[..] else {
        return Err("--split takes two fractions: TRAIN,VALID".into());
    };
    let split = SplitConfig::fractions(train, valid, args.run.seed);
    split.validate()?;
    let cfg = DemoTaskConfig {
        split,
        policy: if args.drop_unseen {
            UnseenPolicy::Drop
        } else {
            UnseenPolicy::Unk
        },
    };
    let name = args
        .finetune
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "peterrec".into());
    let bundle = peterrec_task(&name, &args.pretrain, &args.finetune, &cfg)?;
    println!(
        "pretraining: {} sequences over {} items; fine-tuning: {} targets, {} / {} / {} train / validation / test examples, {} unseen items",
        bundle.pretrain.len(),
        bundle.vocab.num_items(),
        bundle.task.num_outputs(),
        bundle.task.train.len(),
        bundle.task.valid.len(),
        bundle.task.test.len(),
        bundle.unseen
    );
    let device = args.run.device;
    let mut out = with_backend!(device, |B, device| run::<B>(&args, &bundle, device))??;
    out.insert("task".into(), json!(bundle.task.name));
    out.insert("strategy".into(), json!(args.strategy.to_string()));
    out.insert(
        "loss".into(),
        json!(match args.loss {
            FineTuneLoss::Softmax => "softmax".to_string(),
            FineTuneLoss::BceNegatives { negatives } => format!("bce:{negatives}"),
        }),
    );
    out.insert("targets".into(), json!(bundle.task.num_outputs()));
    out.insert("test_examples".into(), json!(bundle.task.test.len()));
    out.insert("seconds".into(), json!(start.elapsed().as_secs_f64()));
    out.insert(
        "config".into(),
        json!({
            "channels": args.channels,
            "dilations": args.dilations,
            "max_len": args.max_len,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "finetune_lr": args.finetune_lr,
            "epochs": args.epochs,
            "finetune_max_epochs": args.finetune_epochs,
            "patience": args.patience,
            "split": args.split,
            "seed": args.run.seed,
            "device": args.run.device.to_string(),
        }),
    );
    let line = Value::Object(out);
    if let Some(dir) = &args.out_dir {
        write_json_atomic(dir.join("report.json"), &line)?;
    }
    println!("{line}");
    Ok(())
}

fn main() -> ExitCode {
    alloc::keep_freed_memory();
    peterrec_experiments::exit_code(real_main())
}
