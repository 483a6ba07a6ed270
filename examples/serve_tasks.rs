//! Many tasks, one backbone: pretrain NextItNet on MovieLens, fine-tune three user-profile tasks,
//! save them, then reload everything in a fresh process and answer queries.
//!
//! ```text
//! cargo run --release --example serve_tasks -- --path $PETERREC_DATA/ml-1m
//! cargo run --release --example serve_tasks -- --memory-paper-shape
//! ```
//!
//! The first command pretrains a backbone (or loads `--backbone FILE`), fine-tunes gender and
//! age with PeterRec (serial patches) and occupation with FineCLS, writes the backbone, the
//! three task files and held-out test queries to `--dir`, and starts this program again with
//! `--serve`: that fresh process opens a [`TaskServer`] on the files alone and answers the
//! queries one at a time and as one mixed batch. It ends with one JSON line: per task its
//! strategy, task-file size, median single-request latency and test accuracy; the mixed batch's
//! latency and how much of it went through the shared frozen pass; and the resident memory
//! before and after loading the tasks.
//!
//! `--memory-paper-shape` measures memory at the paper's shape instead (V = 50,000, C = 256,
//! blocks [1,4]×4): a fresh process opens the backbone file, then loads ten PeterRec task files
//! onto it, and reports its resident memory after each (`docs/serving.md`).

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use burn::module::AutodiffModule;
use clap::Parser;
use peterrec::data::movielens::{MovieLens, ProfileAttribute};
use peterrec::data::split::{leave_one_out, SplitConfig};
use peterrec::data::task::profile::{profile_task, ProfileTaskConfig};
use peterrec::model::{
    load_pretrained, save_backbone, FineTuneConfig, HeadKind, Insertion, NextItNetConfig,
    PatchInit, Strategy,
};
use peterrec::serve::{Query, Request, TaskServer};
use peterrec::train::{
    finetune, pretrain, Cpu, CpuAutodiff, FineTuneLoss, FineTuneTrainConfig, LrSchedule,
    PretrainConfig, TrainConfig,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

type AnyError = Box<dyn Error>;

#[derive(Parser, Debug)]
#[command(
    about = "Fine-tune three ML tasks on one backbone, reload them in a fresh process, serve"
)]
struct Args {
    /// MovieLens directory (ml-1m or ml-100k); defaults to $PETERREC_DATA/ml-1m.
    #[arg(long)]
    path: Option<PathBuf>,
    /// Where the backbone, task files and queries go (default: a directory under the temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Load this pretrained file (written by `movielens --backbone-dir` or `save_pretrained`)
    /// instead of pretraining.
    #[arg(long)]
    backbone: Option<PathBuf>,
    /// Pretraining epochs.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Fine-tuning epochs per task.
    #[arg(long, default_value_t = 3)]
    finetune_epochs: usize,
    /// Channels C.
    #[arg(long, default_value_t = 64)]
    channels: usize,
    /// Block dilations.
    #[arg(long, default_value = "1,4,1,4", value_delimiter = ',')]
    dilations: Vec<usize>,
    /// Most recent items per user, in pretraining, fine-tuning and serving.
    #[arg(long, default_value_t = 50)]
    max_len: usize,
    /// Test queries per task.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    /// (Internal) serve the files in `--dir`: what the fresh process runs.
    #[arg(long)]
    serve: bool,
    /// Measure the memory of one backbone and ten tasks at the paper's shape.
    #[arg(long)]
    memory_paper_shape: bool,
    /// (Internal) the fresh process of `--memory-paper-shape`.
    #[arg(long)]
    memory_child: bool,
}

/// What the serving process is given besides the model files.
#[derive(Serialize, Deserialize)]
struct Manifest {
    max_len: usize,
    tasks: Vec<TaskEntry>,
}

#[derive(Serialize, Deserialize)]
struct TaskEntry {
    name: String,
    strategy: String,
    file: String,
    /// Held-out test users: history and true class.
    queries: Vec<(Vec<u32>, u32)>,
}

