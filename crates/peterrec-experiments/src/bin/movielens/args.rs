//! The command line of `movielens`: tasks, user split and every training option.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::Parser;
use peterrec_data::movielens::Variant;
use peterrec_experiments::cli::RunArgs;
pub use peterrec_experiments::tasks::TaskName;
use peterrec_model::Strategy;
use peterrec_train::{FineTuneLoss, FineTuneTrainConfig, LrSchedule, PretrainConfig};

/// A user split `TRAIN,VALID` (fractions; the test part is the rest).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitArg(pub f64, pub f64);

impl FromStr for SplitArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let bad = || format!("bad split `{s}` (expected `TRAIN,VALID`, e.g. `0.7,0.1`)");
        let [a, b] = parts.as_slice() else {
            return Err(bad());
        };
        let (a, b) = (
            a.parse::<f64>().map_err(|_| bad())?,
            b.parse::<f64>().map_err(|_| bad())?,
        );
        if a <= 0.0 || b <= 0.0 || a + b >= 1.0 {
            return Err(format!(
                "split `{s}`: train and validation fractions must be positive and leave a test part"
            ));
        }
        Ok(SplitArg(a, b))
    }
}

/// PeterRec and its baselines on MovieLens profile and cold-start tasks.
#[derive(Debug, Parser)]
#[command(
    about = "Pretrain NextItNet on MovieLens, fine-tune every strategy on gender, age, occupation and cold start, print one table"
)]
pub struct Args {
    /// MovieLens directory: ML-1M (ratings.dat, users.dat, movies.dat) or ML-100K (u.data, u.user, u.item).
    #[arg(long)]
    pub path: PathBuf,
    /// Maximum pretraining epochs (per backbone; default: the pretraining recipe's).
    #[arg(long, default_value_t = PretrainConfig::new().train.epochs)]
    pub epochs: usize,
    /// Maximum fine-tuning epochs (per task and strategy; default: the fine-tuning recipe's).
    #[arg(long, default_value_t = FineTuneTrainConfig::new().train.epochs)]
    pub finetune_epochs: usize,
    /// Epochs without validation improvement before stopping (pretraining and fine-tuning).
    #[arg(long, default_value_t = PretrainConfig::new().train.patience)]
    pub patience: usize,
    /// Channels C (default 128, as `nextitem`).
    #[arg(long, default_value_t = 128)]
    pub channels: usize,
    /// Block dilations, comma separated (block d holds convolutions of dilation d and 2d).
    #[arg(long, default_value = "1,4,1,4", value_delimiter = ',')]
    pub dilations: Vec<usize>,
    /// Most recent items of a fine-tuning input (before `[CLS]`).
    #[arg(long, default_value_t = FineTuneTrainConfig::new().train.max_len)]
    pub max_len: usize,
    /// Most recent items of a pretraining row and of a next-item evaluation history.
    #[arg(long, default_value_t = PretrainConfig::new().train.max_len)]
    pub pretrain_max_len: usize,
    /// Pretraining sequences per step.
    #[arg(long, default_value_t = PretrainConfig::new().train.batch_size)]
    pub batch_size: usize,
    /// Fine-tuning examples per step.
    #[arg(long, default_value_t = FineTuneTrainConfig::new().train.batch_size)]
    pub finetune_batch_size: usize,
    /// Pretraining Adam learning rate.
    #[arg(long, default_value_t = PretrainConfig::new().train.lr)]
    pub lr: f64,
    /// Pretraining learning-rate schedule over `--epochs`: `constant`, `cosine`, `cosine:WARMUP`
    /// or `cosine:WARMUP:FINAL_RATIO`, WARMUP in steps or as a share such as `10%`.
    #[arg(long, default_value_t = PretrainConfig::new().train.lr_schedule)]
    pub lr_schedule: LrSchedule,
    /// Pretraining on every window of a long sequence (sub-sequence augmentation), not only
    /// its most recent `--pretrain-max-len` items (`--windows false` to stop).
    #[arg(long, default_value_t = PretrainConfig::new().windows, num_args = 0..=1, default_missing_value = "true")]
    pub windows: bool,
    /// Dropout on the embeddings and residual branches while pretraining.
    #[arg(long, default_value_t = PretrainConfig::new().dropout)]
    pub dropout: f64,
    /// Pretrain with the output layer tied to the item embedding table (`--tied-output false`
    /// for the head's own weight).
    #[arg(long, default_value_t = PretrainConfig::new().tied_output, num_args = 0..=1, default_missing_value = "true")]
    pub tied_output: bool,
    /// Write the pretraining metrics (one JSON line per epoch) to `<DIR>/<backbone>.jsonl`.
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Fine-tuning Adam learning rate (at the fine-tuning recipe's constant rate).
    #[arg(long, default_value_t = FineTuneTrainConfig::new().train.lr)]
    pub finetune_lr: f64,
    /// Pretraining with a sampled softmax of this many shared negatives (default: full softmax).
    #[arg(long)]
    pub sampled_negatives: Option<usize>,
    /// Fine-tune with each of these seeds (head/patch init, shuffling and user split change; the
    /// backbones are pretrained once with `--seed`); the table reports the mean and the spread.
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// User split of the fine-tuning tasks: train and validation fractions (test: the rest).
    #[arg(long, default_value = "0.7,0.1")]
    pub split: SplitArg,
    /// Write the table (JSON) to this file, atomically.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Strategies, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = peterrec_experiments::tasks::ALL_STRATEGIES
    )]
    pub strategies: Vec<Strategy>,
    /// Tasks, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = peterrec_experiments::tasks::ALL_TASKS
    )]
    pub tasks: Vec<TaskName>,
    /// Cold-start loss: `softmax` (over all target items) or `bce:N` (N sampled negatives).
    #[arg(long, default_value = "softmax")]
    pub cold_start_loss: FineTuneLoss,
    /// Cold start: examples kept per training or validation user (a seeded random subset of the
    /// user's target movies; the test keeps all); 0 keeps all. Every example repeats the user's
    /// whole source sequence, so this bounds the cost of a fine-tuning epoch.
    #[arg(long, default_value_t = 2)]
    pub cold_start_train_per_user: usize,
    /// Cache of pretrained backbones: `<name>.safetensors` found here is loaded instead of
    /// pretrained (its next-item figures are still measured); a missing one is pretrained and
    /// saved here. For iterating on fine-tuning; a table for the record should pretrain.
    #[arg(long)]
    pub backbone_dir: Option<PathBuf>,
    // --seed, --device and --quiet.
    #[command(flatten)]
    pub run: RunArgs,
}

