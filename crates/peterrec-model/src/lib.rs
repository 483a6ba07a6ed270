//! # peterrec-model
//!
//! The model side of PeterRec (Yuan et al., SIGIR 2020) on the NextItNet backbone (Yuan et al.,
//! WSDM 2019), generic over any Burn backend.
//!
//! - [`NextItNet`]: item embedding → residual blocks of dilated causal (or centred) convolutions;
//!   [`NextItNet::forward_at`] computes only the positions some outputs depend on
//!   ([`positions`]), which `[CLS]` user vectors and next-item scores use.
//! - [`NextItNetLM`]: the backbone with its pretraining softmax head, whose output weight is its
//!   own or the item embedding table (tied, [`NextItNetConfig::init_lm_with`]); next-item,
//!   masked next-item and cloze objectives, full or sampled softmax.
//! - [`ModelPatch`] and [`Insertion`]: PeterRec's bottleneck adapters, serial or parallel.
//! - [`FineTuneModel`] and [`Strategy`]: `[CLS]` user vectors, task heads, and the strategies
//!   PeterRec, FineAll, FineCLS, FineLast-n and Scratch with real freezing.
//! - [`ParamReport`]: parameter accounting; [`persist`]: backbone and task files.
//! - [`FusedAdamConfig`]: Adam with its update fused into one pass per parameter on the CPU
//!   backends (Burn's Adam, with the same values, elsewhere).
//! - [`StreamModel`] and [`StreamState`]: streaming inference, one step per layer for each
//!   appended item.
//! - [`linear_cross_entropy`], [`table_cross_entropy`], [`layer_norm_relu`]: the fused
//!   operations the heads and blocks use, on host buffers on the CPU backends (their kernels are
//!   `peterrec_kernels`'), Burn's tensor operations elsewhere; [`top_k`]: top-k of score rows.
//!
//! ```
//! use burn::backend::NdArray;
//! use peterrec_model::{FineTuneConfig, HeadKind, Insertion, NextItNetConfig, ParamReport, Strategy};
//!
//! let device = Default::default();
//! let config = NextItNetConfig::new(1_000, 32, vec![1, 2, 1, 2]);
//! let backbone = config.init::<NdArray>(&device);
//! let task = FineTuneConfig::new(
//!     Strategy::PeterRec { insertion: Insertion::Serial },
//!     HeadKind::Classifier { outputs: 2 },
//! )
//! .init(backbone, &device)
//! .unwrap();
//! let report = ParamReport::of(&task);
//! assert!(report.trainable * 10 < report.total);
//! ```

#![warn(missing_docs)]

pub mod backbone;
pub mod error;
pub mod finetune;
pub mod io;
pub mod nn;
mod ops;
pub mod params;
pub mod pretrain;
pub mod rank;
pub mod sampled;
pub mod stream;

// Short crate-internal paths to the modules that moved into folders.
pub(crate) use backbone::positions;
pub(crate) use io::{hash, interchange, paths, persist};
pub(crate) use nn::{block, conv, head, init, patch};
pub(crate) use pretrain::{lm, loss};

pub use backbone::{NextItNet, NextItNetConfig, MAX_CONV_PADDING};
pub use block::{Insertion, ResidualBlock, ResidualBlockConfig};
pub use conv::{DilatedConv1d, DilatedConv1dConfig};
pub use error::{ModelError, Result};
pub use finetune::{FineTuneConfig, FineTuneModel, Strategy, TaskMeta};
pub use head::{HeadKind, SoftmaxHead, SoftmaxHeadConfig, TaskHead};
pub use interchange::{
    export_backbone, export_pretrained, export_task, import_backbone, import_pretrained,
    import_task, PortConfig, PortFile,
};
pub use lm::NextItNetLM;
pub use loss::LossOutput;
pub use ops::adam::{FusedAdam, FusedAdamConfig};
pub use ops::cross_entropy::{
    linear_cross_entropy, linear_cross_entropy_in_chunks, table_cross_entropy, CHUNK_ELEMENTS,
};
pub use ops::norm_relu::layer_norm_relu;
pub use params::{ParamGroup, ParamReport};
pub use patch::{ModelPatch, ModelPatchConfig, PatchInit};
pub use persist::{content_hash, load_backbone, load_pretrained, save_backbone, save_pretrained};
pub use positions::PositionPlan;
pub use rank::{top_k, top_k_rows};
pub use sampled::{NegativeDistribution, NegativeSampler};
pub use stream::{StreamModel, StreamState};
