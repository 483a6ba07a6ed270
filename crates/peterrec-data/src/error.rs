//! The crate's single error type.

use std::path::PathBuf;

/// Everything that can go wrong in `peterrec-data`.
///
/// Parse errors always name the file, the 1-based line number and what was wrong, so a
/// message such as `ratings.dat:17: user id 'x1' is not a non-negative integer` points
/// straight at the offending line. No function of this crate panics on malformed user data:
/// every such case is one of these variants.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A line of a data file is malformed.
    #[error("{}:{line}: {reason}", file.display())]
    Parse {
        /// The file being read (or a label such as `<memory>` for in-memory input).
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong with the line.
        reason: String,
    },

    /// A line is longer than the reader's limit ([`crate::readers::MAX_LINE_LEN`] by default).
    /// Reading stops at the limit, so an over-long line (a binary file, a missing newline)
    /// never costs more memory than the limit.
    #[error("{}:{line}: line is longer than {max} bytes (is this a binary file or a file without newlines?)", file.display())]
    LineTooLong {
        /// The file being read.
        file: PathBuf,
        /// 1-based line number of the over-long line.
        line: usize,
        /// The limit in bytes.
        max: usize,
    },

    /// A file holds no data line at all (it is empty or only blank lines).
    #[error("{}: file is empty (no data lines)", file.display())]
    EmptyFile {
        /// The empty file.
        file: PathBuf,
    },

    /// A JSON file (for example a saved vocabulary) could not be (de)serialized.
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// The underlying serde_json error.
        #[source]
        source: serde_json::Error,
    },

    /// A saved vocabulary is inconsistent (duplicate id, wrong reserved tokens, …).
    #[error("invalid vocabulary: {0}")]
    InvalidVocab(String),

    /// Two data sets that must agree do not (for example a user with ratings but no profile).
    #[error("inconsistent data: {0}")]
    Inconsistent(String),

    /// A configuration value is out of range (for example split fractions above 1).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

impl DataError {
    /// Builds a [`DataError::Parse`].
    pub fn parse(file: impl Into<PathBuf>, line: usize, reason: impl Into<String>) -> Self {
        DataError::Parse {
            file: file.into(),
            line,
            reason: reason.into(),
        }
    }

    /// Builds a [`DataError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    /// The 1-based line number of a parse error or an over-long line, `None` for other variants.
    pub fn line(&self) -> Option<usize> {
        match self {
            DataError::Parse { line, .. } | DataError::LineTooLong { line, .. } => Some(*line),
            _ => None,
        }
    }
}

/// Shorthand for `std::result::Result<T, DataError>`.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
