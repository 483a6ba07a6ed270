//! Streaming readers for the supported file formats.
//!
//! Every reader works on any [`BufRead`] (a file, a `&[u8]` in a test, …) plus a name used in
//! error messages, and yields typed records one line at a time, so files of any size are read
//! in constant memory. Convenience `read_*` functions open a path and collect everything.
//!
//! Common rules for all formats:
//! - lines end in `\n` or `\r\n`; blank (whitespace-only) lines are skipped; a carriage return
//!   anywhere else in a non-blank line is a parse error (CR-only line endings would otherwise
//!   run lines together);
//! - a file without any data line is [`DataError::EmptyFile`];
//! - a NUL byte anywhere is rejected as a bad byte (a binary file was passed by mistake);
//! - a line longer than [`MAX_LINE_LEN`] bytes (16 MiB; see [`Lines::with_max_line_len`]) is
//!   [`DataError::LineTooLong`]: reading stops at the limit, so memory stays bounded even on a
//!   file without newlines;
//! - MovieLens files are decoded as Latin-1 (every byte is a character), all other formats
//!   must be UTF-8; a UTF-8 byte-order mark at the start of the file is ignored (any format),
//!   one at the start of a later line is a parse error (files were concatenated);
//! - every malformed line is a [`DataError::Parse`] naming the file, the line and the reason.
//!
//! | module | format |
//! | --- | --- |
//! | [`movielens`] | ML-1M `ratings.dat`/`users.dat`/`movies.dat`, ML-100K `u.data`/`u.user`/`u.item` |
//! | [`sequences`] | one user per line: `user item item ...` (Amazon, Yelp, LastFM files) |
//! | [`csv`] | generic `user,item[,timestamp]` CSV or TSV |
//! | [`peterrec`] | the original PeterRec pretraining and fine-tuning CSVs |

pub mod csv;
pub mod movielens;
pub mod peterrec;
pub mod sequences;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// Default longest line a reader accepts, in bytes (without the line terminator): 16 MiB.
pub const MAX_LINE_LEN: usize = 16 << 20;

/// Text encoding of a data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Strict UTF-8: invalid byte sequences are parse errors.
    Utf8,
    /// ISO-8859-1: every byte maps to the Unicode code point of the same value.
    Latin1,
}

/// Opens `path` for buffered reading, mapping failures to [`DataError::Io`].
pub fn open(path: &Path) -> Result<BufReader<File>> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    Ok(BufReader::with_capacity(1 << 16, file))
}

/// One decoded data line, borrowed from a [`Lines`] reader.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// The file the line comes from.
    pub file: &'a Path,
    /// 1-based line number.
    pub number: usize,
    /// The decoded text, without the line terminator.
    pub text: &'a str,
}

impl Line<'_> {
    /// A [`DataError::Parse`] for this line.
    pub fn error(&self, reason: impl Into<String>) -> DataError {
        DataError::parse(self.file, self.number, reason)
    }

    /// Parses a required unsigned 32-bit integer field; `what` names the field in errors.
    pub fn parse_u32(&self, what: &str, field: &str) -> Result<u32> {
        parse_int::<u32>(field, what, "u32").map_err(|r| self.error(r))
    }

    /// Parses a required unsigned 64-bit integer field; `what` names the field in errors.
    pub fn parse_u64(&self, what: &str, field: &str) -> Result<u64> {
        parse_int::<u64>(field, what, "u64").map_err(|r| self.error(r))
    }

    /// Splits the line on `sep` into exactly `N` fields.
    pub fn fields<const N: usize>(&self, sep: &str) -> Result<[&str; N]> {
        let mut out = [""; N];
        let mut count = 0usize;
        for (i, field) in self.text.split(sep).enumerate() {
            if i < N {
                out[i] = field;
            }
            count += 1;
        }
        if count != N {
            return Err(self.error(format!(
                "expected {N} fields separated by {sep:?}, found {count}"
            )));
        }
        Ok(out)
    }
}

/// Parses a decimal unsigned integer (no sign, surrounding whitespace allowed). Hand-written
/// rather than `str::parse` so that reading is fast even in unoptimized test builds.
fn parse_int<T: TryFrom<u64>>(field: &str, what: &str, ty: &str) -> std::result::Result<T, String> {
    let field = field.trim();
    if field.is_empty() {
        return Err(format!("{what} is empty"));
    }
    let mut value: u64 = 0;
    let mut overflow = false;
    for &b in field.as_bytes() {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return Err(format!("{what} {field:?} is not a non-negative integer"));
        }
        match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
    }
    match T::try_from(value) {
        Ok(v) if !overflow => Ok(v),
        _ => Err(format!(
            "{what} {field} is too large (does not fit in {ty})"
        )),
    }
}

/// Reads a file line by line, decoding and numbering lines and skipping blank ones.
///
/// This is a lending reader (each [`Line`] borrows the reader's buffer), so it is not an
/// [`Iterator`]; the typed readers built on it are.
#[derive(Debug)]
pub struct Lines<R> {
    reader: R,
    file: PathBuf,
    encoding: Encoding,
    bytes: Vec<u8>,
    text: String,
    number: usize,
    data_lines: usize,
    finished: bool,
    max_line_len: usize,
}

impl<R: BufRead> Lines<R> {
    /// Wraps `reader`; `file` is used in error messages.
    pub fn new(reader: R, file: impl Into<PathBuf>, encoding: Encoding) -> Self {
        Lines {
            reader,
            file: file.into(),
            encoding,
            bytes: Vec::with_capacity(256),
            text: String::with_capacity(256),
            number: 0,
            data_lines: 0,
            finished: false,
            max_line_len: MAX_LINE_LEN,
        }
    }

