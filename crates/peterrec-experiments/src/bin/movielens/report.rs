//! What the table reports: its rows, the per-seed details and baselines kept in the `--out`
//! file, and the Markdown table printed at the end.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{json, Value};

use crate::args::Args;
use crate::backbone::BackboneSummary;

/// Everything a run of the table measured.
pub struct Outcome {
    pub popularity: Vec<Popularity>,
    pub backbones: Vec<BackboneSummary>,
    pub rows: Vec<Row>,
    pub details: Vec<Detail>,
    pub baselines: Vec<Baseline>,
}

/// One row of the table, as printed in the final JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub task: String,
    pub strategy: String,
    pub metric: String,
    pub value: f64,
    pub trainable_params: usize,
    pub task_file_bytes: u64,
    pub seconds: f64,
}

/// What else a row knows (kept in the `--out` file).
#[derive(Debug, Clone, Serialize)]
pub struct Detail {
    pub task: String,
    pub strategy: String,
    pub seeds: Vec<u64>,
    /// Test headline per seed.
    pub values: Vec<f64>,
    /// Standard deviation of `values` (0 with one seed).
    pub sd: f64,
    /// Macro-F1 (classification) or HR@10 (cold start), mean over seeds.
    pub secondary_name: String,
    pub secondary: f64,
    /// Sampled-protocol NDCG@10 (cold start), mean over seeds.
    pub sampled_ndcg_at_10: Option<f64>,
    pub valid_values: Vec<f64>,
    pub best_epochs: Vec<usize>,
    pub epochs_run: Vec<usize>,
    pub total_params: usize,
}

/// Majority-class baseline of a profile task.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub task: String,
    pub seed: u64,
    pub majority_accuracy: f64,
    pub train_examples: usize,
    pub valid_examples: usize,
    pub test_examples: usize,
}

/// Popularity baseline of a target-item task.
#[derive(Debug, Clone, Serialize)]
pub struct Popularity {
    pub task: String,
    pub seed: u64,
    pub hr_at_10: f64,
    pub ndcg_at_10: f64,
}

/// The transfer table in Markdown: one row per task and strategy (means over the seeds).
pub fn table(out: &Outcome) -> String {
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

/// Prints the next-item figures of the backbones and the baselines.
pub fn print_summary(out: &Outcome) {
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
}

/// The `--out` file: the dataset, the command line, the configuration and everything measured.
pub fn out_file(args: &Args, dataset: &str, out: &Outcome, rows: &Value, seconds: f64) -> Value {
    json!({
        "dataset": dataset,
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
            "tied_output": args.tied_output,
            "finetune_lr": args.finetune_lr,
            "sampled_negatives": args.sampled_negatives,
            "seed": args.run.seed,
            "seeds": args.seeds,
            "split": [args.split.0, args.split.1],
            "cold_start_loss": format!("{:?}", args.cold_start_loss),
            "cold_start_train_per_user": args.cold_start_train_per_user,
            "device": args.run.device.to_string(),
        },
        "backbones": out.backbones,
        "baselines": out.baselines,
        "popularity": out.popularity,
        "details": out.details,
        "rows": rows,
        "seconds": seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome() -> Outcome {
        Outcome {
            popularity: Vec::new(),
            backbones: Vec::new(),
            rows: vec![Row {
                task: "gender".into(),
                strategy: "peterrec-serial".into(),
                metric: "accuracy".into(),
                value: 0.75,
                trainable_params: 250,
                task_file_bytes: 4096,
                seconds: 12.34,
            }],
            details: vec![Detail {
                task: "gender".into(),
                strategy: "peterrec-serial".into(),
                seeds: vec![0, 1],
                values: vec![0.7, 0.8],
                sd: 0.0707,
                secondary_name: "macro_f1".into(),
                secondary: 0.5,
                sampled_ndcg_at_10: None,
                valid_values: vec![0.7, 0.7],
                best_epochs: vec![2, 3],
                epochs_run: vec![5, 4],
                total_params: 1000,
            }],
            baselines: Vec::new(),
        }
    }

    #[test]
    fn table_row_shows_mean_spread_share_and_epochs_per_seed() {
        let t = table(&outcome());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("| task | strategy | metric | test value | ± sd |"));
        // 250 of 1000 parameters: 25.0%; best epoch / epochs run, per seed.
        assert_eq!(
            lines[2],
            "| gender | peterrec-serial | accuracy | 0.7500 | 0.0707 | macro_f1 0.5000 | 250 | 25.0% | 4096 | 2/5,3/4 | 12.3 |"
        );
    }

    #[test]
    fn table_of_no_rows_is_the_header() {
        let mut out = outcome();
        out.rows.clear();
        out.details.clear();
        assert_eq!(table(&out).lines().count(), 2);
    }
}
