//! # peterrec
//!
//! Parameter-efficient transfer learning for sequential recommendation: PeterRec (Yuan et al.,
//! SIGIR 2020) on the NextItNet backbone (Yuan et al., WSDM 2019), in pure Rust on Burn.
//!
//! This facade re-exports the four crates of the workspace:
//! - [`data`] (`peterrec-data`): readers, vocabularies, sequences, splits, tasks, batching;
//! - [`model`] (`peterrec-model`): backbone, model patches, heads, strategies, persistence;
//! - [`train`] (`peterrec-train`): training loops, metrics, checkpoints, backend selection;
//! - [`serve`] (`peterrec-serve`): one backbone serving many fine-tuned tasks.

pub use peterrec_data as data;
pub use peterrec_model as model;
pub use peterrec_serve as serve;
pub use peterrec_train as train;
