//! # peterrec-data
//!
//! The data layer of peterrec (PeterRec / NextItNet sequential recommendation on Burn):
//!
//! - [`readers`]: streaming readers for MovieLens-1M/100K, sequence files (Amazon, Yelp,
//!   LastFM), generic `user,item[,timestamp]` CSV/TSV and the original PeterRec CSVs;
//! - [`vocab`]: external ids → dense indices with reserved tokens ([`PAD`], [`MASK`], [`CLS`],
//!   [`UNK`]), JSON save/load and a fingerprint, so ids never silently misalign between
//!   pretraining and fine-tuning;
//! - [`sequence`]: chronological per-user sequences (deterministic tie-break), filtering,
//!   truncation, padding and statistics;
//! - [`split`]: leave-one-out and seeded user-level splits;
//! - [`movielens`] and [`task`]: fine-tuning tasks on real data (profile classification,
//!   cold-start cross-domain recommendation, the PeterRec demo);
//! - [`batch`] and [`sampler`]: Burn `Int` tensor batches for next-item, masked next-item,
//!   cloze and fine-tuning objectives, and negative samplers, all seeded;
//! - [`synthetic`]: sequences with planted structure;
//! - [`fs`]: crash-safe (atomic) file writes, shared by the crates that save files.
//!
//! All errors are [`DataError`]; parse errors name the file, the line and the reason.
//!
//! ```
//! use burn::backend::NdArray;
//! use peterrec_data::batch::{finetune_batch, next_item_batch};
//! use peterrec_data::split::SplitConfig;
//! use peterrec_data::synthetic::{generate, SyntheticConfig};
//!
//! let data = generate(&SyntheticConfig::default().with_users(100));
//! let seqs: Vec<&[u32]> = data.sequences.iter().take(8).map(|s| s.items.as_slice()).collect();
//! let device = Default::default();
//! let batch = next_item_batch::<NdArray>(&seqs, 20, &device);
//! assert_eq!(batch.inputs.dims(), [8, 20]);
//!
//! let task = data.classification_task(&SplitConfig::default()).unwrap();
//! let examples: Vec<_> = task.train.iter().take(4).collect();
//! let ft = finetune_batch::<NdArray>(&examples, 20, true, &device);
//! assert_eq!(ft.inputs.dims(), [4, 21]); // 20 items + CLS
//! assert_eq!(ft.labels.dims(), [4]);
//! ```
//!
//! Real data (read from a directory of the downloaded release, never bundled):
//!
//! ```no_run
//! use peterrec_data::movielens::{MovieLens, ProfileAttribute};
//! use peterrec_data::task::profile::{profile_bundle, ProfileTaskConfig};
//!
//! let ml = MovieLens::load_1m("data/ml-1m")?;
//! let bundle = profile_bundle(&ml, ProfileAttribute::Gender, &ProfileTaskConfig::default())?;
//! bundle.vocab.save_json("vocab.json")?;
//! println!("{} classes, {} training users", bundle.task.num_outputs(), bundle.task.train.len());
//! # Ok::<(), peterrec_data::DataError>(())
//! ```

#![warn(missing_docs)]

pub mod batch;
pub mod dataset;
pub mod error;
pub mod fs;
pub mod movielens;
pub mod readers;
pub mod sampler;
pub mod sequence;
pub mod split;
pub mod synthetic;
pub mod task;
pub mod vocab;

pub use batch::{FineTuneBatch, SeqBatch};
pub use dataset::{DataFormat, Dataset};
pub use error::{DataError, Result};
pub use sequence::{SequenceStats, UserSequence};
pub use task::{FineTuneExample, Task, TaskBundle, TaskKind};
pub use vocab::{Encoded, UnseenPolicy, Vocab, CLS, MASK, NUM_RESERVED, PAD, UNK};
