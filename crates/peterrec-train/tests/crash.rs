//! Crash safety under SIGKILL.
//!
//! The test re-executes its own binary as a child process (selected by an environment variable)
//! that saves checkpoints in a loop exactly as training does: an epoch directory in a
//! [`CheckpointDir`] (a backbone file written with `save_backbone`, a `state.json`, `last`,
//! `best`, pruning, and every epoch committed twice so that replacing a committed epoch is
//! exercised too), plus a standalone backbone file (the trainer's `--checkpoint`) and a
//! vocabulary, each rewritten atomically. The parent kills the child with SIGKILL at random
//! moments, at least 20 times, and after every kill checks that
//!
//! - opening the directory removes every temporary file an interrupted save left;
//! - the newest checkpoint loads, and its weights and state are exactly those of one saved
//!   state (never a mix, never a torn file); it is never older than before the kill;
//! - `best`, when present, is a state that was saved as best;
//! - the standalone backbone and the vocabulary load and are exactly one saved state each, and
//!   their temporary files never accumulate (at most the one the last kill left).
//!
//! `PETERREC_CRASH_KILLS` sets the number of kills (default 24), `PETERREC_CRASH_SEED` the seed
//! of the kill moments (default: from the clock, printed).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burn::backend::NdArray;
use peterrec_data::Vocab;
use peterrec_model::io::persist::{content_hash, load_backbone, save_backbone};
use peterrec_model::NextItNetConfig;
use peterrec_train::checkpoint::{CheckpointDir, TEMP_PREFIX};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type B = NdArray<f32>;

const CHILD_ENV: &str = "PETERREC_CRASH_CHILD_DIR";
const MODEL: &str = "model.safetensors";
const STATE: &str = "state.json";
const STANDALONE: &str = "best.safetensors";
const VOCAB: &str = "vocab.json";

/// The backbone configuration of saved state `version` (its seed is the version).
fn config(version: u64) -> NextItNetConfig {
    NextItNetConfig::new(40, 8, vec![1, 2, 4]).with_seed(version)
}

/// Each epoch is committed twice: versions `2(e-1)` and `2(e-1)+1` are epoch `e`.
fn epoch_of(version: u64) -> usize {
    (version / 2 + 1) as usize
}

/// Versions divisible by 3 are committed as best.
fn is_best(version: u64) -> bool {
    version.is_multiple_of(3)
}

fn vocab(version: u64) -> Vocab {
    let items: Vec<String> = (0..=version % 50)
        .map(|k| format!("item-{version}-{k}"))
        .collect();
    Vocab::from_sequences([items.iter().map(String::as_str)])
}

/// The child: saves states forever (until killed; it gives up after 60 s in case the parent
/// died). Not a test of its own: without the environment variable it returns at once.
#[test]
fn crash_writer_child() {
    let Some(root) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let root = PathBuf::from(root);
    let device = Default::default();
    let dir = CheckpointDir::open(root.join("run")).unwrap();
    let mut version = match dir.last().unwrap() {
        Some(last) => state_version(&last.file(STATE)) + 1,
        None => 0,
    };
    println!("ready");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let cfg = config(version);
        let backbone = cfg.init::<B>(&device);
        let writer = dir.begin(epoch_of(version)).unwrap();
        save_backbone(&backbone, writer.path(MODEL)).unwrap();
        writer
            .write_json(STATE, &serde_json::json!({ "version": version }))
            .unwrap();
        writer.commit(is_best(version)).unwrap();
        dir.prune(1).unwrap();
        save_backbone(&backbone, root.join(STANDALONE)).unwrap();
        vocab(version).save_json(root.join(VOCAB)).unwrap();
        println!("saved {version}");
        version += 1;
    }
    panic!("the crash test's writer was never killed");
}

fn state_version(path: &Path) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["version"].as_u64().unwrap()
}

/// Loads a backbone file and returns the version it holds, checking that its weights are
/// exactly those of that version.
fn backbone_version(path: &Path) -> u64 {
    let backbone = load_backbone::<B>(path, &Default::default())
        .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
    let cfg = backbone.config().clone();
    let version = cfg.seed;
    assert_eq!(cfg, config(version), "{}", path.display());
    let expected = config(version).init::<B>(&Default::default());
    assert_eq!(
        content_hash(&backbone),
        content_hash(&expected),
        "{}: weights are not those of version {version}",
        path.display()
    );
    version
}

