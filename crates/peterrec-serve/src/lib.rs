//! Serving many fine-tuned tasks from one pretrained backbone.
//!
//! PeterRec's point is that one large backbone serves many tasks, each adding only a small task
//! file. A [`TaskServer`] loads the backbone once and any number of task files onto it (each
//! task shares the backbone's frozen tensors; only what its strategy trained is its own), and
//! answers [`TaskServer::recommend`] and [`TaskServer::classify`].
//!
//! [`TaskServer::answer`] takes a batch of requests for several tasks. Work that the tasks have
//! in common is done once: every task whose first blocks are the frozen backbone's (FineCLS: all
//! of them; FineLast-n: all but the last n) gets its hidden states from one shared pass over the
//! rows of all such requests, and runs only its own blocks and head on top. A PeterRec task
//! changes every block (patches, LayerNorms), and FineAll and Scratch change everything, so
//! their requests run through their own model, one pass per task. Every pass computes only the
//! positions that `[CLS]` depends on ([`peterrec_model::backbone::positions`]), shared blocks
//! included.
//!
//! Inputs are built exactly as in fine-tuning and evaluation: the most recent `max_len` items,
//! left-padded with PAD, then `[CLS]` (centred backbones: `[CLS]` at both ends).
//!
//! ```
//! use burn::backend::NdArray;
//! use peterrec_model::{FineTuneConfig, HeadKind, NextItNetConfig, Strategy};
//! use peterrec_serve::TaskServer;
//!
//! let device = Default::default();
//! let config = NextItNetConfig::new(50, 8, vec![1, 2]);
//! let backbone = config.init::<NdArray>(&device);
//! let gender = FineTuneConfig::new(Strategy::FineCls, HeadKind::Classifier { outputs: 2 })
//!     .init(backbone.clone(), &device)
//!     .unwrap();
//! let mut server = TaskServer::new(backbone, 20, device).unwrap();
//! server.add_task("gender", gender).unwrap();
//! let probabilities = server.classify(&[7, 9, 11], "gender").unwrap();
//! assert_eq!(probabilities.len(), 2);
//! ```

#![warn(missing_docs)]

mod error;
mod request;
mod server;

pub use error::{Result, ServeError};
pub use request::{Answer, BatchStats, Query, Request};
pub use server::TaskServer;
