//! Command-line options shared by the experiment binaries (flattened into each one's own set).

use std::path::PathBuf;

use clap::Args;
use peterrec_train::{DeviceChoice, LrSchedule, TrainConfig};

/// `--device`: the backend and device a program runs on.
#[derive(Debug, Clone, Copy, Args)]
pub struct DeviceArgs {
    /// Device: `cpu`, `flex`, `cuda` or `cuda:N` (default `flex`, the fastest CPU backend, in a
    /// build with the `flex` feature, on by default; `cpu` otherwise; CUDA needs `--features
    /// cuda`).
    #[arg(long, default_value_t = DeviceChoice::default())]
    pub device: DeviceChoice,
}

/// The options of every training program: seed, device and progress bars.
#[derive(Debug, Clone, Copy, Args)]
pub struct RunArgs {
    /// Seed of initialisation, shuffling, sampling and the user split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device: `cpu`, `flex`, `cuda` or `cuda:N` (default `flex`, the fastest CPU backend, in a
    /// build with the `flex` feature, on by default; `cpu` otherwise; CUDA needs `--features
    /// cuda`).
    #[arg(long, default_value_t = DeviceChoice::default())]
    pub device: DeviceChoice,
    /// Hide the progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// The training loop's settings, each left at the program's base configuration unless given
/// (the library's defaults are the measured recipe).
#[derive(Debug, Clone, Default, Args)]
pub struct TrainArgs {
    /// Maximum epochs (default: the loop's recipe, 10 for pretraining and 4 for fine-tuning).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Epochs without validation improvement before stopping (default 3).
    #[arg(long)]
    pub patience: Option<usize>,
    /// Most recent items per training row and per evaluation history (default 50).
    #[arg(long)]
    pub max_len: Option<usize>,
    /// Sequences per step (default 64).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam learning rate (default: the loop's recipe, 4e-3 for pretraining and 5e-3 for
    /// fine-tuning).
    #[arg(long)]
    pub lr: Option<f64>,
    /// `constant`, `cosine`, `cosine:WARMUP` or `cosine:WARMUP:FINAL_RATIO`, WARMUP in steps or
    /// as a share of the planned steps such as `10%` (default: the loop's recipe, `cosine:10%`
    /// for pretraining and `constant` for fine-tuning).
    #[arg(long)]
    pub lr_schedule: Option<LrSchedule>,
    /// L2 weight decay (default 0).
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// Seed of initialisation, shuffling and sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// JSON-lines metrics log, one line per epoch.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Hide the progress bars.
    #[arg(long)]
    pub quiet: bool,
}

impl TrainArgs {
    /// `base` with every setting given on the command line applied.
    pub fn config(&self, base: TrainConfig) -> TrainConfig {
        let mut c = base.with_seed(self.seed).with_quiet(self.quiet);
        c.epochs = self.epochs.unwrap_or(c.epochs);
        c.patience = self.patience.unwrap_or(c.patience);
        c.max_len = self.max_len.unwrap_or(c.max_len);
        c.batch_size = self.batch_size.unwrap_or(c.batch_size);
        c.lr = self.lr.unwrap_or(c.lr);
        c.lr_schedule = self.lr_schedule.unwrap_or(c.lr_schedule);
        c.weight_decay = self.weight_decay.unwrap_or(c.weight_decay);
        c.log_path = self.log.clone().or(c.log_path);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Run {
        #[command(flatten)]
        run: RunArgs,
    }

    #[derive(Debug, Parser)]
    struct Device {
        #[command(flatten)]
        device: DeviceArgs,
    }

    #[test]
    fn defaults_are_seed_0_on_the_default_device_with_progress_bars() {
        let a = Run::try_parse_from(["x"]).unwrap().run;
        assert_eq!(a.seed, 0);
        assert_eq!(a.device, DeviceChoice::default());
        assert!(!a.quiet);
        let d = Device::try_parse_from(["x"]).unwrap().device;
        assert_eq!(d.device, DeviceChoice::default());
    }

    #[derive(Debug, Parser)]
    struct Train {
        #[command(flatten)]
        train: TrainArgs,
    }

    #[test]
    fn train_flags_override_only_what_they_name() {
        let none = Train::try_parse_from(["x"]).unwrap().train;
        let base = TrainConfig::new().with_lr(0.5);
        let c = none.config(base.clone());
        assert_eq!(
            (c.lr, c.epochs, c.max_len),
            (0.5, base.epochs, base.max_len)
        );
        let some = Train::try_parse_from(["x", "--epochs", "9", "--lr-schedule", "constant"])
            .unwrap()
            .train;
        let c = some.config(base);
        assert_eq!((c.lr, c.epochs), (0.5, 9));
        assert_eq!(c.lr_schedule, LrSchedule::Constant);
    }

    #[test]
    fn flags_parse() {
        let a = Run::try_parse_from(["x", "--seed", "7", "--device", "flex", "--quiet"])
            .unwrap()
            .run;
        assert_eq!(a.seed, 7);
        assert_eq!(a.device, DeviceChoice::Flex);
        assert!(a.quiet);
        let d = Device::try_parse_from(["x", "--device", "cuda:1"])
            .unwrap()
            .device;
        assert_eq!(d.device, DeviceChoice::Cuda(1));
        assert!(Device::try_parse_from(["x", "--device", "tpu"]).is_err());
    }
}
