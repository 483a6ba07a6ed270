//! The measurements of the `serve_tasks` example: a fresh process that opens a
//! [`TaskServer`] on saved files and times its answers, and the memory of one backbone with ten
//! task files at the paper's shape (`docs/serving.md`).

use std::error::Error;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use peterrec_model::{
    save_backbone, FineTuneConfig, HeadKind, Insertion, NextItNetConfig, PatchInit, Strategy,
};
use peterrec_serve::{Query, Request, TaskServer};
use peterrec_train::Cpu;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::bench::proc_status_mib;

/// The error of these measurements: any failure, reported as text by the example.
pub type AnyError = Box<dyn Error>;

/// The file in a serving directory that lists the tasks and their test queries.
pub const MANIFEST: &str = "manifest.json";
/// The backbone's file in a serving directory.
pub const BACKBONE: &str = "backbone.safetensors";

/// What the serving process is given besides the model files.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// Most recent items of a history that the server reads.
    pub max_len: usize,
    /// The tasks saved beside the backbone.
    pub tasks: Vec<TaskEntry>,
}

/// One saved task of a [`Manifest`].
#[derive(Debug, Serialize, Deserialize)]
pub struct TaskEntry {
    /// The name the server knows the task by.
    pub name: String,
    /// The strategy that trained it, as printed.
    pub strategy: String,
    /// Its task file, relative to the directory.
    pub file: String,
    /// Held-out test users: history and true class.
    pub queries: Vec<(Vec<u32>, u32)>,
}

impl Manifest {
    /// Writes the manifest into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), AnyError> {
        std::fs::write(dir.join(MANIFEST), serde_json::to_vec(self)?)?;
        Ok(())
    }

    /// Reads the manifest of `dir`.
    pub fn load(dir: &Path) -> Result<Self, AnyError> {
        Ok(serde_json::from_slice(&std::fs::read(dir.join(MANIFEST))?)?)
    }
}

/// Current resident memory of this process in MiB (Linux `VmRSS`), or 0 where unknown.
pub fn rss_mib() -> f64 {
    proc_status_mib("VmRSS")
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs the current program again with `args`, and fails if it fails.
pub fn fresh_process(args: &[&str]) -> Result<(), AnyError> {
    let status = Command::new(std::env::current_exe()?).args(args).status()?;
    if !status.success() {
        return Err(format!("the serving process failed: {status}").into());
    }
    Ok(())
}

/// Opens a [`TaskServer`] on the backbone and tasks of `dir` (see [`Manifest`]), answers every
/// test query one at a time and then all of them as one mixed batch, and returns per task its
/// task-file size, median single-request latency and accuracy, the batch's latency and sharing,
/// and the resident memory before and after loading.
pub fn serve_dir(dir: &Path) -> Result<Value, AnyError> {
    let manifest = Manifest::load(dir)?;
    let rss_start = rss_mib();
    let t = Instant::now();
    let mut server =
        TaskServer::<Cpu>::open(dir.join(BACKBONE), manifest.max_len, Default::default())?;
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
        rows.push(json!({
            "task": task.name,
            "strategy": task.strategy,
            "task_file_bytes": std::fs::metadata(dir.join(&task.file))?.len(),
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
    Ok(json!({
        "tasks": rows,
        "batch": {
            "requests": answers.len(),
            "ms": batch_ms,
            "shared_rows": stats.shared_rows,
            "shared_blocks": stats.shared_blocks,
            "task_runs": stats.task_runs,
        },
        "backbone_file_bytes": std::fs::metadata(dir.join(BACKBONE))?.len(),
        "load_seconds": load_seconds,
        "rss_mib_start": rss_start,
        "rss_mib_backbone": rss_backbone,
        "rss_mib_with_tasks": rss_tasks,
        "rss_mib_end": rss_mib(),
    }))
}

/// How many task files the paper-shape measurement loads.
pub const PAPER_TASKS: usize = 10;

/// The paper's backbone: V = 50,000, C = 256, blocks `[1,4]×4`.
pub fn paper_config() -> NextItNetConfig {
    NextItNetConfig::new(50_000, 256, vec![1, 4, 1, 4, 1, 4, 1, 4])
}

/// Writes a paper-shape backbone and [`PAPER_TASKS`] PeterRec (serial) task files into `dir`.
pub fn write_paper_shape(dir: &Path) -> Result<(), AnyError> {
    let device = Default::default();
    let backbone = paper_config().try_init::<Cpu>(&device)?;
    save_backbone(&backbone, dir.join(BACKBONE))?;
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
    Ok(())
}

/// Opens the files of [`write_paper_shape`], loading the tasks one by one and answering one
/// query per task, and returns the resident memory after each step.
pub fn measure_paper_shape(dir: &Path) -> Result<Value, AnyError> {
    let rss_start = rss_mib();
    let mut server = TaskServer::<Cpu>::open(dir.join(BACKBONE), 50, Default::default())?;
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
    Ok(json!({
        "shape": "V=50000 C=256 blocks [1,4]x4",
        "tasks": PAPER_TASKS,
        "backbone_file_bytes": std::fs::metadata(dir.join(BACKBONE))?.len(),
        "task_file_bytes": std::fs::metadata(dir.join("task-0.safetensors"))?.len(),
        "rss_mib_start": rss_start,
        "rss_mib_backbone": rss_backbone,
        "rss_mib_after_each_task": after_each,
        "rss_mib_after_serving": rss_served,
        "backbone_mib": backbone_mib,
        "backbone_and_tasks_mib": tasks_mib,
        "ratio": tasks_mib / backbone_mib,
    }))
}