/// Current resident memory of this process in MiB (Linux `VmRSS`), or 0 where unknown.
fn rss_mib() -> f64 {
    peterrec_experiments::bench::proc_status_mib("VmRSS")
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs this program again with `args`, and fails if it fails.
fn fresh_process(args: &[&str]) -> Result<(), AnyError> {
    let status = Command::new(std::env::current_exe()?).args(args).status()?;
    if !status.success() {
        return Err(format!("the serving process failed: {status}").into());
    }
    Ok(())
}

fn train(args: &Args, dir: &Path) -> Result<(), AnyError> {
    let path = match &args.path {
        Some(p) => p.clone(),
        None => std::env::var_os("PETERREC_DATA")
            .map(|d| PathBuf::from(d).join("ml-1m"))
            .ok_or("give --path to a MovieLens directory, or set PETERREC_DATA")?,
    };
    let start = Instant::now();
    let variant = if path.join("ratings.dat").is_file() {
        peterrec::data::movielens::Variant::Ml1m
    } else {
        peterrec::data::movielens::Variant::Ml100k
    };
    let ml = MovieLens::load(variant, &path)?;
    let (vocab, sequences) = ml.pretraining(1);
    let device = Default::default();
    let train_cfg = |epochs: usize, lr: f64| {
        TrainConfig::new()
            .with_epochs(epochs)
            .with_lr(lr)
            .with_lr_schedule(LrSchedule::Constant)
            .with_max_len(args.max_len)
            .with_seed(args.seed)
            .with_quiet(args.quiet)
    };

    // 1. The backbone: loaded, or pretrained on every user's sequence.
    let lm = match &args.backbone {
        Some(file) => {
            let lm = load_pretrained::<CpuAutodiff>(file, &device)?;
            let config = lm.backbone.config().clone();
            if config.num_tokens != vocab.len() {
                return Err(format!(
                    "{}: {} tokens, but this data set's vocabulary has {}",
                    file.display(),
                    config.num_tokens,
                    vocab.len()
                )
                .into());
            }
            println!("loaded the backbone from {}", file.display());
            lm
        }
        None => {
            let config = NextItNetConfig::new(vocab.len(), args.channels, args.dilations.clone())
                .with_seed(args.seed);
            let split = leave_one_out(&sequences);
            let cfg = PretrainConfig::new()
                .with_train(train_cfg(args.epochs, 2e-3))
                .with_windows(false);
            let lm = config.init_lm::<CpuAutodiff>(&device)?;
            let (lm, report) = pretrain(lm, &split.train, &split.valid, &cfg, &device)?;
            println!(
                "pretrained {} epochs in {:.0}s: validation NDCG@10 {:.4}",
                report.epochs,
                report.seconds,
                report.valid.full.ndcg_at(10).unwrap_or(0.0)
            );
            lm
        }
    };
    let backbone = lm.backbone.valid();
    save_backbone(&backbone, dir.join("backbone.safetensors"))?;

    // 2. Three tasks on it, each saved as a task file.
    let mut manifest = Manifest {
        max_len: args.max_len,
        tasks: Vec::new(),
    };
    let plan = [
        (
            ProfileAttribute::Gender,
            Strategy::PeterRec {
                insertion: Insertion::Serial,
            },
        ),
        (
            ProfileAttribute::Age,
            Strategy::PeterRec {
                insertion: Insertion::Serial,
            },
        ),
        (ProfileAttribute::Occupation, Strategy::FineCls),
    ];
    for (attribute, strategy) in plan {
        let cfg = ProfileTaskConfig {
            split: SplitConfig::fractions(0.7, 0.1, args.seed),
            ..ProfileTaskConfig::default()
        };
        let (task, _) = profile_task(&ml, attribute, &vocab, &cfg)?;
        let model = FineTuneConfig::new(
            strategy,
            HeadKind::Classifier {
                outputs: task.num_outputs(),
            },
        )
        .init(lm.backbone.clone(), &device)?;
        let ft = FineTuneTrainConfig::new()
            .with_train(train_cfg(args.finetune_epochs, 5e-3))
            .with_loss(FineTuneLoss::Softmax);
        let (model, report) = finetune(model, &task, &ft, &device)?;
        let name = attribute.name().to_string();
        let file = format!("{name}.safetensors");
        model.save_task(dir.join(&file))?;
        println!(
            "fine-tuned {name} with {strategy}: test {} {:.4}",
            report.test.headline_name(),
            report.test.headline()
        );
        manifest.tasks.push(TaskEntry {
            name,
            strategy: strategy.to_string(),
            file,
            queries: task
                .test
                .iter()
                .take(args.queries)
                .map(|e| (e.seq.clone(), e.label))
                .collect(),
        });
    }
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec(&manifest)?)?;
    println!(
        "trained and saved in {:.0}s; serving from a fresh process",
        start.elapsed().as_secs_f64()
    );
    let dir = dir.to_string_lossy().into_owned();
    fresh_process(&["--serve", "--dir", &dir])
}

