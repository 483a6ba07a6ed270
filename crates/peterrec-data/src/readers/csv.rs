//! Generic interaction files: `user,item[,timestamp]` as CSV or TSV.
//!
//! One interaction per line. The delimiter is a single character (`,` or tab by default when
//! reading a path, chosen by [`CsvOptions::for_path`]); fields are trimmed; quoting is not
//! supported. Every line must have the same number of fields (2, or 3 with a timestamp), the
//! timestamp must be a non-negative integer, and user and item must be non-empty. An optional
//! header line can be skipped with [`CsvOptions::has_header`].

use burn::config::Config;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::sequences::RawSequence;
use super::{open, Encoding, Lines, Records};
use crate::error::Result;
use crate::sequence::chronological;

/// One interaction of a generic CSV/TSV file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Interaction {
    /// User id.
    pub user: String,
    /// Item id.
    pub item: String,
    /// Unix timestamp (or any ordering key), when the file has a third column.
    pub timestamp: Option<u64>,
}

/// How to read a generic interaction file.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub struct CsvOptions {
    /// Field delimiter. Default `,`.
    #[config(default = "','")]
    pub delimiter: char,
    /// Skip the first data line (a header such as `user,item,timestamp`). Default `false`.
    #[config(default = false)]
    pub has_header: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvOptions {
    /// Tab as delimiter for `.tsv`/`.tab` files, comma otherwise; no header.
    pub fn for_path(path: &Path) -> Self {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let delimiter = match ext.as_deref() {
            Some("tsv") | Some("tab") => '\t',
            _ => ',',
        };
        CsvOptions {
            delimiter,
            has_header: false,
        }
    }

    /// Sets [`CsvOptions::has_header`].
    pub fn with_header(mut self, has_header: bool) -> Self {
        self.has_header = has_header;
        self
    }
}

/// Streams the interactions of a generic CSV/TSV file (UTF-8).
pub fn interactions<R: BufRead>(
    reader: R,
    file: impl Into<PathBuf>,
    options: CsvOptions,
) -> impl Iterator<Item = Result<Interaction>> {
    let mut expected: Option<usize> = None;
    let mut skip_header = options.has_header;
    let records = Records::new(Lines::new(reader, file, Encoding::Utf8), move |line| {
        if skip_header {
            skip_header = false;
            return Ok(None);
        }
        let fields: Vec<&str> = line.text.split(options.delimiter).map(str::trim).collect();
        let n = fields.len();
        if !(2..=3).contains(&n) {
            return Err(line.error(format!(
                "expected 2 or 3 fields (user, item[, timestamp]) separated by {:?}, found {n}",
                options.delimiter
            )));
        }
        match expected {
            None => expected = Some(n),
            Some(e) if e != n => {
                return Err(line.error(format!(
                    "found {n} fields but earlier lines have {e} (timestamps must be all present or all absent)"
                )))
            }
            Some(_) => {}
        }
        if fields[0].is_empty() {
            return Err(line.error("empty user id"));
        }
        if fields[1].is_empty() {
            return Err(line.error("empty item id"));
        }
        let timestamp = match fields.get(2) {
            Some(t) => Some(line.parse_u64("timestamp", t)?),
            None => None,
        };
        Ok(Some(Interaction {
            user: fields[0].to_string(),
            item: fields[1].to_string(),
            timestamp,
        }))
    });
    records.filter_map(Result::transpose)
}

/// Groups interactions into per-user sequences: chronological by timestamp with ties (and files
/// without timestamps) in file order; users in order of first appearance.
pub fn group_by_user(events: Vec<Interaction>) -> Vec<RawSequence> {
    chronological(
        events
            .into_iter()
            .map(|e| (e.user, e.item, e.timestamp.unwrap_or(0))),
    )
    .into_iter()
    .map(|(user, items)| RawSequence { user, items })
    .collect()
}

/// Reads a whole generic CSV/TSV file with [`CsvOptions::for_path`].
pub fn read_interactions(path: impl AsRef<Path>) -> Result<Vec<Interaction>> {
    let path = path.as_ref();
    interactions(open(path)?, path, CsvOptions::for_path(path)).collect()
}

/// Reads a whole generic CSV/TSV file with explicit options.
pub fn read_interactions_with(
    path: impl AsRef<Path>,
    options: CsvOptions,
) -> Result<Vec<Interaction>> {
    let path = path.as_ref();
    interactions(open(path)?, path, options).collect()
}
