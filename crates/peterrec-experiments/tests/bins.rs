//! The experiment binaries run with their documented flags and end with their JSON line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The programs' default device: Flex when built with the `flex` feature (a default one).
const DEFAULT_DEVICE: &str = if cfg!(feature = "flex") {
    "flex"
} else {
    "cpu"
};

fn run(bin: &str, args: &[&str]) -> Output {
    let exe = match bin {
        "bench_step" => env!("CARGO_BIN_EXE_bench_step"),
        "movielens" => env!("CARGO_BIN_EXE_movielens"),
        "peterrec_csv" => env!("CARGO_BIN_EXE_peterrec_csv"),
        "plot_curve" => env!("CARGO_BIN_EXE_plot_curve"),
        other => panic!("no binary {other}"),
    };
    Command::new(exe)
        .args(args)
        .output()
        .expect("the binary starts")
}

/// The last stdout line, which every binary writes as one JSON object.
fn last_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().expect("some output");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("peterrec-bins-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn bench_step_times_an_inference_step() {
    let args = [
        "--shape", "a", "--mode", "infer", "--warmup", "0", "--steps", "2",
    ];
    let j = last_json(&run("bench_step", &args));
    assert_eq!(j["shape"], "a");
    assert_eq!(j["mode"], "infer");
    assert_eq!(j["device"], DEFAULT_DEVICE);
    assert_eq!(j["strategy"], "");
    assert!(j["ms_per_step_median"].as_f64().unwrap() > 0.0);
    assert!(j["seqs_per_sec"].as_f64().unwrap() > 0.0);
}

#[test]
fn bench_step_rejects_an_unknown_shape_or_device() {
    let out = run("bench_step", &["--shape", "c"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown shape `c`"));
    assert!(!run("bench_step", &["--device", "tpu"]).status.success());
}

#[test]
fn movielens_names_the_files_it_looks_for() {
    let dir = scratch("movielens");
    let out = run("movielens", &["--path", dir.to_str().unwrap(), "--quiet"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("neither ratings.dat (ML-1M) nor u.data (ML-100K)"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `users` pretraining lines and fine-tuning lines over items 1..=12, targets 100..=103.
fn write_peterrec_files(dir: &Path, users: usize) -> (PathBuf, PathBuf) {
    let (mut pre, mut fine) = (String::new(), String::new());
    for u in 0..users {
        let seq: Vec<String> = (0..6).map(|k| ((u + k * 5) % 12 + 1).to_string()).collect();
        pre.push_str(&format!("0,0,{}\n", seq.join(",")));
        let targets = [100 + u % 4, 100 + (u + 1) % 4];
        fine.push_str(&format!(
            "{},,{},{}\n",
            seq.join(","),
            targets[0],
            targets[1]
        ));
    }
    let (p, f) = (dir.join("pretrain.csv"), dir.join("finetune.csv"));
    std::fs::write(&p, pre).unwrap();
    std::fs::write(&f, fine).unwrap();
    (p, f)
}

#[test]
fn peterrec_csv_pretrains_fine_tunes_and_saves() {
    let dir = scratch("csv");
    let (pre, fine) = write_peterrec_files(&dir, 40);
    let out_dir = dir.join("out");
    let args = [
        "--pretrain",
        pre.to_str().unwrap(),
        "--finetune",
        fine.to_str().unwrap(),
        "--epochs",
        "1",
        "--finetune-epochs",
        "1",
        "--channels",
        "8",
        "--dilations",
        "1,2",
        "--max-len",
        "8",
        "--seed",
        "3",
        "--quiet",
        "--out-dir",
        out_dir.to_str().unwrap(),
    ];
    let j = last_json(&run("peterrec_csv", &args));
    assert_eq!(j["strategy"], "peterrec-serial");
    assert_eq!(j["targets"], 4);
    assert_eq!(j["config"]["seed"], 3);
    assert_eq!(j["config"]["device"], DEFAULT_DEVICE);
    assert!(j["trainable_params"].as_u64().unwrap() < j["total_params"].as_u64().unwrap());
    for file in ["backbone.safetensors", "task.safetensors", "vocab.json"] {
        assert!(out_dir.join(file).is_file(), "{file}");
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report, j);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn plot_curve_draws_the_logged_runs() {
    let font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    if !Path::new(font).is_file() {
        eprintln!("{font} missing: skipped");
        return;
    }
    let dir = scratch("plot");
    let log = dir.join("run.jsonl");
    // Epoch 2 is logged twice (a resumed run); the later record counts.
    let lines = [
        (1, 0.10, 3.0),
        (2, 0.15, 6.0),
        (2, 0.20, 7.0),
        (3, 0.18, 9.5),
    ]
    .map(|(e, v, t)| {
        format!(
            r#"{{"record":{{"epoch":{e},"valid_metric":{v},"metric":"ndcg@10","elapsed":{t}}}}}"#
        )
    })
    .join("\n");
    std::fs::write(&log, lines).unwrap();
    let png = dir.join("curve.png");
    let spec = format!("a run={}", log.display());
    let args = [
        "--log",
        &spec,
        "--out",
        png.to_str().unwrap(),
        "--x",
        "epoch",
    ];
    let j = last_json(&run("plot_curve", &args));
    let runs = j["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["label"], "a run");
    assert_eq!(runs[0]["metric"], "ndcg@10");
    assert_eq!(
        runs[0]["points"],
        serde_json::json!([[1.0, 0.1], [2.0, 0.2], [3.0, 0.18]])
    );
    assert_eq!(runs[0]["best"], 0.2);
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    std::fs::remove_dir_all(&dir).unwrap();
}
