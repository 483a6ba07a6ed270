//! Sequence files: one user per line, `user item item ...`, whitespace-separated, oldest first.
//!
//! This is the format of the Amazon (Beauty, Sports_and_Outdoors, Toys_and_Games), Yelp and
//! LastFM files in `$PETERREC_DATA/amazon`, which are already 5-core filtered and time ordered.
//! Ids are kept as strings (they become vocabulary keys); a line with a user but no item is an
//! error (an "empty user"), and so is a user on a second line (a "duplicate user": the file has
//! one line per user, and merging two lines would have to guess their order).

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::{open, Encoding, Lines, Records};
use crate::error::Result;

/// One line of a sequence file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawSequence {
    /// User id (first field).
    pub user: String,
    /// Item ids, oldest first.
    pub items: Vec<String>,
}

/// Streams the lines of a sequence file as [`RawSequence`]s (UTF-8).
pub fn sequence_file<R: BufRead>(
    reader: R,
    file: impl Into<PathBuf>,
) -> impl Iterator<Item = Result<RawSequence>> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    Records::new(Lines::new(reader, file, Encoding::Utf8), move |line| {
        let mut fields = line.text.split_whitespace();
        // The line is not blank (blank lines are skipped), so there is a first field.
        let user = fields.next().unwrap_or_default().to_string();
        let items: Vec<String> = fields.map(str::to_string).collect();
        if items.is_empty() {
            return Err(line.error(format!(
                "empty user: user {user:?} has no items (expected `user item item ...`)"
            )));
        }
        if let Some(first) = seen.get(&user) {
            return Err(line.error(format!(
                "duplicate user: user {user:?} already has a sequence on line {first} (one line per user)"
            )));
        }
        seen.insert(user.clone(), line.number);
        Ok(RawSequence { user, items })
    })
}

/// Reads a whole sequence file.
pub fn read_sequence_file(path: impl AsRef<Path>) -> Result<Vec<RawSequence>> {
    let path = path.as_ref();
    sequence_file(open(path)?, path).collect()
}
