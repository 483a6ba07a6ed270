//! Training loops: pretraining on item sequences ([`pretrain`]) and fine-tuning on a task
//! ([`finetune`]).
//!
//! Both loops are generic over `B: AutodiffBackend`, shuffle with a seeded ChaCha8 stream,
//! evaluate on the validation split after every epoch, stop early after `patience` epochs without
//! improvement, keep (and optionally save, atomically) the best model, log one JSON line per
//! evaluation, and stop with [`TrainError::Divergence`](crate::TrainError::Divergence) on a NaN
//! or infinite loss, leaving the last good checkpoint in place. With a state directory they save
//! their full state after every epoch and resume from it exactly.

mod common;
mod finetune;
mod pretrain;

pub use common::check_lengths;
pub use finetune::{finetune, FineTuneReport};
pub use pretrain::{pretrain, PretrainReport};
