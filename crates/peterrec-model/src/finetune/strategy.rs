//! The fine-tuning strategies: which parameters a run trains.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::block::Insertion;
use crate::error::{ModelError, Result as ModelResult};

/// Which parameters a fine-tuning run trains. The task head is always trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Strategy {
    /// PeterRec: frozen backbone; trains the model patches, every block's second LayerNorm and
    /// the head.
    PeterRec {
        /// Where the patches go.
        insertion: Insertion,
    },
    /// Everything.
    FineAll,
    /// The head only.
    FineCls,
    /// The last `n` residual blocks and the head.
    FineLast(usize),
    /// A randomly initialised backbone, everything trained (no transfer).
    Scratch,
}

impl Strategy {
    /// All strategies compared in the paper, in table order.
    pub fn all() -> Vec<Strategy> {
        vec![
            Strategy::PeterRec {
                insertion: Insertion::Serial,
            },
            Strategy::PeterRec {
                insertion: Insertion::Parallel,
            },
            Strategy::FineAll,
            Strategy::FineCls,
            Strategy::FineLast(1),
            Strategy::Scratch,
        ]
    }

    /// Whether the parameter at dotted path `name` (of a [`FineTuneModel`](crate::FineTuneModel)) is trained.
    pub fn is_trainable(&self, name: &str, num_blocks: usize) -> bool {
        if name.starts_with("head.") {
            return true;
        }
        let parts: Vec<&str> = name.split('.').collect();
        match *self {
            Strategy::FineAll | Strategy::Scratch => true,
            Strategy::FineCls => false,
            Strategy::PeterRec { .. } => parts.iter().any(|p| matches!(*p, "mp1" | "mp2" | "ln2")),
            Strategy::FineLast(n) => {
                parts.get(1) == Some(&"blocks")
                    && parts
                        .get(2)
                        .and_then(|i| i.parse::<usize>().ok())
                        .is_some_and(|i| i + n >= num_blocks)
            }
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::PeterRec { insertion } => match insertion {
                Insertion::Serial => write!(f, "peterrec-serial"),
                Insertion::Parallel => write!(f, "peterrec-parallel"),
                Insertion::SerialOne => write!(f, "peterrec-serial1"),
            },
            Strategy::FineAll => write!(f, "fineall"),
            Strategy::FineCls => write!(f, "finecls"),
            Strategy::FineLast(n) => write!(f, "finelast-{n}"),
            Strategy::Scratch => write!(f, "scratch"),
        }
    }
}

impl FromStr for Strategy {
    type Err = ModelError;

    /// Parses the names [`Display`](fmt::Display) prints (`peterrec` alone means serial).
    fn from_str(s: &str) -> ModelResult<Self> {
        let s = s.trim().to_ascii_lowercase();
        let peter = |insertion| Ok(Strategy::PeterRec { insertion });
        match s.as_str() {
            "peterrec" | "peterrec-serial" => peter(Insertion::Serial),
            "peterrec-parallel" => peter(Insertion::Parallel),
            "peterrec-serial1" => peter(Insertion::SerialOne),
            "fineall" => Ok(Strategy::FineAll),
            "finecls" => Ok(Strategy::FineCls),
            "scratch" => Ok(Strategy::Scratch),
            other => match other.strip_prefix("finelast-").map(str::parse::<usize>) {
                Some(Ok(n)) if n > 0 => Ok(Strategy::FineLast(n)),
                _ => Err(ModelError::InvalidConfig(format!(
                    "unknown strategy `{s}` (expected peterrec-serial, peterrec-parallel, \
                     peterrec-serial1, fineall, finecls, finelast-N or scratch)"
                ))),
            },
        }
    }
}
