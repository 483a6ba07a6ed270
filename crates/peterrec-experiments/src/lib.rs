//! # peterrec-experiments
//!
//! The experiment programs of peterrec, kept out of the published crates and of `examples/`:
//! - `movielens`: the transfer table (every fine-tuning strategy on the MovieLens profile and
//!   cold-start tasks, with baselines; `docs/results.md`);
//! - `peterrec_csv`: pretraining and fine-tuning on files in the original PeterRec CSV format;
//! - `bench_step`: timed single steps at the benchmark shapes, for side-by-side runs with the
//!   PyTorch port (`scripts/cpu-side-by-side.sh`, `docs/benchmarks.md`);
//! - `plot_curve`: learning curves from the training programs' metrics logs, as a PNG;
//! - `findings`: the paper's findings on MovieLens: every strategy at label budgets from 1% to
//!   100% of the training users, and convergence curves with early stopping off
//!   (`docs/results.md`).
//!
//! Run them with `cargo run --release -p peterrec-experiments --bin NAME -- ...` (Flex, the
//! default feature, is the default device; add `--features cuda` for CUDA). This library holds what they and
//! the root crate's criterion benches share, and the serving measurements of the `serve_tasks`
//! example.

#![warn(missing_docs)]

pub mod alloc;
pub mod baselines;
pub mod bench;
pub mod budget;
pub mod cli;
pub mod plot;
pub mod serving;
pub mod stats;
pub mod tasks;

/// Runs a program's fallible body and turns its result into the exit code: the error, if any,
/// goes to stderr as `error: ...` and the program exits with failure.
pub fn exit_code(result: Result<(), Box<dyn std::error::Error>>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
