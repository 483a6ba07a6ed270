//! Transfer learning on MovieLens: pretrains NextItNet on the users' rating sequences, then
//! fine-tunes PeterRec (serial and parallel), FineAll, FineCLS, FineLast-1 and Scratch on the
//! gender, age, occupation and cold-start tasks, and prints one table.
//!
//! ```text
//! cargo run --release -p peterrec-experiments --bin movielens -- --path $PETERREC_DATA/ml-1m --out table.json
//! cargo run --release -p peterrec-experiments --bin movielens -- --path $PETERREC_DATA/ml-1m --epochs 1 --finetune-epochs 1 --out /tmp/r.json
//! cargo run --release -p peterrec-experiments --bin movielens -- --path $PETERREC_DATA/ml-100k --tasks gender,cold-start --strategies peterrec-serial,finecls
//! # the 3-seed table of docs/results.md (its wall time is recorded there):
//! cargo run --release -p peterrec-experiments --bin movielens -- --path $PETERREC_DATA/ml-1m --seeds 0,1,2 --out table.json
//! ```
//! The release (ML-1M or ML-100K) is detected by the files in `--path`. Every training setting
//! defaults to the library's recipes: the backbones are pretrained as `nextitem` pretrains
//! (C = 128, `PretrainConfig::new`), and every strategy is fine-tuned with
//! `FineTuneTrainConfig::new`.
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

mod args;
mod backbone;
mod report;
mod transfer;

use std::error::Error;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use peterrec_data::movielens::MovieLens;
use peterrec_experiments::alloc;
use peterrec_train::checkpoint::write_json_atomic;
use peterrec_train::{check_device, with_backend};
use serde_json::json;

use crate::args::{detect, Args};

// mimalloc, keeping freed memory (faster steps; see the module).
peterrec_experiments::global_mimalloc!();

type AnyError = Box<dyn Error>;

fn real_main() -> Result<(), AnyError> {
    let start = Instant::now();
    let args = Args::parse();
    let device = args.run.device;
    check_device(device)?;
    let variant = detect(&args.path)?;
    let ml = MovieLens::load(variant, &args.path)?;
    println!(
        "{}: {} ratings, {} users, {} movies (loaded in {:.1}s); device {}",
        ml.name(),
        ml.ratings().len(),
        ml.users().len(),
        ml.movies().len(),
        start.elapsed().as_secs_f64(),
        device
    );
    let out = with_backend!(device, |B, device| transfer::run::<B>(&args, &ml, device))??;

    report::print_summary(&out);
    let table = report::table(&out);
    println!("\n== transfer table ({})\n{table}", ml.name());
    let seconds = start.elapsed().as_secs_f64();
    println!("total wall time {seconds:.0}s");

    let rows = serde_json::to_value(&out.rows)?;
    if let Some(path) = &args.out {
        let file = report::out_file(&args, ml.name(), &out, &rows, seconds);
        write_json_atomic(path, &file)?;
        println!("wrote {}", path.display());
    }
    println!("{}", json!({ "rows": rows }));
    Ok(())
}

fn main() -> ExitCode {
    alloc::keep_freed_memory();
    peterrec_experiments::exit_code(real_main())
}
