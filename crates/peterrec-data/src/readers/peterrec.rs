//! The original PeterRec CSV files.
//!
//! - Pretraining: one user per line, comma-separated item tokens, oldest first, left-padded with
//!   the token `0`. `0` is padding, never an item: it is removed wherever it appears.
//! - Fine-tuning: `<sequence>,,<target1>,<target2>,...`: the sequence as above, an empty field,
//!   then one or more targets. Each target is a separate fine-tuning example for that sequence.
//!
//! Tokens are kept as strings (vocabulary keys). A line whose sequence is only padding is an
//! error (an "empty user"), as is an empty token inside the sequence or the target list, and a
//! fine-tuning line without `,,`.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::{open, Encoding, Line, Lines, Records};
use crate::error::Result;

/// The padding token of the original PeterRec files.
pub const PETERREC_PAD_TOKEN: &str = "0";

/// One pretraining line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeterRecSequence {
    /// 1-based line number in the file (the file has no user ids; this identifies the user).
    pub line: usize,
    /// Item tokens, oldest first, padding removed.
    pub items: Vec<String>,
}

/// One fine-tuning line: a sequence and its targets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeterRecFineTuneLine {
    /// 1-based line number in the file.
    pub line: usize,
    /// Item tokens, oldest first, padding removed.
    pub items: Vec<String>,
    /// Target tokens, in file order; each one is a fine-tuning example.
    pub targets: Vec<String>,
}

fn sequence_tokens(line: &Line<'_>, text: &str) -> Result<Vec<String>> {
    let mut items = Vec::new();
    for (k, token) in text.split(',').enumerate() {
        let token = token.trim();
        if token.is_empty() {
            return Err(line.error(format!(
                "empty token at position {} of the sequence (a fine-tuning line? those are read with the fine-tuning reader)",
                k + 1
            )));
        }
        if token != PETERREC_PAD_TOKEN {
            items.push(token.to_string());
        }
    }
    if items.is_empty() {
        return Err(line.error("empty user: the sequence holds only padding tokens `0`"));
    }
    Ok(items)
}

/// Streams a pretraining file (UTF-8).
pub fn pretrain_file<R: BufRead>(
    reader: R,
    file: impl Into<PathBuf>,
) -> impl Iterator<Item = Result<PeterRecSequence>> {
    Records::new(Lines::new(reader, file, Encoding::Utf8), |line| {
        let items = sequence_tokens(&line, line.text)?;
        Ok(PeterRecSequence {
            line: line.number,
            items,
        })
    })
}

/// Streams a fine-tuning file (UTF-8).
pub fn finetune_file<R: BufRead>(
    reader: R,
    file: impl Into<PathBuf>,
) -> impl Iterator<Item = Result<PeterRecFineTuneLine>> {
    Records::new(Lines::new(reader, file, Encoding::Utf8), |line| {
        let Some((seq, targets)) = line.text.split_once(",,") else {
            return Err(
                line.error("fine-tuning line has no `,,` separating the sequence from its targets")
            );
        };
        let items = sequence_tokens(&line, seq)?;
        let mut out = Vec::new();
        for (k, t) in targets.split(',').enumerate() {
            let t = t.trim();
            if t.is_empty() {
                return Err(line.error(format!("empty target at position {} after `,,`", k + 1)));
            }
            out.push(t.to_string());
        }
        Ok(PeterRecFineTuneLine {
            line: line.number,
            items,
            targets: out,
        })
    })
}

/// Reads a whole pretraining file.
pub fn read_pretrain_file(path: impl AsRef<Path>) -> Result<Vec<PeterRecSequence>> {
    let path = path.as_ref();
    pretrain_file(open(path)?, path).collect()
}

/// Reads a whole fine-tuning file.
pub fn read_finetune_file(path: impl AsRef<Path>) -> Result<Vec<PeterRecFineTuneLine>> {
    let path = path.as_ref();
    finetune_file(open(path)?, path).collect()
}
