//! One error type for programs that use several crates of the workspace.

use crate::data::DataError;
use crate::model::ModelError;
use crate::serve::ServeError;
use crate::train::TrainError;

/// Any error of peterrec: each crate's own error, kept whole, so a program can still match on
/// the structured variants (a file and line of bad data, a backbone mismatch, a divergence).
///
/// `?` converts each crate's error into this one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading, encoding, splitting or batching data ([`peterrec_data`]).
    #[error(transparent)]
    Data(#[from] DataError),
    /// Building, running, saving or loading a model ([`peterrec_model`]).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Training, evaluation, checkpoints and devices ([`peterrec_train`]).
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Answering requests ([`peterrec_serve`]).
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// `Result` with [`Error`] as its default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
