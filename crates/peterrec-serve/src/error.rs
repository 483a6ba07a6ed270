//! The crate's error type.

/// Everything that can go wrong while loading tasks or answering requests.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Building, loading or checking the backbone or a task file failed (the model crate's
    /// error, which names the file where there is one).
    #[error(transparent)]
    Model(#[from] peterrec_model::ModelError),

    /// A server setting is invalid (a zero `max_len`), or a task was built on another backbone.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A request cannot be answered: an unknown task, a history token outside the vocabulary, a
    /// classification asked of a recommendation task, or the reverse.
    #[error("bad request: {0}")]
    Request(String),

    /// The scores could not be read back from the device.
    #[error("reading scores: {0}")]
    Scores(String),
}

/// Shorthand for `Result<T, ServeError>`.
pub type Result<T, E = ServeError> = std::result::Result<T, E>;
