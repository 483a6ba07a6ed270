//! Times single steps, for side-by-side runs with the PyTorch port (`nextitnet_torch.py`;
//! `scripts/cpu-side-by-side.sh` runs both).
//!
//! ```text
//! cargo run --release -p peterrec-experiments --bin bench_step -- --shape a --mode finetune --strategy peterrec-serial --steps 20
//! cargo run --release -p peterrec-experiments --features flex --bin bench_step -- --shape a --mode pretrain --device flex
//! ```
//! Runs `--warmup` untimed steps, then `--steps` timed ones, and ends with one JSON line
//! `{"shape":..,"mode":..,"strategy":..,"ms_per_step_median":..,"seqs_per_sec":..,"peak_rss_mib":..}`.

use std::time::Instant;

use clap::Parser;
use peterrec_experiments::alloc;
use peterrec_experiments::bench::{proc_status_mib, FineTuneStep, InferStep, PretrainStep, Shape};
use peterrec_experiments::cli::DeviceArgs;
use peterrec_model::Strategy;
use peterrec_train::with_backend;

// mimalloc, keeping freed memory (faster steps; see the module).
peterrec_experiments::global_mimalloc!();

/// Command-line options.
#[derive(Parser, Debug)]
#[command(about = "Time pretraining, fine-tuning or inference steps at benchmark shape A or B")]
struct Args {
    /// Shape: `a` (V=10k, C=64, L=20, B=32) or `b` (V=50k, C=256, L=50, B=128).
    #[arg(long, default_value = "a")]
    shape: String,
    /// `pretrain`, `finetune` or `infer`.
    #[arg(long, default_value = "pretrain", value_parser = ["pretrain", "finetune", "infer"])]
    mode: String,
    /// Fine-tuning strategy (`peterrec-serial`, `peterrec-parallel`, `fineall`, `finecls`, `finelast-1`).
    #[arg(long, default_value = "peterrec-serial")]
    strategy: String,
    /// Sampled-softmax negatives for `pretrain` (0: full softmax).
    #[arg(long, default_value_t = 0)]
    sampled: usize,
    /// `pretrain` with the op-by-op softmax cross-entropy instead of the fused one.
    #[arg(long)]
    unfused: bool,
    /// Users per inference query (default: the shape's batch).
    #[arg(long)]
    users: Option<usize>,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    // --device.
    #[command(flatten)]
    device: DeviceArgs,
}

/// Peak resident memory of this process in MiB (Linux `VmHWM`), or 0 where unknown.
fn peak_rss_mib() -> f64 {
    proc_status_mib("VmHWM")
}

fn time_steps(warmup: usize, steps: usize, mut step: impl FnMut()) -> Vec<f64> {
    for _ in 0..warmup {
        step();
    }
    (0..steps.max(1))
        .map(|_| {
            let t = Instant::now();
            step();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect()
}

/// Times `args.steps` steps of the chosen mode on backend `B`; returns the times in
/// milliseconds and the sequences of one step.
fn run<B: burn::tensor::backend::AutodiffBackend>(
    a: &Args,
    s: Shape,
    device: B::Device,
) -> (Vec<f64>, usize) {
    match a.mode.as_str() {
        "pretrain" => {
            let sampled = (a.sampled > 0).then_some(a.sampled);
            let mut step = PretrainStep::<B>::new(s, sampled, &device);
            if a.unfused {
                step = step.with_unfused_loss();
            }
            (
                time_steps(a.warmup, a.steps, || {
                    step.run(&device);
                }),
                s.batch,
            )
        }
        "finetune" => {
            let strategy: Strategy = a.strategy.parse().expect("strategy checked in main");
            let mut step = FineTuneStep::<B>::new(s, strategy, &device);
            (
                time_steps(a.warmup, a.steps, || {
                    step.run(&device);
                }),
                s.batch,
            )
        }
        _ => {
            let users = a.users.unwrap_or(s.batch).clamp(1, s.batch);
            let mut step = InferStep::<B::InnerBackend>::new(s, users, &device);
            (
                time_steps(a.warmup, a.steps, || {
                    step.run(&device);
                }),
                users,
            )
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    alloc::keep_freed_memory();
    let args = Args::parse();
    let shape = Shape::parse(&args.shape)
        .ok_or_else(|| format!("unknown shape `{}` (a or b)", args.shape))?;
    let strategy: Strategy = args.strategy.parse()?;
    let device = args.device.device;
    let (mode, steps) = (args.mode.clone(), args.steps);
    let head = match (args.mode.as_str(), args.sampled, args.unfused) {
        ("pretrain", 0, false) => "full-softmax-fused".to_string(),
        ("pretrain", 0, true) => "full-softmax-unfused".to_string(),
        ("pretrain", n, _) => format!("sampled-softmax-{n}"),
        _ => String::new(),
    };
    let (mut times, seqs) = with_backend!(device, |B, device| run::<B>(&args, shape, device))?;
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    eprintln!(
        "{mode} shape {}: {steps} steps, median {median:.2} ms",
        shape.name
    );
    println!(
        "{}",
        serde_json::json!({
            "shape": shape.name,
            "mode": mode,
            "strategy": if mode == "finetune" { strategy.to_string() } else { String::new() },
            "head": head,
            "ms_per_step_median": median,
            "seqs_per_sec": seqs as f64 / (median / 1e3),
            "peak_rss_mib": peak_rss_mib(),
            "device": device.to_string(),
        })
    );
    Ok(())
}
