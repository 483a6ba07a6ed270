//! What both loops share: input checks, the metrics log, divergence detection, and `Run`, the
//! bookkeeping of one run (RNG, optimizer, early stopping, history, best model, state directory).

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::tensor::backend::AutodiffBackend;
use peterrec_model::NextItNetConfig;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::checkpoint::{load_last, save_epoch, CheckpointDir, LoopState};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::log::{EarlyStopping, EpochRecord, MetricsLog, Mode};
use crate::progress::EpochStats;

/// Checks a maximum sequence length against a backbone's convolutions.
///
/// A `max_len` shorter than the padding of the widest convolution (`(k−1)·2d` for the largest
/// block dilation `d`) is an error: that convolution would read nothing but padding through
/// every tap but its current one. A `max_len` (plus the `[CLS]` or target position) below the
/// receptive field is allowed but returns a warning: the network then never sees a history as
/// long as it could use.
pub fn check_lengths(max_len: usize, config: &NextItNetConfig) -> Result<Option<String>> {
    let widest = config.widest_dilation();
    let padding = config.widest_padding().unwrap_or(usize::MAX);
    if max_len < padding {
        return Err(TrainError::Config(format!(
            "max_len {max_len} is shorter than the padding of the widest convolution \
             ((k-1)*2*{widest} = {padding}); use max_len >= {padding} or smaller dilations"
        )));
    }
    let field = config.receptive_field();
    Ok((max_len + 1 < field).then(|| {
        format!(
            "warning: max_len {max_len} is below the backbone's receptive field of {field} \
             positions; the network cannot use all the history it could see"
        )
    }))
}

/// Checks that every token of `seqs` is a row of a backbone with `num_tokens` embeddings (a
/// vocabulary built from other data than the backbone's would put ids past its end).
pub(super) fn check_tokens<'a>(
    seqs: impl IntoIterator<Item = (&'a str, &'a [u32])>,
    num_tokens: usize,
) -> Result<()> {
    for (user, items) in seqs {
        if let Some(&t) = items.iter().find(|&&t| t as usize >= num_tokens) {
            return Err(TrainError::Input(format!(
                "user {user}: item index {t} is outside the backbone's {num_tokens} tokens \
                 (the vocabulary does not match the backbone)"
            )));
        }
    }
    Ok(())
}

/// Prints the warning of [`check_lengths`], if any, once per process: a program that
/// fine-tunes hundreds of models on one backbone says it once.
pub(super) fn check_lengths_and_warn(max_len: usize, config: &NextItNetConfig) -> Result<()> {
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    if let Some(w) = check_lengths(max_len, config)? {
        let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
        if !said.contains(&w) {
            eprintln!("{w}");
            said.push(w);
        }
    }
    Ok(())
}

/// Opens the metrics log: appended to when resuming from a state directory, else truncated.
fn open_log(t: &TrainConfig) -> Result<Option<MetricsLog>> {
    match &t.log_path {
        Some(p) if t.state_dir.is_some() => MetricsLog::append(p).map(Some),
        Some(p) => MetricsLog::create(p).map(Some),
        None => Ok(None),
    }
}

/// A [`TrainError::Divergence`] when `loss` is NaN or infinite.
pub(super) fn check_finite(loss: f64, epoch: usize, step: usize) -> Result<()> {
    if loss.is_finite() {
        Ok(())
    } else {
        Err(TrainError::Divergence { epoch, step, loss })
    }
}

/// The bookkeeping both loops share: RNG, optimizer, early stopping, history, the best model so
/// far, the metrics log and the state directory (restored from it when it holds a saved epoch).
pub(super) struct Run<B: AutodiffBackend, M: AutodiffModule<B>, O, E> {
    pub(super) rng: ChaCha8Rng,
    pub(super) optim: O,
    pub(super) stopper: EarlyStopping,
    pub(super) history: Vec<EpochRecord>,
    pub(super) best: (M::InnerModule, usize, Option<E>),
    pub(super) log: Option<MetricsLog>,
    pub(super) dir: Option<CheckpointDir>,
    pub(super) first_epoch: usize,
    pub(super) start: Instant,
}