    /// Sets the longest accepted line, in bytes without the terminator (default
    /// [`MAX_LINE_LEN`]); a longer line is [`DataError::LineTooLong`].
    pub fn with_max_line_len(mut self, max: usize) -> Self {
        self.max_line_len = max;
        self
    }

    /// Reads one line (terminator included) into `self.bytes`, but at most `max_line_len + 2`
    /// bytes (room for `\r\n`): a longer line is cut there, and never held whole in memory.
    fn read_line_capped(&mut self) -> std::io::Result<()> {
        let cap = self.max_line_len.saturating_add(2);
        loop {
            let available = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok(());
            }
            let room = cap - self.bytes.len();
            let (take, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) if i < room => (i + 1, true),
                _ => (available.len().min(room), false),
            };
            self.bytes.extend_from_slice(&available[..take]);
            self.reader.consume(take);
            if done || self.bytes.len() >= cap {
                return Ok(());
            }
        }
    }

    /// The file name used in error messages.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Number of non-blank lines returned so far.
    pub fn data_lines(&self) -> usize {
        self.data_lines
    }

    /// The next non-blank line; `None` at the end of the input. An input without any data line
    /// yields one [`DataError::EmptyFile`] before `None`. After an error, reading stops.
    pub fn next_line(&mut self) -> Option<Result<Line<'_>>> {
        if self.finished {
            return None;
        }
        loop {
            self.bytes.clear();
            match self.read_line_capped() {
                Ok(()) if self.bytes.is_empty() => {
                    self.finished = true;
                    if self.data_lines == 0 {
                        return Some(Err(DataError::EmptyFile {
                            file: self.file.clone(),
                        }));
                    }
                    return None;
                }
                Ok(()) => {}
                Err(e) => {
                    self.finished = true;
                    return Some(Err(DataError::io(&self.file, e)));
                }
            }
            self.number += 1;
            let mut end = self.bytes.len();
            if end > 0 && self.bytes[end - 1] == b'\n' {
                end -= 1;
            }
            if end > 0 && self.bytes[end - 1] == b'\r' {
                end -= 1;
            }
            if end > self.max_line_len {
                self.finished = true;
                self.bytes = Vec::new(); // give the (up to max_line_len) buffer back
                return Some(Err(DataError::LineTooLong {
                    file: self.file.clone(),
                    line: self.number,
                    max: self.max_line_len,
                }));
            }
            let mut start = 0;
            if self.number == 1 && self.bytes[..end].starts_with(&[0xEF, 0xBB, 0xBF]) {
                start = 3;
            }
            let raw = &self.bytes[start..end];
            if raw.starts_with(&[0xEF, 0xBB, 0xBF]) {
                self.finished = true;
                return Some(Err(DataError::parse(
                    &self.file,
                    self.number,
                    "byte-order mark inside the file: only its very first bytes may be one (were files concatenated?)",
                )));
            }
            if raw.contains(&0) {
                let pos = raw.iter().position(|&b| b == 0).unwrap_or(0);
                self.finished = true;
                return Some(Err(DataError::parse(
                    &self.file,
                    self.number,
                    format!("bad byte: NUL at byte {} (is this a binary file?)", pos + 1),
                )));
            }
            if raw.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            if let Some(pos) = raw.iter().position(|&b| b == b'\r') {
                self.finished = true;
                return Some(Err(DataError::parse(
                    &self.file,
                    self.number,
                    format!(
                        "bad byte: carriage return at byte {} inside the line (lines must end in \\n or \\r\\n; CR-only line endings are not supported)",
                        pos + 1
                    ),
                )));
            }
            self.text.clear();
            match self.encoding {
                Encoding::Utf8 => match std::str::from_utf8(raw) {
                    Ok(s) => self.text.push_str(s),
                    Err(e) => {
                        self.finished = true;
                        return Some(Err(DataError::parse(
                            &self.file,
                            self.number,
                            format!(
                                "bad bytes: invalid UTF-8 at byte {} (expected UTF-8 text)",
                                e.valid_up_to() + 1
                            ),
                        )));
                    }
                },
                Encoding::Latin1 => {
                    if raw.is_ascii() {
                        // ASCII is valid UTF-8 and identical in Latin-1.
                        self.text
                            .push_str(std::str::from_utf8(raw).unwrap_or_default());
                    } else {
                        self.text.extend(raw.iter().map(|&b| char::from(b)));
                    }
                }
            }
            self.data_lines += 1;
            return Some(Ok(Line {
                file: &self.file,
                number: self.number,
                text: &self.text,
            }));
        }
    }

    /// Marks the reader as finished (used by typed readers after an error).
    pub(crate) fn stop(&mut self) {
        self.finished = true;
    }
}

/// Drives a [`Lines`] reader through a per-line parser, as an [`Iterator`] of records.
///
/// After the first error the iterator ends, so `collect::<Result<Vec<_>>>()` reports exactly
/// the first problem.
#[derive(Debug)]
pub struct Records<R, F> {
    lines: Lines<R>,
    parse: F,
}

impl<R, F> Records<R, F> {
    /// Wraps `lines`, parsing every data line with `parse`.
    pub fn new<T>(lines: Lines<R>, parse: F) -> Self
    where
        F: FnMut(Line<'_>) -> Result<T>,
    {
        Records { lines, parse }
    }
}

impl<R: BufRead, T, F: FnMut(Line<'_>) -> Result<T>> Iterator for Records<R, F> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        let result = match self.lines.next_line()? {
            Ok(line) => (self.parse)(line),
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.lines.stop();
        }
        Some(result)
    }
}
