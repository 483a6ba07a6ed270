//! A JSON-lines metrics log, the per-epoch record the loops write to it, and early stopping.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{IoResultExt, Result, TrainError};

/// One epoch's record, as written to the metrics log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation headline metric.
    pub valid_metric: f64,
    /// Name of that metric.
    pub metric: String,
    /// Sequences per second of training.
    pub seqs_per_sec: f64,
    /// Seconds since the run started.
    pub elapsed: f64,
    /// Whether this epoch is the best so far.
    pub best: bool,
}

/// An append-only JSON-lines file: one JSON object per line, flushed after every line so that
/// `tail -f` and a crash both see complete records.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Creates (or truncates) the log at `path`, creating missing parent directories.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path.as_ref(), false)
    }

    /// Opens the log at `path` for appending (creating it if needed), e.g. when resuming.
    pub fn append(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path.as_ref(), true)
    }

    fn open_with(path: &Path, append: bool) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).with_path(dir)?;
        }
        let mut opts = File::options();
        opts.create(true);
        if append {
            opts.append(true);
        } else {
            opts.write(true).truncate(true);
        }
        let file = opts.open(path).with_path(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `record` as one compact JSON line and flushes it.
    pub fn log<T: Serialize + ?Sized>(&mut self, record: &T) -> Result<()> {
        let mut line =
            serde_json::to_vec(record).map_err(|e| TrainError::json(Some(&self.path), e))?;
        line.push(b'\n');
        self.file.write_all(&line).with_path(&self.path)?;
        self.file.flush().with_path(&self.path)
    }
}

/// Reads every line of a JSON-lines file as a `T` (blank lines are skipped), e.g. to plot a
/// learning curve from a [`MetricsLog`].
pub fn read_json_lines<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<Vec<T>> {
    let path = path.as_ref();
    let reader = BufReader::new(File::open(path).with_path(path)?);
    let mut out = Vec::new();
    for line in reader.lines() {
        let line = line.with_path(path)?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).map_err(|e| TrainError::json(Some(path), e))?);
    }
    Ok(out)
}

/// Whether a larger or a smaller metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Larger is better (accuracy, NDCG, HR).
    Max,
    /// Smaller is better (loss).
    Min,
}

/// What [`EarlyStopping::update`] decided for one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The value is the best so far: save it as the best checkpoint.
    pub improved: bool,
    /// Patience is exhausted: stop training.
    pub stop: bool,
}

/// Early stopping on a validation metric.
///
/// A value improves when it beats the best so far by more than `min_delta` (0 by default,
/// i.e. strictly better). After `patience` consecutive epochs without improvement, `stop` is
/// set; `patience` 0 and 1 both stop at the first epoch that does not improve. A NaN
/// value never improves. Serialisable, so it can be stored in a checkpoint and resumed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    patience: usize,
    mode: Mode,
    min_delta: f64,
    best: Option<f64>,
    best_epoch: Option<usize>,
    bad_epochs: usize,
}

impl EarlyStopping {
    /// Stops after `patience` epochs without improvement in the direction of `mode`.
    pub fn new(patience: usize, mode: Mode) -> Self {
        Self {
            patience,
            mode,
            min_delta: 0.0,
            best: None,
            best_epoch: None,
            bad_epochs: 0,
        }
    }

    /// Requires improvements larger than `min_delta` (absolute; negative values act as 0).
    pub fn with_min_delta(mut self, min_delta: f64) -> Self {
        self.min_delta = min_delta.max(0.0);
        self
    }

