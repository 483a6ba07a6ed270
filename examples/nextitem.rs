//! Next-item recommendation: pretrains NextItNet on any supported data set and reports
//! leave-last-out, full-ranking next-item metrics on the test split.
//!
//! ```text
//! cargo run --release --example nextitem -- --format ml-1m --path $PETERREC_DATA/ml-1m
//! cargo run --release --example nextitem -- --format ml-100k --path $PETERREC_DATA/ml-100k --epochs 30
//! cargo run --release --example nextitem -- --format sequences --path $PETERREC_DATA/amazon/Beauty.txt
//! cargo run --release --features cuda --example nextitem -- --format ml-1m --path $PETERREC_DATA/ml-1m --device cuda
//! ```
//!
//! Every setting defaults to the measured ML-1M recipe (`docs/results.md`). Protocol: each
//! user's last item is the test target, the one before it the validation target, the rest the
//! training sequence. The epoch with the best validation NDCG@10 is kept and evaluated on the
//! test targets, ranking every item of the catalogue (items already in the user's history
//! excluded, ties counted against the target). The older papers' sampled protocols (the target
//! against 100 negatives drawn uniformly, or in proportion to the training counts) are reported
//! beside it as `sampled_*` and `sampled_pop_*`, and popularity and a first-order Markov chain,
//! fitted on the same training sequences, are ranked the same way. Ends with one JSON line.

#[path = "common/alloc.rs"]
mod alloc;

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use clap::Parser;
use peterrec::data::batch::SeqObjective;
use peterrec::data::vocab::NUM_RESERVED;
use peterrec::model::{save_pretrained, NegativeDistribution, NegativeSampler};
use peterrec::prelude::*;
use peterrec::train::eval::RankingMeans;
use peterrec::train::{check_device, with_backend};
use serde_json::{json, Value};

/// Pretrain NextItNet on a data set and report full-ranking next-item metrics.
#[derive(Debug, Parser)]
struct Args {
    /// Data format: ml-1m, ml-100k, sequences or peterrec.
    #[arg(long)]
    format: DataFormat,
    /// Data directory (MovieLens, PeterRec demo) or file (sequences, PeterRec CSV).
    #[arg(long)]
    path: PathBuf,
    /// MovieLens users with fewer ratings are left out.
    #[arg(long, default_value_t = 3)]
    min_len: usize,
    /// Channels C.
    #[arg(long, default_value_t = 128)]
    channels: usize,
    /// Block dilations (block d holds convolutions of dilation d and 2d).
    #[arg(long, default_value = "1,4,1,4", value_delimiter = ',')]
    dilations: Vec<usize>,
    /// `next` or `masked:P`.
    #[arg(long, default_value = "next")]
    objective: SeqObjective,
    /// Sampled softmax with this many uniform negatives instead of the full softmax.
    #[arg(long)]
    sampled_negatives: Option<usize>,
    /// Train on every window of a long sequence, not only its last (`--windows false` to stop).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true")]
    windows: bool,
    /// Dropout on the embeddings and residual branches while pretraining (default: the recipe's).
    #[arg(long)]
    dropout: Option<f64>,
    /// Score items with the item embedding table (tied input and output embeddings) instead of
    /// the head's own weight (default: the recipe's, untied).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    tied_output: Option<bool>,
    /// Device: flex (default), cpu (ndarray), cuda or cuda:N.
    #[arg(long, default_value_t)]
    device: DeviceChoice,
    /// Where to save the kept model.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Training settings (`--epochs`, `--lr`, `--lr-schedule`, `--max-len`, ...).
    #[command(flatten)]
    train: peterrec_experiments::cli::TrainArgs,
}

