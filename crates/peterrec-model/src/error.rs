//! The model crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong when building, saving or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A configuration that cannot describe a working network.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid model file (bad container, missing metadata, unparsable config).
    #[error("{path}: not a valid peterrec {kind} file: {reason}")]
    Format {
        /// The file involved.
        path: PathBuf,
        /// `backbone` or `task`.
        kind: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The file was written by a newer or unknown format version.
    #[error(
        "{path}: format version {found} is not supported (this build reads version {supported})"
    )]
    Version {
        /// The file involved.
        path: PathBuf,
        /// Version found in the file.
        found: String,
        /// Version this build reads.
        supported: u32,
    },
    /// The stored checksum does not match the stored tensors: the file is corrupt.
    #[error("{path}: checksum mismatch (stored {stored:016x}, computed {computed:016x}): the file is corrupt")]
    Checksum {
        /// The file involved.
        path: PathBuf,
        /// Checksum written in the file.
        stored: u64,
        /// Checksum of the bytes read.
        computed: u64,
    },
    /// A task file was trained on another backbone.
    #[error("{path}: task was fine-tuned on a different backbone: {what} differs (task expects {expected}, backbone has {found})")]
    BackboneMismatch {
        /// The task file.
        path: PathBuf,
        /// Which property differs (`config`, `content hash`, ...).
        what: String,
        /// Value recorded in the task file.
        expected: String,
        /// Value of the backbone it was loaded onto.
        found: String,
    },
    /// A tensor expected by the model is absent from the file, or has another shape.
    #[error("{path}: tensor `{name}`: {reason}")]
    Tensor {
        /// The file involved.
        path: PathBuf,
        /// Tensor name (module path).
        name: String,
        /// What was wrong.
        reason: String,
    },
}

/// Result alias of the model crate.
pub type Result<T> = std::result::Result<T, ModelError>;
