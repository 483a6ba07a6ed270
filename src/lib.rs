#![doc = include_str!("../README.md")]
//!
//! # Crates
//!
//! This facade re-exports the crates of the workspace, with one [`prelude`] and one [`Error`]:
//! - [`data`] (`peterrec-data`): readers, vocabularies, sequences, splits, tasks, batching;
//! - [`model`] (`peterrec-model`): backbone, model patches, heads, strategies, files;
//! - [`train`] (`peterrec-train`): configurations, training loops, evaluation, checkpoints,
//!   devices;
//! - [`serve`] (`peterrec-serve`): one backbone serving many fine-tuned tasks.
//!
//! `docs/design.md` in the repository describes the layout and the path of a batch.

#![warn(missing_docs)]

mod error;
pub mod prelude;

pub use error::{Error, Result};
pub use peterrec_data as data;
pub use peterrec_model as model;
pub use peterrec_serve as serve;
pub use peterrec_train as train;
