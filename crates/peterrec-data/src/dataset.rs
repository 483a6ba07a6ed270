//! One entry point for every supported data set: [`DataFormat`] names the format and
//! [`Dataset::load`] reads it into a vocabulary and encoded item sequences.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::error::{DataError, Result};
use crate::movielens::MovieLens;
use crate::readers::peterrec::read_pretrain_file;
use crate::readers::sequences::read_sequence_file;
use crate::sequence::{build_vocab_and_encode, UserSequence};
use crate::task::demo::DEMO_PRETRAIN_FILE;
use crate::vocab::Vocab;

/// The formats [`Dataset::load`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataFormat {
    /// A MovieLens 1M directory (`ratings.dat`, `users.dat`, `movies.dat`).
    Ml1m,
    /// A MovieLens 100K directory (`u.data`, `u.user`, `u.item`).
    Ml100k,
    /// A sequence file, one user per line: `user item item ...`, oldest first.
    Sequences,
    /// The original PeterRec pretraining CSV, or a directory holding the demo pretraining file.
    Peterrec,
}

impl DataFormat {
    /// Every format, in the order of the documentation.
    pub const ALL: [DataFormat; 4] = [
        DataFormat::Ml1m,
        DataFormat::Ml100k,
        DataFormat::Sequences,
        DataFormat::Peterrec,
    ];

    /// The name used on command lines and in results: `ml-1m`, `ml-100k`, `sequences`,
    /// `peterrec`.
    pub fn name(self) -> &'static str {
        match self {
            DataFormat::Ml1m => "ml-1m",
            DataFormat::Ml100k => "ml-100k",
            DataFormat::Sequences => "sequences",
            DataFormat::Peterrec => "peterrec",
        }
    }
}

impl fmt::Display for DataFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DataFormat {
    type Err = DataError;

    /// Parses a name of [`DataFormat::name`].
    fn from_str(s: &str) -> Result<Self> {
        DataFormat::ALL
            .into_iter()
            .find(|f| f.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                DataError::InvalidConfig(format!(
                    "unknown data format `{s}` (expected ml-1m, ml-100k, sequences or peterrec)"
                ))
            })
    }
}

/// A data set read for pretraining: its name, its vocabulary and every user's encoded item
/// sequence, oldest first.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The data set's name (`ml-1m`, or the file's stem).
    pub name: String,
    /// The vocabulary, reserved tokens first.
    pub vocab: Vocab,
    /// One encoded sequence per user.
    pub sequences: Vec<UserSequence>,
}

impl Dataset {
    /// Reads the data set at `path` in `format`. MovieLens users with fewer than `min_len`
    /// ratings are left out; the other formats keep every line.
    pub fn load(format: DataFormat, path: impl AsRef<Path>, min_len: usize) -> Result<Self> {
        let path = path.as_ref();
        let (name, (vocab, sequences)) = match format {
            DataFormat::Ml1m | DataFormat::Ml100k => {
                let ml = if format == DataFormat::Ml1m {
                    MovieLens::load_1m(path)?
                } else {
                    MovieLens::load_100k(path)?
                };
                (ml.name().to_string(), ml.pretraining(min_len))
            }
            DataFormat::Sequences => {
                let raw = read_sequence_file(path)?;
                let encoded = build_vocab_and_encode(
                    raw.iter().map(|s| (s.user.clone(), s.items.as_slice())),
                );
                (file_stem(path), encoded)
            }
            DataFormat::Peterrec => {
                let file = if path.is_dir() {
                    path.join(DEMO_PRETRAIN_FILE)
                } else {
                    path.to_path_buf()
                };
                let raw = read_pretrain_file(&file)?;
                let encoded = build_vocab_and_encode(
                    raw.iter().map(|s| (s.line.to_string(), s.items.as_slice())),
                );
                (file_stem(&file), encoded)
            }
        };
        Ok(Dataset {
            name,
            vocab,
            sequences,
        })
    }
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip_and_unknown_names_are_typed_errors() {
        for f in DataFormat::ALL {
            assert_eq!(f.name().parse::<DataFormat>().unwrap(), f);
        }
        assert_eq!(" ML-1M ".parse::<DataFormat>().unwrap(), DataFormat::Ml1m);
        assert!(matches!(
            "ml-20m".parse::<DataFormat>(),
            Err(DataError::InvalidConfig(_))
        ));
    }

    #[test]
    fn a_sequence_file_loads_with_its_stem_as_name() {
        let dir = std::env::temp_dir().join(format!("peterrec-dataset-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tiny.txt");
        std::fs::write(&path, "u1 a b c\nu2 b c\n").unwrap();
        let data = Dataset::load(DataFormat::Sequences, &path, 1).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(data.name, "tiny");
        assert_eq!(data.sequences.len(), 2);
        assert_eq!(data.vocab.num_items(), 3);
        assert_eq!(data.sequences[0].items.len(), 3);
    }
}