    /// Records the metric `value` of `epoch` and decides.
    pub fn update(&mut self, epoch: usize, value: f64) -> Decision {
        let improved = !value.is_nan()
            && match self.best {
                None => true,
                Some(best) => match self.mode {
                    Mode::Max => value > best + self.min_delta,
                    Mode::Min => value < best - self.min_delta,
                },
            };
        if improved {
            self.best = Some(value);
            self.best_epoch = Some(epoch);
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        Decision {
            improved,
            stop: !improved && self.bad_epochs >= self.patience.max(1),
        }
    }

    /// The best value so far.
    pub fn best(&self) -> Option<f64> {
        self.best
    }

    /// The epoch of the best value so far.
    pub fn best_epoch(&self) -> Option<usize> {
        self.best_epoch
    }

    /// Consecutive epochs without improvement.
    pub fn bad_epochs(&self) -> usize {
        self.bad_epochs
    }

    /// The patience.
    pub fn patience(&self) -> usize {
        self.patience
    }

    /// The direction.
    pub fn mode(&self) -> Mode {
        self.mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::TempDir;
    use serde_json::{json, Value};

    #[test]
    fn log_writes_one_line_per_record() {
        let t = TempDir::new("log");
        let p = t.path().join("sub/metrics.jsonl");
        let mut log = MetricsLog::create(&p).unwrap();
        log.log(&json!({"epoch": 1, "hr@10": 0.25})).unwrap();
        #[derive(Serialize)]
        struct Rec {
            epoch: usize,
            loss: f64,
        }
        log.log(&Rec {
            epoch: 2,
            loss: 1.5,
        })
        .unwrap();
        // flushed: readable before the logger is dropped
        let text = fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "{\"epoch\":1,\"hr@10\":0.25}\n{\"epoch\":2,\"loss\":1.5}\n"
        );
        let rows: Vec<Value> = read_json_lines(&p).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1]["loss"], 1.5);
        assert_eq!(log.path(), p.as_path());
    }

    #[test]
    fn append_keeps_and_create_truncates() {
        let t = TempDir::new("log-append");
        let p = t.path().join("m.jsonl");
        MetricsLog::create(&p).unwrap().log(&1).unwrap();
        MetricsLog::append(&p).unwrap().log(&2).unwrap();
        assert_eq!(read_json_lines::<u32>(&p).unwrap(), vec![1, 2]);
        MetricsLog::create(&p).unwrap().log(&3).unwrap();
        assert_eq!(read_json_lines::<u32>(&p).unwrap(), vec![3]);
    }

    #[test]
    fn unserializable_record_is_an_error_and_writes_nothing() {
        // a map with a non-string key cannot be JSON
        let t = TempDir::new("log-err");
        let p = t.path().join("m.jsonl");
        let mut log = MetricsLog::create(&p).unwrap();
        let mut bad = std::collections::HashMap::new();
        bad.insert(vec![1u8], 1);
        assert!(matches!(log.log(&bad), Err(TrainError::Json { .. })));
        assert_eq!(fs::read_to_string(&p).unwrap(), "");
        assert!(read_json_lines::<u32>(t.path().join("absent")).is_err());
    }

    #[test]
    fn early_stopping_max() {
        let mut es = EarlyStopping::new(2, Mode::Max);
        let d = |improved, stop| Decision { improved, stop };
        assert_eq!(es.update(1, 0.10), d(true, false));
        assert_eq!(es.update(2, 0.20), d(true, false));
        assert_eq!(es.update(3, 0.20), d(false, false)); // equal is not better
        assert_eq!(es.update(4, 0.15), d(false, true));
        assert_eq!(es.best(), Some(0.20));
        assert_eq!(es.best_epoch(), Some(2));
        assert_eq!(es.bad_epochs(), 2);
    }

    #[test]
    fn early_stopping_min_and_reset() {
        let mut es = EarlyStopping::new(1, Mode::Min);
        assert!(es.update(1, 2.0).improved);
        assert!(es.update(2, 1.0).improved);
        let d = es.update(3, 1.5);
        assert!(!d.improved && d.stop);
        // continuing after a stop still tracks properly
        assert!(es.update(4, 0.5).improved);
        assert_eq!(es.bad_epochs(), 0);
    }

    #[test]
    fn early_stopping_patience_zero_nan_and_delta() {
        let mut es = EarlyStopping::new(0, Mode::Max).with_min_delta(0.01);
        assert!(es.update(0, f64::NAN).stop); // NaN never improves
        assert!(es.update(1, 0.5).improved);
        let d = es.update(2, 0.505); // within min_delta
        assert!(!d.improved && d.stop);
        let json = serde_json::to_string(&es).unwrap();
        let back: EarlyStopping = serde_json::from_str(&json).unwrap();
        assert_eq!(back, es);
        assert_eq!(back.mode(), Mode::Max);
        assert_eq!(back.patience(), 0);
    }
}