/// Names in `dir` that start with `prefix`.
fn entries_with(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[derive(Default)]
struct Seen {
    last_version: Option<u64>,
    standalone: Option<u64>,
    vocab: Option<u64>,
}

/// Everything that must hold after a kill; updates `seen`. Returns how many temporary files
/// the kill left (before cleaning).
fn check_after_kill(root: &Path, seen: &mut Seen, kill: usize) -> usize {
    let run = root.join("run");
    let mut left = 0;
    if run.exists() {
        left += entries_with(&run, TEMP_PREFIX).len();
    }
    // Standalone files: at most the one temporary file the killed writer left, never more.
    for name in [STANDALONE, VOCAB] {
        let temps: Vec<String> = entries_with(root, TEMP_PREFIX)
            .into_iter()
            .filter(|n| n.ends_with(&format!("-{name}")))
            .collect();
        assert!(
            temps.len() <= 1,
            "kill {kill}: temporary files accumulate: {temps:?}"
        );
        left += temps.len();
    }

    let dir = CheckpointDir::open(&run).unwrap();
    assert!(
        entries_with(&run, TEMP_PREFIX).is_empty(),
        "kill {kill}: open() left temporary files"
    );
    match dir
        .last()
        .unwrap_or_else(|e| panic!("kill {kill}: last: {e}"))
    {
        Some(last) => {
            let version = state_version(&last.file(STATE));
            assert_eq!(backbone_version(&last.file(MODEL)), version, "kill {kill}");
            assert_eq!(epoch_of(version), last.epoch, "kill {kill}");
            if let Some(before) = seen.last_version {
                assert!(version >= before, "kill {kill}: checkpoint went back");
            }
            seen.last_version = Some(version);
        }
        None => assert!(seen.last_version.is_none(), "kill {kill}: checkpoint lost"),
    }
    if let Some(best) = dir
        .best()
        .unwrap_or_else(|e| panic!("kill {kill}: best: {e}"))
    {
        let version = state_version(&best.file(STATE));
        assert_eq!(backbone_version(&best.file(MODEL)), version, "kill {kill}");
        assert!(
            is_best(version),
            "kill {kill}: best holds version {version}"
        );
    }
    let standalone = root.join(STANDALONE);
    if standalone.exists() {
        let v = backbone_version(&standalone);
        assert!(
            v >= seen.standalone.unwrap_or(0),
            "kill {kill}: file went back"
        );
        seen.standalone = Some(v);
    } else {
        assert!(seen.standalone.is_none(), "kill {kill}: file lost");
    }
    let vocab_path = root.join(VOCAB);
    if vocab_path.exists() {
        let loaded = Vocab::load_json(&vocab_path)
            .unwrap_or_else(|e| panic!("kill {kill}: vocabulary does not load: {e}"));
        let v = (seen.vocab.unwrap_or(0)..=seen.standalone.unwrap_or(0) + 1)
            .find(|&v| vocab(v) == loaded)
            .unwrap_or_else(|| panic!("kill {kill}: vocabulary is no saved state"));
        seen.vocab = Some(v);
    } else {
        assert!(seen.vocab.is_none(), "kill {kill}: vocabulary lost");
    }
    left
}

#[test]
fn checkpoints_survive_sigkill_at_random_moments() {
    let kills: usize = std::env::var("PETERREC_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    let seed: u64 = std::env::var("PETERREC_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("PETERREC_CRASH_SEED={seed} PETERREC_CRASH_KILLS={kills}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let root = std::env::temp_dir().join(format!("peterrec-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let exe = std::env::current_exe().unwrap();

    let mut seen = Seen::default();
    let mut interrupted = 0;
    let mut delays = HashMap::new();
    for kill in 1..=kills {
        let mut child = Command::new(&exe)
            .args([
                "crash_writer_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the child has opened the directory, then let it save for a while.
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        while !line.contains("ready") {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "child died: {line}");
        }
        // Every third child is killed only after it has committed a state, so that the run
        // makes progress however slowly a loaded machine runs the children; the others die at
        // any moment, their first save included.
        if kill % 3 == 0 {
            while !line.starts_with("saved") {
                line.clear();
                assert!(out.read_line(&mut line).unwrap() > 0, "child died: {line}");
            }
        }
        let delay = rng.random_range(0..60u64);
        *delays.entry(delay / 20).or_insert(0) += 1;
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL on Unix: no destructor, no cleanup runs
        let status = child.wait().unwrap();
        assert!(!status.success(), "the child exited by itself: {status}");
        if check_after_kill(&root, &mut seen, kill) > 0 {
            interrupted += 1;
        }
    }
    let last = seen.last_version.expect("no checkpoint was ever committed");
    println!(
        "{kills} kills, {interrupted} left temporary files behind; newest state {last}; delays by 20 ms bucket {delays:?}"
    );
    // Every third child committed at least one state before it died.
    let floor = ((kills / 3) as u64).saturating_sub(1).min(5);
    assert!(last >= floor, "the writer made almost no progress ({last})");
    std::fs::remove_dir_all(&root).unwrap();
}