/// ML-1M or ML-100K, by the files present.
pub fn detect(dir: &Path) -> Result<Variant, String> {
    if dir.join("ratings.dat").is_file() {
        Ok(Variant::Ml1m)
    } else if dir.join("u.data").is_file() {
        Ok(Variant::Ml100k)
    } else {
        Err(format!(
            "{} holds neither ratings.dat (ML-1M) nor u.data (ML-100K)",
            dir.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_need_two_positive_fractions_leaving_a_test_part() {
        assert_eq!("0.7,0.1".parse::<SplitArg>(), Ok(SplitArg(0.7, 0.1)));
        assert_eq!(" 0.5 , 0.25".parse::<SplitArg>(), Ok(SplitArg(0.5, 0.25)));
        for bad in [
            "0.7",
            "0.7,0.1,0.2",
            "a,b",
            "0,0.1",
            "0.7,-0.1",
            "0.9,0.1",
            "0.8,0.3",
        ] {
            assert!(bad.parse::<SplitArg>().is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_are_the_documented_table() {
        let a = Args::try_parse_from(["movielens", "--path", "d"]).unwrap();
        // The pretraining and fine-tuning recipes of the library.
        assert_eq!((a.epochs, a.finetune_epochs, a.patience), (10, 4, 3));
        assert_eq!((a.lr, a.finetune_lr, a.dropout), (4e-3, 5e-3, 0.2));
        assert_eq!(a.lr_schedule, LrSchedule::WARMUP_10_COSINE);
        assert_eq!((a.channels, a.pretrain_max_len, a.max_len), (128, 50, 50));
        assert!(a.windows && a.tied_output);
        assert_eq!(a.dilations, [1, 4, 1, 4]);
        assert_eq!(a.split, SplitArg(0.7, 0.1));
        assert_eq!(a.strategies.len(), 6);
        let tasks = [
            TaskName::Gender,
            TaskName::Age,
            TaskName::Occupation,
            TaskName::ColdStart,
        ];
        assert_eq!(a.tasks, tasks);
        assert_eq!((a.run.seed, a.run.quiet), (0, false));
        assert_eq!(a.cold_start_train_per_user, 2);
        let a = Args::try_parse_from([
            "movielens",
            "--path",
            "d",
            "--seeds",
            "0,1,2",
            "--tasks",
            "age",
            "--seed",
            "3",
            "--quiet",
            "--windows",
            "false",
            "--tied-output",
            "false",
        ])
        .unwrap();
        assert!(!a.windows && !a.tied_output);
        assert_eq!(a.seeds, Some(vec![0, 1, 2]));
        assert_eq!(a.tasks, [TaskName::Age]);
        assert_eq!((a.run.seed, a.run.quiet), (3, true));
    }

    #[test]
    fn the_release_is_detected_by_its_files() {
        let dir = std::env::temp_dir().join(format!("peterrec-detect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(detect(&dir).is_err());
        std::fs::write(dir.join("u.data"), "").unwrap();
        assert_eq!(detect(&dir), Ok(Variant::Ml100k));
        std::fs::write(dir.join("ratings.dat"), "").unwrap();
        assert_eq!(detect(&dir), Ok(Variant::Ml1m));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
