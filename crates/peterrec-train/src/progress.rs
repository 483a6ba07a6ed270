//! A per-epoch progress bar with the running loss and throughput.
//!
//! The bar draws on stderr only when stderr is a terminal and quiet mode is off, so tests,
//! pipes and CI logs stay clean; the statistics ([`EpochStats`]) are computed either way.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

/// Whether a progress bar should be drawn: not `quiet` and stderr is a terminal.
pub fn progress_visible(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

/// Summary of one epoch of training, as measured by [`EpochProgress`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// The epoch.
    pub epoch: usize,
    /// Number of steps (batches).
    pub steps: usize,
    /// Number of sequences processed.
    pub sequences: u64,
    /// Mean loss weighted by sequences per step; `None` if no step ran.
    pub mean_loss: Option<f64>,
    /// Loss of the last step; `None` if no step ran.
    pub last_loss: Option<f64>,
    /// Wall time of the epoch, in seconds.
    pub seconds: f64,
    /// Throughput: `sequences / seconds` (0 when no time elapsed).
    pub sequences_per_second: f64,
}

/// A progress bar for one training epoch, counting sequences and showing the mean loss and
/// sequences per second.
#[derive(Debug)]
pub struct EpochProgress {
    bar: ProgressBar,
    epoch: usize,
    start: Instant,
    steps: usize,
    sequences: u64,
    loss_sum: f64,
    last_loss: Option<f64>,
    last_draw: Option<Instant>,
}

const REDRAW: Duration = Duration::from_millis(100);

impl EpochProgress {
    /// Starts the bar for `epoch` (of `total_epochs`, if known) over `total_sequences`
    /// sequences. Hidden when `quiet` or when stderr is not a terminal.
    pub fn new(
        epoch: usize,
        total_epochs: Option<usize>,
        total_sequences: u64,
        quiet: bool,
    ) -> Self {
        let target = if progress_visible(quiet) {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total_sequences), target);
        let style = ProgressStyle::with_template(
            "epoch {prefix} [{bar:30}] {pos}/{len} seq · {msg} · {elapsed_precise}<{eta_precise}",
        )
        .expect("valid progress template")
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(match total_epochs {
            Some(t) => format!("{epoch}/{t}"),
            None => epoch.to_string(),
        });
        Self {
            bar,
            epoch,
            start: Instant::now(),
            steps: 0,
            sequences: 0,
            loss_sum: 0.0,
            last_loss: None,
            last_draw: None,
        }
    }

    /// Whether the bar is drawn.
    pub fn is_hidden(&self) -> bool {
        self.bar.is_hidden()
    }

    /// Records one step over `sequences` sequences with mean loss `loss`.
    pub fn step(&mut self, sequences: usize, loss: f64) {
        self.steps += 1;
        self.sequences += sequences as u64;
        self.loss_sum += loss * sequences as f64;
        self.last_loss = Some(loss);
        self.bar.inc(sequences as u64);
        if !self.bar.is_hidden() && self.last_draw.is_none_or(|t| t.elapsed() >= REDRAW) {
            self.last_draw = Some(Instant::now());
            self.bar.set_message(self.message());
        }
    }

    fn mean_loss(&self) -> Option<f64> {
        match (self.steps, self.sequences) {
            (0, _) => None,
            (_, 0) => self.last_loss,
            (_, n) => Some(self.loss_sum / n as f64),
        }
    }

    fn rate(&self, seconds: f64) -> f64 {
        if seconds > 0.0 {
            self.sequences as f64 / seconds
        } else {
            0.0
        }
    }

    fn message(&self) -> String {
        let rate = self.rate(self.start.elapsed().as_secs_f64());
        match self.mean_loss() {
            Some(l) => format!("loss {l:.4} · {rate:.0} seq/s"),
            None => format!("{rate:.0} seq/s"),
        }
    }

    /// Prints a line above the bar; prints nothing when the bar is hidden.
    pub fn println(&self, line: impl AsRef<str>) {
        self.bar.println(line);
    }

    /// Statistics so far, without finishing the bar.
    pub fn stats(&self) -> EpochStats {
        let seconds = self.start.elapsed().as_secs_f64();
        EpochStats {
            epoch: self.epoch,
            steps: self.steps,
            sequences: self.sequences,
            mean_loss: self.mean_loss(),
            last_loss: self.last_loss,
            seconds,
            sequences_per_second: self.rate(seconds),
        }
    }

    /// Clears the bar and returns the epoch's statistics.
    pub fn finish(self) -> EpochStats {
        let stats = self.stats();
        self.bar.finish_and_clear();
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_bar_is_hidden_and_counts() {
        assert!(!progress_visible(true));
        let mut p = EpochProgress::new(3, Some(10), 100, true);
        assert!(p.is_hidden());
        p.step(32, 2.0);
        p.step(32, 1.0);
        p.step(16, 4.0);
        p.println("not shown");
        let s = p.finish();
        assert_eq!(s.epoch, 3);
        assert_eq!(s.steps, 3);
        assert_eq!(s.sequences, 80);
        // (32*2 + 32*1 + 16*4) / 80 = 160/80
        assert_eq!(s.mean_loss, Some(2.0));
        assert_eq!(s.last_loss, Some(4.0));
        assert!(s.seconds >= 0.0 && s.sequences_per_second >= 0.0);
        assert!(s.sequences_per_second.is_finite());
    }

    #[test]
    fn empty_epoch_has_no_nan() {
        let p = EpochProgress::new(1, None, 0, true);
        let s = p.finish();
        assert_eq!(s.mean_loss, None);
        assert_eq!(s.last_loss, None);
        assert_eq!(s.sequences, 0);
        assert!(s.sequences_per_second.is_finite());
        assert!(serde_json::to_string(&s).is_ok());
    }
}