fn run<B: AutodiffBackend>(args: &Args, data: &Dataset, device: B::Device) -> Result<Value> {
    let backbone = NextItNetConfig::new(data.vocab.len(), args.channels, args.dilations.clone())
        .with_seed(args.train.seed);
    let sampled = args.sampled_negatives.map(|n| NegativeSampler {
        num_negatives: n,
        distribution: NegativeDistribution::Uniform,
        first_item: NUM_RESERVED,
        num_tokens: data.vocab.len() as u32,
    });
    let recipe = PretrainConfig::new();
    let config = recipe
        .clone()
        .with_dropout(args.dropout.unwrap_or(recipe.dropout))
        .with_train(args.train.config(recipe.train.clone()))
        .with_objective(args.objective)
        .with_sampled(sampled)
        .with_windows(args.windows)
        .with_tied_output(args.tied_output.unwrap_or(recipe.tied_output));
    let pretrained = Pretrainer::new(backbone)
        .with_config(config.clone())
        .fit::<B>(&data.sequences, &device)?;
    let report = &pretrained.report;
    let ranking = RankingOptions::new()
        .with_ks(vec![1, 5, 10, 20])
        .with_seed(args.train.seed);
    let test = pretrained.test_report(&ranking, &device);
    if let Some(path) = &args.save {
        save_pretrained(
            &burn::module::AutodiffModule::valid(&pretrained.model),
            path,
        )?;
    }
    println!(
        "kept epoch {} of {} ({:.1}s); test, full ranking over {} items, {} users:",
        report.best_epoch,
        report.epochs,
        report.seconds,
        data.vocab.num_items(),
        test.full.count
    );
    for &k in &test.full.ks {
        let f = &test.full;
        let (hr, ndcg, mrr) = (f.hr_at(k), f.ndcg_at(k), f.mrr_at(k));
        let [hr, ndcg, mrr] = [hr, ndcg, mrr].map(|v| v.unwrap_or(f64::NAN));
        println!("  HR@{k:<2} {hr:.4}   NDCG@{k:<2} {ndcg:.4}   MRR@{k:<2} {mrr:.4}");
    }
    let (popularity, markov) = pretrained.baseline_reports(&ranking);
    println!(
        "HR@10 / NDCG@10 by protocol (the sampled ones rank the target against 100 negatives):"
    );
    println!(
        "  {:<12} {:>17} {:>17} {:>23}",
        "", "full ranking", "sampled uniform", "sampled by popularity"
    );
    for (name, r) in [
        ("NextItNet", &test),
        ("popularity", &popularity),
        ("Markov", &markov),
    ] {
        let cell = |m: Option<&RankingMeans>| match m {
            Some(m) => format!(
                "{:.4} / {:.4}",
                m.hr_at(10).unwrap_or(0.0),
                m.ndcg_at(10).unwrap_or(0.0)
            ),
            None => "-".into(),
        };
        let (full, uniform, popular) = (
            cell(Some(&r.full)),
            cell(r.sampled.as_ref()),
            cell(r.sampled_popularity.as_ref()),
        );
        println!("  {name:<12} {full:>17} {uniform:>17} {popular:>23}");
    }
    let mut line = json!({
        "dataset": data.name, "format": args.format.name(),
        "protocol": "leave-last-out, full ranking, history excluded, ties against the target",
        "valid_ndcg@10": report.valid.full.ndcg_at(10), "epochs": report.epochs,
        "best_epoch": report.best_epoch, "train_seconds": report.seconds,
        "device": args.device.to_string(),
        "config": {
            "channels": args.channels, "dilations": args.dilations, "max_len": config.train.max_len,
            "batch_size": config.train.batch_size, "lr": config.train.lr,
            "lr_schedule": config.train.lr_schedule.to_string(),
            "max_epochs": config.train.epochs, "dropout": config.dropout,
            "weight_decay": config.train.weight_decay, "windows": config.windows,
            "tied_output": config.tied_output,
            "seed": config.train.seed,
        },
    });
    for (k, v) in test.flat() {
        line[k] = json!(v);
    }
    line["baselines"] = json!({ "popularity": popularity.flat(), "markov": markov.flat() });
    Ok(line)
}

fn main() -> Result<()> {
    alloc::keep_freed_memory();
    let start = Instant::now();
    let args = Args::parse();
    check_device(args.device)?;
    let data = Dataset::load(args.format, &args.path, args.min_len)?;
    println!(
        "{}: {} users, {} items",
        data.name,
        data.sequences.len(),
        data.vocab.num_items()
    );
    let mut line = with_backend!(args.device, |B, device| run::<B>(&args, &data, device))??;
    line["seconds"] = json!(start.elapsed().as_secs_f64());
    println!("{line}");
    Ok(())
}