fn serve(dir: &Path) -> Result<(), AnyError> {
    let device = Default::default();
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(dir.join("manifest.json"))?)?;
    let rss_start = rss_mib();
    let t = Instant::now();
    let mut server =
        TaskServer::<Cpu>::open(dir.join("backbone.safetensors"), manifest.max_len, device)?;
    let rss_backbone = rss_mib();
    for task in &manifest.tasks {
        server.load_task(&task.name, dir.join(&task.file))?;
    }
    let load_seconds = t.elapsed().as_secs_f64();
    let rss_tasks = rss_mib();

    let mut rows = Vec::new();
    let mut mixed = Vec::new();
    for task in &manifest.tasks {
        let mut latencies = Vec::new();
        let mut correct = 0;
        let mut requests = Vec::new();
        for (history, label) in &task.queries {
            let t = Instant::now();
            let p = server.classify(history, &task.name)?;
            latencies.push(t.elapsed().as_secs_f64() * 1e3);
            let best = (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b]).then(b.cmp(&a)));
            correct += usize::from(best == Some(*label as usize));
            requests.push(Request {
                task: task.name.clone(),
                history: history.clone(),
                query: Query::Classify,
            });
        }
        mixed.push(requests);
        let bytes = std::fs::metadata(dir.join(&task.file))?.len();
        rows.push(json!({
            "task": task.name,
            "strategy": task.strategy,
            "task_file_bytes": bytes,
            "queries": task.queries.len(),
            "single_ms_median": median(latencies),
            "accuracy": correct as f64 / task.queries.len().max(1) as f64,
        }));
    }
    // The same queries as one mixed batch, users interleaved across tasks.
    let longest = mixed.iter().map(Vec::len).max().unwrap_or(0);
    let interleaved: Vec<Request> = (0..longest)
        .flat_map(|i| mixed.iter().filter_map(move |m| m.get(i).cloned()))
        .collect();
    let t = Instant::now();
    let (answers, stats) = server.answer_with_stats(&interleaved)?;
    let batch_ms = t.elapsed().as_secs_f64() * 1e3;
    let backbone_bytes = std::fs::metadata(dir.join("backbone.safetensors"))?.len();
    println!(
        "{}",
        json!({
            "tasks": rows,
            "batch": {
                "requests": answers.len(),
                "ms": batch_ms,
                "shared_rows": stats.shared_rows,
                "shared_blocks": stats.shared_blocks,
                "task_runs": stats.task_runs,
            },
            "backbone_file_bytes": backbone_bytes,
            "load_seconds": load_seconds,
            "rss_mib_start": rss_start,
            "rss_mib_backbone": rss_backbone,
            "rss_mib_with_tasks": rss_tasks,
            "rss_mib_end": rss_mib(),
        })
    );
    Ok(())
}

const PAPER_TASKS: usize = 10;

fn paper_config() -> NextItNetConfig {
    NextItNetConfig::new(50_000, 256, vec![1, 4, 1, 4, 1, 4, 1, 4])
}

/// Writes a paper-shape backbone and ten PeterRec task files, then measures a fresh process.
fn memory_paper_shape(dir: &Path) -> Result<(), AnyError> {
    let device = Default::default();
    let config = paper_config();
    let backbone = config.try_init::<Cpu>(&device)?;
    save_backbone(&backbone, dir.join("backbone.safetensors"))?;
    for i in 0..PAPER_TASKS {
        // Patches away from zero so that nothing about them is trivial.
        let task = FineTuneConfig::new(
            Strategy::PeterRec {
                insertion: Insertion::Serial,
            },
            HeadKind::Classifier { outputs: 2 },
        )
        .with_patch_init(PatchInit::TruncatedNormal { std: 0.02 })
        .with_seed(i as u64 + 1)
        .init(backbone.clone(), &device)?;
        task.save_task(dir.join(format!("task-{i}.safetensors")))?;
    }
    drop(backbone);
    let dir = dir.to_string_lossy().into_owned();
    fresh_process(&["--memory-child", "--dir", &dir])
}

fn memory_child(dir: &Path) -> Result<(), AnyError> {
    let device = Default::default();
    let rss_start = rss_mib();
    let mut server = TaskServer::<Cpu>::open(dir.join("backbone.safetensors"), 50, device)?;
    let rss_backbone = rss_mib();
    let mut after_each = Vec::new();
    for i in 0..PAPER_TASKS {
        server.load_task(
            format!("task-{i}"),
            dir.join(format!("task-{i}.safetensors")),
        )?;
        after_each.push(rss_mib());
    }
    let history: Vec<u32> = (4..54).collect();
    for i in 0..PAPER_TASKS {
        server.classify(&history, &format!("task-{i}"))?;
    }
    let rss_served = rss_mib();
    let backbone_mib = rss_backbone - rss_start;
    let tasks_mib = after_each.last().copied().unwrap_or(rss_backbone) - rss_start;
    let task_file_bytes = std::fs::metadata(dir.join("task-0.safetensors"))?.len();
    let backbone_file_bytes = std::fs::metadata(dir.join("backbone.safetensors"))?.len();
    println!(
        "{}",
        json!({
            "shape": "V=50000 C=256 blocks [1,4]x4",
            "tasks": PAPER_TASKS,
            "backbone_file_bytes": backbone_file_bytes,
            "task_file_bytes": task_file_bytes,
            "rss_mib_start": rss_start,
            "rss_mib_backbone": rss_backbone,
            "rss_mib_after_each_task": after_each,
            "rss_mib_after_serving": rss_served,
            "backbone_mib": backbone_mib,
            "backbone_and_tasks_mib": tasks_mib,
            "ratio": tasks_mib / backbone_mib,
        })
    );
    Ok(())
}

fn real_main() -> Result<(), AnyError> {
    let args = Args::parse();
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("peterrec-serve-tasks-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir)?;
    if args.serve {
        serve(&dir)
    } else if args.memory_child {
        memory_child(&dir)
    } else if args.memory_paper_shape {
        memory_paper_shape(&dir)
    } else {
        train(&args, &dir)
    }
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
