//! Training for peterrec: the pretraining and fine-tuning loops, their configuration, evaluation
//! metrics, crash-safe checkpoints with exact resume, a JSON-lines metrics log with early
//! stopping, per-epoch progress bars, and run-time backend choice.
//!
//! * [`config`] — [`TrainConfig`], [`PretrainConfig`], [`FineTuneTrainConfig`]: Burn configs
//!   whose defaults are the measured ML-1M recipes.
//! * [`loops`] — [`pretrain`] and [`finetune`].
//! * [`eval`] — full-ranking and sampled (100 negatives, uniform or by popularity) HR@k /
//!   NDCG@k / MRR@k, with ties counted against the positive; accuracy, macro-F1, confusion counts
//!   and the majority-class baseline; [`evaluate_next_item`] and [`evaluate_task`] for trained
//!   models, and the model-free next-item baselines.
//! * [`checkpoint`] — atomic file writes, a [`CheckpointDir`] with `best` and `last`, and the
//!   saved loop state that resumes a run exactly.
//! * [`log`] — [`MetricsLog`] (one JSON object per line), [`EpochRecord`] and
//!   [`EarlyStopping`].
//! * [`progress`] — an indicatif bar per epoch ([`EpochProgress`]), hidden off-terminal.
//! * [`schedule`] — learning-rate schedules ([`LrSchedule`]).
//! * [`device`] — [`DeviceChoice`] (`cpu`, `flex`, `cuda`, `cuda:N`), a panic-free CUDA probe,
//!   backend aliases and [`with_backend!`] to run generic code on the chosen backend.
//! * [`error`] — [`TrainError`].
//!
//! Features: `cuda` adds Burn's CUDA backend (no CUDA toolkit needed to build; the driver is
//! loaded at run time); `flex` adds Burn's `Flex` CPU backend.
//!
//! ```
//! use peterrec_train::{FineTuneTrainConfig, PretrainConfig, TrainConfig};
//!
//! // The ML-1M recipe, shortened to one epoch.
//! let pretraining = PretrainConfig::new().with_train(TrainConfig::new().with_epochs(1));
//! // Fine-tuning defaults, another seed.
//! let fine_tuning =
//!     FineTuneTrainConfig::new().with_train(FineTuneTrainConfig::new().train.with_seed(7));
//! assert_eq!(pretraining.train.lr, 4e-3);
//! assert_eq!(fine_tuning.train.lr, 5e-3);
//! ```

#![warn(missing_docs)]

pub mod checkpoint;
pub mod config;
pub mod device;
pub mod error;
pub mod eval;
pub mod fit;
pub mod log;
pub mod loops;
pub mod progress;
pub mod schedule;

pub use checkpoint::{
    clean_stale_temp_files, write_atomic, write_atomic_with, Checkpoint, CheckpointDir,
    CheckpointWriter,
};
pub use config::{FineTuneLoss, FineTuneTrainConfig, PretrainConfig, TrainConfig};
pub use device::{
    check_device, cpu_device, cuda_available, Cpu, CpuAutodiff, DefaultAutodiffBackend,
    DefaultBackend, DeviceChoice, ParseDeviceError, CUDA_COMPILED, FLEX_COMPILED,
};
#[cfg(feature = "cuda")]
pub use device::{cuda_device, Gpu, GpuAutodiff};
#[cfg(feature = "flex")]
pub use device::{flex_device, FlexAutodiff, FlexCpu};
pub use error::{Result, TrainError};
pub use eval::{
    evaluate_next_item, evaluate_task, ClassificationReport, ConfusionMatrix, RankingMeans,
    RankingMetrics, RankingOptions, RankingReport, TaskEvaluation,
};
pub use fit::{FineTuned, FineTuner, Pretrained, Pretrainer};
pub use log::{Decision, EarlyStopping, EpochRecord, MetricsLog, Mode};
pub use loops::{check_lengths, finetune, pretrain, FineTuneReport, PretrainReport};
pub use progress::{EpochProgress, EpochStats};
pub use schedule::LrSchedule;

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

    /// The names of the atomic-write temporaries directly in `dir`.
    pub fn temp_entries(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(peterrec_data::fs::TEMP_PREFIX))
            .collect()
    }
}
