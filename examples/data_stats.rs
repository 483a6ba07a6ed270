//! Prints the figures of a data set: users, items, interactions and sequence-length
//! percentiles, then the same figures as one JSON line.
//!
//! ```text
//! cargo run --release --example data_stats -- --format ml-1m --path ../shared/data/ml-1m
//! cargo run --release --example data_stats -- --format ml-100k --path ../shared/data/ml-100k
//! cargo run --release --example data_stats -- --format sequences --path ../shared/data/amazon/Beauty.txt
//! cargo run --release --example data_stats -- --format peterrec --path ../shared/data/peterrec-demo
//! cargo run --release --example data_stats -- --format csv --path interactions.csv
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use peterrec_data::movielens::MovieLens;
use peterrec_data::readers::csv::{group_by_user, read_interactions};
use peterrec_data::readers::peterrec::{read_finetune_file, read_pretrain_file};
use peterrec_data::readers::sequences::read_sequence_file;
use peterrec_data::sequence::{build_vocab_and_encode, SequenceStats};
use peterrec_data::task::demo::DEMO_PRETRAIN_FILE;
use peterrec_data::{DataError, UserSequence};
use serde::Serialize;

/// Data set format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// MovieLens 1M directory (ratings.dat, users.dat, movies.dat).
    #[value(name = "ml-1m")]
    Ml1m,
    /// MovieLens 100K directory (u.data, u.user, u.item).
    #[value(name = "ml-100k")]
    Ml100k,
    /// Sequence file, one user per line: `user item item ...`.
    Sequences,
    /// PeterRec CSV: a pretraining file, a fine-tuning file (`seq,,targets`, recognised by its
    /// first line; its sequences are counted), or a directory holding the demo pretraining file.
    Peterrec,
    /// Generic `user,item[,timestamp]` CSV (or TSV for .tsv files).
    Csv,
}

/// Data set statistics.
#[derive(Debug, Parser)]
#[command(about = "Print users, items, interactions and sequence-length percentiles of a data set")]
struct Args {
    /// Format of the data.
    #[arg(long, value_enum)]
    format: Format,
    /// File or directory to read.
    #[arg(long)]
    path: PathBuf,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    format: &'a str,
    path: String,
    #[serde(flatten)]
    stats: SequenceStats,
}

fn sequences(format: Format, path: &Path) -> Result<Vec<UserSequence>, DataError> {
    Ok(match format {
        Format::Ml1m => MovieLens::load_1m(path)?.pretraining(1).1,
        Format::Ml100k => MovieLens::load_100k(path)?.pretraining(1).1,
        Format::Sequences => {
            let raw = read_sequence_file(path)?;
            build_vocab_and_encode(raw.iter().map(|s| (s.user.clone(), s.items.as_slice()))).1
        }
        Format::Peterrec => {
            let file = if path.is_dir() {
                path.join(DEMO_PRETRAIN_FILE)
            } else {
                path.to_path_buf()
            };
            // A fine-tuning file (`seq,,targets`) is recognised by its first line.
            let first = std::fs::read_to_string(&file)
                .map_err(|e| DataError::io(&file, e))?
                .lines()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.contains(",,"));
            if first {
                let raw = read_finetune_file(&file)?;
                build_vocab_and_encode(raw.iter().map(|s| (s.line.to_string(), s.items.as_slice())))
                    .1
            } else {
                let raw = read_pretrain_file(&file)?;
                build_vocab_and_encode(raw.iter().map(|s| (s.line.to_string(), s.items.as_slice())))
                    .1
            }
        }
        Format::Csv => {
            let raw = group_by_user(read_interactions(path)?);
            build_vocab_and_encode(raw.iter().map(|s| (s.user.clone(), s.items.as_slice()))).1
        }
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let seqs = match sequences(args.format, &args.path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stats = SequenceStats::compute(&seqs);
    let format = args
        .format
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default();
    println!("data set      {} ({format})", args.path.display());
    println!("users         {}", stats.users);
    println!("items         {}", stats.items);
    println!("interactions  {}", stats.interactions);
    println!(
        "seq length    min {}  p50 {}  p90 {}  p99 {}  max {}",
        stats.min_len, stats.p50, stats.p90, stats.p99, stats.max_len
    );
    let report = Report {
        format: &format,
        path: args.path.display().to_string(),
        stats,
    };
    match serde_json::to_string(&report) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
