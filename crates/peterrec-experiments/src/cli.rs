//! Command-line options shared by the experiment binaries (flattened into each one's own set).

use clap::Args;
use peterrec_train::DeviceChoice;

/// `--device`: the backend and device a program runs on.
#[derive(Debug, Clone, Copy, Args)]
pub struct DeviceArgs {
    /// Device: `cpu`, `flex`, `cuda` or `cuda:N` (`flex` and CUDA need a build with
    /// `--features flex` / `cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

/// The options of every training program: seed, device and progress bars.
#[derive(Debug, Clone, Copy, Args)]
pub struct RunArgs {
    /// Seed of initialisation, shuffling, sampling and the user split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device: `cpu`, `flex`, `cuda` or `cuda:N` (`flex` and CUDA need a build with
    /// `--features flex` / `cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Hide the progress bars.
    #[arg(long)]
    pub quiet: bool,
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
    fn defaults_are_seed_0_on_the_cpu_with_progress_bars() {
        let a = Run::try_parse_from(["x"]).unwrap().run;
        assert_eq!(a.seed, 0);
        assert_eq!(a.device, DeviceChoice::Cpu);
        assert!(!a.quiet);
        let d = Device::try_parse_from(["x"]).unwrap().device;
        assert_eq!(d.device, DeviceChoice::Cpu);
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
