//! Prints the figures of a data set: users, items, interactions and sequence-length
//! percentiles, then the same figures as one JSON line.
//!
//! ```text
//! cargo run --release --example data_stats -- --format ml-1m --path $PETERREC_DATA/ml-1m
//! cargo run --release --example data_stats -- --format ml-100k --path $PETERREC_DATA/ml-100k
//! cargo run --release --example data_stats -- --format sequences --path $PETERREC_DATA/amazon/Beauty.txt
//! cargo run --release --example data_stats -- --format peterrec --path $PETERREC_DATA/peterrec-demo
//! cargo run --release --example data_stats -- --format csv --path interactions.csv
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use peterrec_data::movielens::MovieLens;
use peterrec_data::readers::csv::{group_by_user, read_interactions};
use peterrec_data::readers::peterrec::{read_finetune_file, read_pretrain_file};
use peterrec_data::readers::sequences::{read_sequence_file, RawSequence};
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

/// The users' sequences: MovieLens as its own loader builds them, the other formats as raw
/// `(user, items)` encoded with a fresh vocabulary.
fn sequences(format: Format, path: &Path) -> Result<Vec<UserSequence>, DataError> {
    let users = |raw: Vec<RawSequence>| raw.into_iter().map(|s| (s.user, s.items)).collect();
    let raw: Vec<(String, Vec<String>)> = match format {
        Format::Ml1m => return Ok(MovieLens::load_1m(path)?.pretraining(1).1),
        Format::Ml100k => return Ok(MovieLens::load_100k(path)?.pretraining(1).1),
        Format::Sequences => users(read_sequence_file(path)?),
        Format::Csv => users(group_by_user(read_interactions(path)?)),
        Format::Peterrec => {
            let file = if path.is_dir() {
                path.join(DEMO_PRETRAIN_FILE)
            } else {
                path.to_path_buf()
            };
            let text = std::fs::read_to_string(&file).map_err(|e| DataError::io(&file, e))?;
            // A fine-tuning file (`seq,,targets`) is recognised by its first line.
            let first = text.lines().find(|l| !l.trim().is_empty());
            if first.is_some_and(|l| l.contains(",,")) {
                let lines = read_finetune_file(&file)?.into_iter();
                lines.map(|s| (s.line.to_string(), s.items)).collect()
            } else {
                let lines = read_pretrain_file(&file)?.into_iter();
                lines.map(|s| (s.line.to_string(), s.items)).collect()
            }
        }
    };
    Ok(build_vocab_and_encode(raw.iter().map(|(u, items)| (u.clone(), items.as_slice()))).1)
}

fn real_main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let stats = SequenceStats::compute(&sequences(args.format, &args.path)?);
    let format = args.format.to_possible_value().expect("no skipped value");
    let format = format.get_name();
    println!("data set      {} ({format})", args.path.display());
    println!("users         {}", stats.users);
    println!("items         {}", stats.items);
    println!("interactions  {}", stats.interactions);
    println!(
        "seq length    min {}  p50 {}  p90 {}  p99 {}  max {}",
        stats.min_len, stats.p50, stats.p90, stats.p99, stats.max_len
    );
    let path = args.path.display().to_string();
    let report = Report {
        format,
        path,
        stats,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
