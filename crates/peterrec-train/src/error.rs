//! The crate's error type.
//!
//! It imports nothing from the rest of the crate but the device-string parse error, so that every
//! module can use it without an import loop.

use std::path::{Path, PathBuf};

/// Everything that can go wrong while training, evaluating or saving.
///
/// Every variant that concerns a file carries its path, so that a message
/// printed to the user says which file failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// An I/O operation on `path` failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory the operation was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// (De)serialising JSON failed; `path` is the file concerned, when there is one.
    #[error("JSON error{}: {source}", path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    Json {
        /// The file being read or written, if any.
        path: Option<PathBuf>,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },

    /// The training loss became NaN or infinite.
    #[error("training diverged at epoch {epoch}, step {step}: loss = {loss}")]
    Divergence {
        /// Epoch in which the bad loss was seen.
        epoch: usize,
        /// Step (batch index within the epoch) at which it was seen.
        step: usize,
        /// The offending loss value (NaN or ±inf).
        loss: f64,
    },

    /// The requested device exists in principle but cannot be used here.
    #[error("device {device} is unavailable: {reason}")]
    DeviceUnavailable {
        /// The device that was asked for, e.g. `cuda:1`.
        device: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// CUDA was asked for but this binary was built without the `cuda` feature.
    #[error(
        "device {device} requested, but this binary was built without CUDA support: \
         rebuild with `--features cuda`"
    )]
    CudaNotCompiled {
        /// The device that was asked for, e.g. `cuda:0`.
        device: String,
    },

    /// `flex` was asked for but this build has no `Flex` backend.
    #[error(
        "device `flex` asked for, but this build has no Flex backend: \
         rebuild with `--features flex`"
    )]
    FlexNotCompiled,

    /// A device string could not be parsed.
    #[error(transparent)]
    InvalidDevice(#[from] crate::device::choice::ParseDeviceError),

    /// A Burn recorder failed to save or load a record.
    #[error("record error{}: {source}", path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    Record {
        /// The file being read or written, if known.
        path: Option<PathBuf>,
        /// The underlying error.
        #[source]
        source: burn::record::RecorderError,
    },

    /// A checkpoint directory is missing something or is inconsistent.
    #[error("checkpoint error in {}: {reason}", path.display())]
    Checkpoint {
        /// The checkpoint directory or file concerned.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A configuration value is invalid (e.g. zero batch size).
    #[error("invalid configuration: {0}")]
    Config(String),

    /// Reading or preparing data failed (the data crate's error, which names the file and
    /// line where there is one).
    #[error(transparent)]
    Data(#[from] peterrec_data::DataError),

    /// The examples given to a loop are unusable: an empty training split, an item outside the
    /// backbone's vocabulary, a label outside the head's outputs.
    #[error("unusable input: {0}")]
    Input(String),

    /// Building, loading or saving a model failed (the model crate's error, which names the
    /// file where there is one).
    #[error(transparent)]
    Model(#[from] peterrec_model::ModelError),
}

/// Shorthand for `Result<T, TrainError>`.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

impl TrainError {
    /// Wraps an [`std::io::Error`] with the path it concerns.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// Wraps a [`serde_json::Error`] with the file it concerns, if any.
    pub fn json(path: Option<&Path>, source: serde_json::Error) -> Self {
        TrainError::Json {
            path: path.map(Path::to_path_buf),
            source,
        }
    }

    /// Wraps a Burn [`RecorderError`](burn::record::RecorderError) with the file it concerns, if any.
    pub fn record(path: Option<&Path>, source: burn::record::RecorderError) -> Self {
        TrainError::Record {
            path: path.map(Path::to_path_buf),
            source,
        }
    }

    /// Builds a [`TrainError::Checkpoint`].
    pub fn checkpoint(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        TrainError::Checkpoint {
            path: path.as_ref().to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Adds the path to an I/O result: `fs::read(p).with_path(p)?`.
pub(crate) trait IoResultExt<T> {
    /// Converts an `io::Result` into a [`Result`] whose error names `path`.
    fn with_path(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoResultExt<T> for std::io::Result<T> {
    fn with_path(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| TrainError::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_error_names_the_path() {
        let err = std::fs::read("/definitely/not/here.bin")
            .with_path("/definitely/not/here.bin")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/definitely/not/here.bin"), "{msg}");
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn divergence_message() {
        let err = TrainError::Divergence {
            epoch: 3,
            step: 17,
            loss: f64::NAN,
        };
        assert_eq!(
            err.to_string(),
            "training diverged at epoch 3, step 17: loss = NaN"
        );
    }

    #[test]
    fn json_error_with_and_without_path() {
        let e = serde_json::from_str::<u32>("x").unwrap_err();
        let with = TrainError::json(Some(Path::new("a.json")), e);
        assert!(with.to_string().starts_with("JSON error in a.json: "));
        let e = serde_json::from_str::<u32>("x").unwrap_err();
        let without = TrainError::json(None, e);
        assert!(without.to_string().starts_with("JSON error: "));
    }

    #[test]
    fn data_and_model_errors_keep_their_structure() {
        let e: TrainError = peterrec_data::DataError::InvalidConfig("bad split".into()).into();
        assert!(matches!(
            e,
            TrainError::Data(peterrec_data::DataError::InvalidConfig(_))
        ));
        assert_eq!(e.to_string(), "invalid configuration: bad split");
        let e: TrainError = peterrec_model::ModelError::InvalidConfig("no blocks".into()).into();
        assert!(matches!(
            e,
            TrainError::Model(peterrec_model::ModelError::InvalidConfig(_))
        ));
    }

    #[test]
    fn a_device_parse_error_converts_and_names_the_string() {
        let parse = "gpu0".parse::<crate::device::choice::DeviceChoice>();
        let err: TrainError = parse.unwrap_err().into();
        assert!(matches!(err, TrainError::InvalidDevice(_)));
        assert!(err.to_string().contains("gpu0"));
    }

    #[test]
    fn cuda_not_compiled_mentions_feature() {
        let err = TrainError::CudaNotCompiled {
            device: "cuda:0".into(),
        };
        assert!(err.to_string().contains("--features cuda"));
    }
}