impl<B, M, O, E> Run<B, M, O, E>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
    E: Serialize + serde::de::DeserializeOwned,
{
    /// Starts a run, or resumes it from `t.state_dir`. `refreeze` re-applies what is trainable to
    /// a model read back from disk.
    pub(super) fn start(
        t: &TrainConfig,
        model: M,
        optim: impl Fn() -> O,
        refreeze: impl FnOnce(M) -> M,
        device: &B::Device,
    ) -> Result<(M, Self)> {
        let mut run = Run {
            rng: ChaCha8Rng::seed_from_u64(t.seed),
            optim: optim(),
            stopper: EarlyStopping::new(t.patience, Mode::Max),
            history: Vec::new(),
            best: (model.valid(), 0, None),
            log: open_log(t)?,
            dir: t.state_dir.as_ref().map(CheckpointDir::open).transpose()?,
            first_epoch: 1,
            start: Instant::now(),
        };
        let Some(dir) = &run.dir else {
            return Ok((model, run));
        };
        let Some(r) = load_last(dir, model.clone(), optim(), device)? else {
            return Ok((model, run));
        };
        run.optim = r.optim;
        run.rng = r.state.rng;
        run.stopper = r.state.stopper;
        run.history = r.state.history;
        if let Some(b) = r.best {
            run.best = (
                b,
                r.state.best_epoch,
                serde_json::from_value(r.state.best_eval).ok(),
            );
        }
        run.first_epoch = if r.state.stopped {
            usize::MAX
        } else {
            r.state.epoch + 1
        };
        Ok((refreeze(r.model), run))
    }

    /// Records an evaluated epoch: logs it, keeps the model if it is the best so far (calling
    /// `save_best` on it), saves the loop state, and says whether to stop.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn end_epoch(
        &mut self,
        epoch: usize,
        stats: &EpochStats,
        model: &M,
        eval: E,
        metric: (&str, f64),
        log_extra: serde_json::Value,
        save_best: impl FnOnce(&M::InnerModule) -> Result<()>,
    ) -> Result<bool> {
        let decision = self.stopper.update(epoch, metric.1);
        let record = EpochRecord {
            epoch,
            train_loss: stats.mean_loss.unwrap_or(f64::NAN),
            valid_metric: metric.1,
            metric: metric.0.into(),
            seqs_per_sec: stats.sequences_per_second,
            elapsed: self.start.elapsed().as_secs_f64(),
            best: decision.improved,
        };
        if let Some(log) = self.log.as_mut() {
            log.log(&serde_json::json!({"record": &record, "details": log_extra}))?;
        }
        self.history.push(record);
        if decision.improved {
            let inner = model.valid();
            save_best(&inner)?;
            self.best = (inner, epoch, Some(eval));
        }
        if let Some(dir) = &self.dir {
            let state = LoopState {
                epoch,
                rng: self.rng.clone(),
                stopper: self.stopper.clone(),
                history: self.history.clone(),
                best_epoch: self.best.1,
                best_eval: serde_json::to_value(&self.best.2)
                    .map_err(|e| TrainError::json(None, e))?,
                stopped: decision.stop,
            };
            save_epoch(dir, model, &self.optim, &state, decision.improved)?;
        }
        Ok(decision.stop)
    }

    /// Ends the run: the kept model with its epoch and validation result (evaluated now with
    /// `evaluate` when a resumed run did not carry it), the history and the seconds taken.
    pub(super) fn finish(self, evaluate: impl FnOnce(&M::InnerModule) -> E) -> Finished<M, B, E> {
        let (model, best_epoch, valid) = self.best;
        let valid = valid.unwrap_or_else(|| evaluate(&model));
        Finished {
            model,
            best_epoch,
            valid,
            history: self.history,
            seconds: self.start.elapsed().as_secs_f64(),
        }
    }
}

/// What [`Run::finish`] returns.
pub(super) struct Finished<M: AutodiffModule<B>, B: AutodiffBackend, E> {
    pub(super) model: M::InnerModule,
    pub(super) best_epoch: usize,
    pub(super) valid: E,
    pub(super) history: Vec<EpochRecord>,
    pub(super) seconds: f64,
}

/// A loss read back from the device, as `f64`.
pub(super) trait ToF64 {
    /// The value as `f64`.
    fn to_f64_lossy(self) -> f64;
}

impl<E: burn::tensor::ElementConversion> ToF64 for E {
    fn to_f64_lossy(self) -> f64 {
        self.elem::<f64>()
    }
}
