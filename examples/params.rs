//! Parameter table of every fine-tuning strategy for one backbone shape.
//!
//! ```text
//! cargo run --release --example params -- --channels 256 --dilations 1,4,1,4,1,4,1,4 --vocab 50000
//! ```
//! Prints the total and trainable parameters per group for each strategy, then one JSON line.

use burn::backend::NdArray;
use clap::Parser;
use peterrec::model::{
    FineTuneConfig, HeadKind, NextItNetConfig, ParamGroup, ParamReport, Strategy,
};

/// Command-line options.
#[derive(Parser, Debug)]
#[command(about = "Parameter accounting of PeterRec and its baselines")]
struct Args {
    /// Channels C.
    #[arg(long, default_value_t = 256)]
    channels: usize,
    /// Block dilations, comma separated.
    #[arg(long, default_value = "1,4,1,4,1,4,1,4", value_delimiter = ',')]
    dilations: Vec<usize>,
    /// Vocabulary size (embedding rows).
    #[arg(long, default_value_t = 50_000)]
    vocab: usize,
    /// Kernel width.
    #[arg(long, default_value_t = 3)]
    kernel: usize,
    /// Outputs of the task head.
    #[arg(long, default_value_t = 2)]
    outputs: usize,
    /// Task head: a classifier (user profiles) or a target-item table (cold start).
    #[arg(long, default_value = "classifier", value_parser = ["classifier", "target-items"])]
    head: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let device = Default::default();
    let config = NextItNetConfig::new(args.vocab, args.channels, args.dilations.clone())
        .with_kernel_size(args.kernel);
    config.validate()?;
    let head = match args.head.as_str() {
        "target-items" => HeadKind::TargetItems {
            outputs: args.outputs,
        },
        _ => HeadKind::Classifier {
            outputs: args.outputs,
        },
    };
    println!(
        "backbone: V={} C={} dilations={:?} k={} (receptive field {})",
        args.vocab,
        args.channels,
        args.dilations,
        args.kernel,
        config.receptive_field()
    );
    let groups = [
        ParamGroup::Embeddings,
        ParamGroup::Blocks,
        ParamGroup::Ln2,
        ParamGroup::Patches,
        ParamGroup::Head,
    ];
    println!(
        "{:<18} {:>12} {:>12} {:>8}  trainable per group (embeddings / blocks / ln2 / patches / head)",
        "strategy", "total", "trainable", "share"
    );
    let mut rows = Vec::new();
    for strategy in Strategy::all() {
        let backbone = config.init::<NdArray>(&device);
        let model = FineTuneConfig::new(strategy, head).init(backbone, &device)?;
        let r = ParamReport::of(&model);
        let per_group: Vec<String> = groups
            .iter()
            .map(|&g| r.group(g).trainable.to_string())
            .collect();
        println!(
            "{:<18} {:>12} {:>12} {:>7.2}%  {}",
            strategy.to_string(),
            r.total,
            r.trainable,
            100.0 * r.trainable as f64 / r.total as f64,
            per_group.join(" / ")
        );
        rows.push(serde_json::json!({
            "strategy": strategy.to_string(),
            "total": r.total,
            "trainable": r.trainable,
            "groups": r.groups,
            "patch_share_of_backbone": r.patch_share_of_backbone(),
        }));
    }
    println!(
        "{}",
        serde_json::json!({
            "vocab": args.vocab,
            "channels": args.channels,
            "dilations": args.dilations,
            "rows": rows,
        })
    );
    Ok(())
}
