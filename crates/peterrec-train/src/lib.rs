//! Training support for peterrec: evaluation metrics, crash-safe checkpoints, a JSON-lines
//! metrics log with early stopping, per-epoch progress bars, and run-time backend choice.
//!
//! This half of the crate is independent of the model:
//!
//! * [`metrics`] — full-ranking and sampled (99 negatives) HR@k / NDCG@k / MRR@k, with ties
//!   counted against the positive; accuracy, macro-F1, confusion counts and the majority-class
//!   baseline.
//! * [`checkpoint`] — atomic file writes and a [`CheckpointDir`] with `best` and `last`.
//! * [`log`] — [`MetricsLog`] (one JSON object per line) and [`EarlyStopping`].
//! * [`progress`] — an indicatif bar per epoch ([`EpochProgress`]), hidden off-terminal.
//! * [`device`] — [`DeviceChoice`] (`cpu`, `cuda`, `cuda:N`), a panic-free CUDA probe, backend
//!   aliases and [`with_backend!`] to run generic code on the chosen backend.
//! * [`serve`] — [`TaskServer`]: one backbone, many task files, batched requests that share
//!   the frozen computation.
//! * [`error`] — [`TrainError`].
//!
//! Features: `cuda` adds Burn's CUDA backend (no CUDA toolkit needed to build; the driver is
//! loaded at run time).

pub mod checkpoint;
pub mod device;
pub mod error;
pub mod evaluate;
pub mod log;
pub mod loops;
pub mod metrics;
pub mod progress;
pub mod resume;
pub mod schedule;
pub mod serve;

pub use checkpoint::{
    clean_stale_temp_files, write_atomic, write_atomic_with, Checkpoint, CheckpointDir,
    CheckpointWriter,
};
pub use device::FLEX_COMPILED;
pub use device::{
    check_device, cpu_device, cuda_available, run_on, BackendTask, Cpu, CpuAutodiff, DeviceChoice,
    ParseDeviceError,
};
#[cfg(feature = "cuda")]
pub use device::{cuda_device, Gpu, GpuAutodiff};
#[cfg(feature = "flex")]
pub use device::{flex_device, FlexAutodiff, FlexCpu};
pub use error::{Result, TrainError};
pub use evaluate::{
    evaluate_next_item, evaluate_task, RankingOptions, RankingReport, TaskEvaluation,
};
pub use log::{Decision, EarlyStopping, MetricsLog, Mode};
pub use loops::{
    check_lengths, finetune, pretrain, EpochRecord, FineTuneLoss, FineTuneReport,
    FineTuneTrainConfig, PretrainConfig, PretrainReport, TrainConfig,
};
pub use metrics::{ClassificationReport, ConfusionMatrix, RankingMeans, RankingMetrics};
pub use progress::{EpochProgress, EpochStats};
pub use schedule::LrSchedule;
pub use serve::{Answer, BatchStats, Query, Request, TaskServer};

#[cfg(test)]
pub(crate) mod test_util {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    static COUNTER: AtomicU64 = AtomicU64::new(0);

    /// A fresh directory under the system temp dir, removed on drop.
    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> Self {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!(
                "peterrec-train-test-{}-{n}-{tag}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
