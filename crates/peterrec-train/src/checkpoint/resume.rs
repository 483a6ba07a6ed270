//! Exact resume: the loop state saved after every epoch and read back.
//!
//! A state directory is a [`CheckpointDir`] whose epoch directories hold `model.mpk` (the model
//! record, full precision, parameter ids included), `optim.mpk` (the Adam moments and step
//! counters), and `state.json` ([`LoopState`]: epoch, RNG stream position, early-stopping state,
//! history and the best evaluation). `last` points at the newest epoch and `best` at the kept
//! model's; older epochs are pruned. Resuming from it continues bit for bit where the run stopped
//! (tested on the ndarray backend).

use std::path::Path;

use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::atomic::read_json;
use super::dir::CheckpointDir;
use crate::error::{Result, TrainError};
use crate::log::{EarlyStopping, EpochRecord};

const MODEL: &str = "model";
const OPTIM: &str = "optim";
const STATE: &str = "state.json";

/// Everything besides weights and optimizer moments that a loop needs to continue exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoopState {
    /// Last completed epoch.
    pub epoch: usize,
    /// The loop's RNG after that epoch.
    pub rng: ChaCha8Rng,
    /// Early-stopping state.
    pub stopper: EarlyStopping,
    /// Per-epoch records so far.
    pub history: Vec<EpochRecord>,
    /// Epoch of the best model so far (0: none yet).
    pub best_epoch: usize,
    /// Validation result of the best model, as JSON.
    pub best_eval: serde_json::Value,
    /// Whether early stopping ended the run.
    pub stopped: bool,
}

fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::<FullPrecisionSettings>::new()
}

fn record_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::checkpoint(path, e.to_string())
}

/// Saves one epoch's state atomically and prunes all epochs but the last and the best.
pub fn save_epoch<B, M, O>(
    dir: &CheckpointDir,
    model: &M,
    optim: &O,
    state: &LoopState,
    is_best: bool,
) -> Result<()>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    let writer = dir.begin(state.epoch)?;
    let model_path = writer.path(MODEL);
    model
        .clone()
        .save_file(model_path.clone(), &recorder())
        .map_err(|e| record_err(&model_path, e))?;
    let optim_path = writer.path(OPTIM);
    Recorder::<B>::record(&recorder(), optim.to_record(), optim_path.clone())
        .map_err(|e| record_err(&optim_path, e))?;
    writer.write_json(STATE, state)?;
    writer.commit(is_best)?;
    dir.prune(1)?;
    Ok(())
}

/// What [`load_last`] restores.
pub struct Restored<B: AutodiffBackend, M: AutodiffModule<B>, O> {
    /// The model after the last saved epoch.
    pub model: M,
    /// The optimizer after the last saved epoch.
    pub optim: O,
    /// The loop state.
    pub state: LoopState,
    /// The best model so far (inference copy), if any epoch improved.
    pub best: Option<M::InnerModule>,
}

/// Restores the newest saved epoch, if any. `model` and `optim` must be built exactly as the
/// saved run built them (same configuration); their weights and moments are replaced.
pub fn load_last<B, M, O>(
    dir: &CheckpointDir,
    model: M,
    optim: O,
    device: &B::Device,
) -> Result<Option<Restored<B, M, O>>>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    let Some(last) = dir.last()? else {
        return Ok(None);
    };
    let state: LoopState = read_json(last.file(STATE))?;
    let best = match dir.best()? {
        Some(b) if state.best_epoch > 0 => {
            let path = b.file(MODEL);
            Some(
                model
                    .clone()
                    .load_file(path.clone(), &recorder(), device)
                    .map_err(|e| record_err(&path, e))?
                    .valid(),
            )
        }
        _ => None,
    };
    let path = last.file(MODEL);
    let model = model
        .load_file(path.clone(), &recorder(), device)
        .map_err(|e| record_err(&path, e))?;
    let path = last.file(OPTIM);
    let record = Recorder::<B>::load(&recorder(), path.with_extension("mpk"), device)
        .map_err(|e| record_err(&path, e))?;
    let optim = optim.load_record(record);
    Ok(Some(Restored {
        model,
        optim,
        state,
        best,
    }))
}
