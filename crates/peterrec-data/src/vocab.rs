//! Item vocabulary: external ids (strings) to dense `u32` indices, with reserved tokens.
//!
//! Index layout (the embedding table of a model has [`Vocab::len`] rows):
//!
//! | index | token | meaning |
//! | --- | --- | --- |
//! | 0 | [`PAD`] | padding; never an item; ignored by losses |
//! | 1 | [`MASK`] | masked input (masked next-item and cloze objectives) |
//! | 2 | [`CLS`] | appended to a sequence for fine-tuning |
//! | 3 | [`UNK`] | an item not seen at pretraining ([`UnseenPolicy::Unk`]) |
//! | 4.. | items | in insertion order, from [`NUM_RESERVED`] |
//!
//! A vocabulary is built once from the pretraining data, saved as JSON next to the model, and
//! loaded again for fine-tuning and evaluation, so an external id maps to the same index in
//! every stage. [`Vocab::fingerprint`] lets a model check that it is used with the vocabulary it
//! was trained with. Items unseen at pretraining never get a wrong id: they become [`UNK`] or are
//! dropped, and [`Encoded::unseen`] counts them.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// Padding index; never an item.
pub const PAD: u32 = 0;
/// Masked input token.
pub const MASK: u32 = 1;
/// Classification token appended for fine-tuning.
pub const CLS: u32 = 2;
/// An item unseen at pretraining (with [`UnseenPolicy::Unk`]).
pub const UNK: u32 = 3;
/// Number of reserved indices; the first real item index.
pub const NUM_RESERVED: u32 = 4;
/// Names of the reserved tokens, by index (also written to the JSON file).
pub const RESERVED_NAMES: [&str; NUM_RESERVED as usize] = ["<pad>", "<mask>", "<cls>", "<unk>"];

const FORMAT: &str = "peterrec-vocab";
const VERSION: u32 = 1;

/// What to do with an item that is not in the vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum UnseenPolicy {
    /// Replace it by [`UNK`] (sequence length is kept).
    #[default]
    Unk,
    /// Remove it from the sequence.
    Drop,
}

/// Result of [`Vocab::encode`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encoded {
    /// Encoded indices (the unseen items replaced by [`UNK`] or dropped).
    pub ids: Vec<u32>,
    /// How many input ids were not in the vocabulary.
    pub unseen: usize,
}

/// Maps external item ids to dense indices `>= NUM_RESERVED`. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "VocabFile", into = "VocabFile")]
pub struct Vocab {
    items: Vec<String>,
    index: HashMap<String, u32>,
}

#[derive(Serialize, Deserialize)]
struct VocabFile {
    format: String,
    version: u32,
    reserved: Vec<String>,
    fingerprint: String,
    items: Vec<String>,
}

impl From<Vocab> for VocabFile {
    fn from(v: Vocab) -> Self {
        VocabFile {
            format: FORMAT.to_string(),
            version: VERSION,
            reserved: RESERVED_NAMES.iter().map(|s| s.to_string()).collect(),
            fingerprint: format!("{:016x}", v.fingerprint()),
            items: v.items,
        }
    }
}

impl TryFrom<VocabFile> for Vocab {
    type Error = DataError;

    fn try_from(f: VocabFile) -> Result<Self> {
        if f.format != FORMAT {
            return Err(DataError::InvalidVocab(format!(
                "format is {:?}, expected {FORMAT:?}",
                f.format
            )));
        }
        if f.version != VERSION {
            return Err(DataError::InvalidVocab(format!(
                "version {} is not supported (expected {VERSION})",
                f.version
            )));
        }
        if f.reserved != RESERVED_NAMES {
            return Err(DataError::InvalidVocab(format!(
                "reserved tokens are {:?}, expected {RESERVED_NAMES:?}",
                f.reserved
            )));
        }
        let mut vocab = Vocab::new();
        for (k, item) in f.items.into_iter().enumerate() {
            if vocab.index.contains_key(&item) {
                return Err(DataError::InvalidVocab(format!(
                    "item {item:?} appears twice (second time at position {k})"
                )));
            }
            vocab.insert_new(item)?;
        }
        let fp = format!("{:016x}", vocab.fingerprint());
        if fp != f.fingerprint {
            return Err(DataError::InvalidVocab(format!(
                "fingerprint {} does not match the items (computed {fp})",
                f.fingerprint
            )));
        }
        Ok(vocab)
    }
}

impl Vocab {
    /// An empty vocabulary (only the reserved tokens).
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a vocabulary from sequences of external ids, in order of first appearance.
    pub fn from_sequences<'a, S, I>(sequences: S) -> Self
    where
        S: IntoIterator<Item = I>,
        I: IntoIterator<Item = &'a str>,
    {
        let mut vocab = Vocab::new();
        for seq in sequences {
            for item in seq {
                vocab.insert(item);
            }
        }
        vocab
    }

    fn insert_new(&mut self, ext: String) -> Result<u32> {
        let idx = u32::try_from(self.items.len())
            .ok()
            .and_then(|n| n.checked_add(NUM_RESERVED))
            .ok_or_else(|| DataError::InvalidVocab("more than u32::MAX items".into()))?;
        self.index.insert(ext.clone(), idx);
        self.items.push(ext);
        Ok(idx)
    }

    /// Index of `ext`, inserting it as a new item if absent.
    ///
    /// # Panics
    /// Only if the vocabulary would exceed `u32::MAX - 4` items.
    pub fn insert(&mut self, ext: &str) -> u32 {
        if let Some(&idx) = self.index.get(ext) {
            return idx;
        }
        match self.insert_new(ext.to_string()) {
            Ok(idx) => idx,
            Err(e) => panic!("{e}"),
        }
    }

    /// Index of `ext`, if present.
    pub fn get(&self, ext: &str) -> Option<u32> {
        self.index.get(ext).copied()
    }

    /// External id of item index `idx`; `None` for reserved or out-of-range indices.
    pub fn external(&self, idx: u32) -> Option<&str> {
        let k = idx.checked_sub(NUM_RESERVED)? as usize;
        self.items.get(k).map(String::as_str)
    }

    /// Name of any index: the external id of an item, or `<pad>`/`<mask>`/`<cls>`/`<unk>`.
    pub fn token_name(&self, idx: u32) -> Option<&str> {
        if idx < NUM_RESERVED {
            Some(RESERVED_NAMES[idx as usize])
        } else {
            self.external(idx)
        }
    }

    /// Number of indices INCLUDING the reserved tokens: the size of an embedding table.
    pub fn len(&self) -> usize {
        self.items.len() + NUM_RESERVED as usize
    }

    /// `true` when the vocabulary holds no item (only reserved tokens).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Number of real items (`len() - NUM_RESERVED`).
    pub fn num_items(&self) -> usize {
        self.items.len()
    }

    /// `true` if `idx` is a real item index of this vocabulary.
    pub fn is_item(&self, idx: u32) -> bool {
        idx >= NUM_RESERVED && ((idx - NUM_RESERVED) as usize) < self.items.len()
    }

    /// External ids in index order (index `NUM_RESERVED + k` is `items()[k]`).
    pub fn items(&self) -> &[String] {
        &self.items
    }

    /// Encodes external ids, applying `policy` to ids not in the vocabulary.
    pub fn encode<'a>(
        &self,
        ext_ids: impl IntoIterator<Item = &'a str>,
        policy: UnseenPolicy,
    ) -> Encoded {
        let mut out = Encoded::default();
        for ext in ext_ids {
            match self.get(ext) {
                Some(idx) => out.ids.push(idx),
                None => {
                    out.unseen += 1;
                    if policy == UnseenPolicy::Unk {
                        out.ids.push(UNK);
                    }
                }
            }
        }
        out
    }

    /// Stable 64-bit content hash: FNV-1a over the reserved names and the items in index order,
    /// each followed by a `0xFF` separator byte (which never occurs in UTF-8).
    pub fn fingerprint(&self) -> u64 {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut h = OFFSET;
        let names = RESERVED_NAMES
            .iter()
            .copied()
            .chain(self.items.iter().map(String::as_str));
        for name in names {
            for &b in name.as_bytes().iter().chain(std::iter::once(&0xFF)) {
                h ^= u64::from(b);
                h = h.wrapping_mul(PRIME);
            }
        }
        h
    }

    /// Checks that this vocabulary has the `expected` fingerprint (e.g. the one stored with a
    /// model), so a model is never used with a vocabulary it was not trained with.
    pub fn check_fingerprint(&self, expected: u64) -> Result<()> {
        let actual = self.fingerprint();
        if actual != expected {
            return Err(DataError::InvalidVocab(format!(
                "fingerprint {actual:016x} differs from the expected {expected:016x}: this is not the vocabulary the model was trained with"
            )));
        }
        Ok(())
    }

    /// Writes the vocabulary as JSON, atomically ([`crate::fs::write_atomic`]: temporary file in
    /// the same directory, then rename), so a crash never leaves a truncated vocabulary behind;
    /// a temporary file left by a save that was killed is removed by the next save to the same
    /// path.
    pub fn save_json(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let json = serde_json::to_vec_pretty(self).map_err(|e| DataError::Json {
            path: path.to_path_buf(),
            source: e,
        })?;
        crate::fs::write_atomic_with(path, |w| {
            w.write_all(&json)?;
            w.write_all(b"\n")
        })
        .map_err(|e| DataError::io(path, e))
    }

    /// Reads a vocabulary written by [`Vocab::save_json`], validating it (format, reserved
    /// tokens, no duplicate item, fingerprint).
    pub fn load_json(path: impl AsRef<Path>) -> Result<Vocab> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        let file: VocabFile = serde_json::from_slice(&bytes).map_err(|e| DataError::Json {
            path: path.to_path_buf(),
            source: e,
        })?;
        Vocab::try_from(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("peterrec-vocab-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn reserved_layout() {
        assert_eq!((PAD, MASK, CLS, UNK, NUM_RESERVED), (0, 1, 2, 3, 4));
        let mut v = Vocab::new();
        assert!(v.is_empty());
        assert_eq!(v.len(), 4);
        assert_eq!(v.insert("a"), 4);
        assert_eq!(v.insert("b"), 5);
        assert_eq!(v.insert("a"), 4);
        assert_eq!(v.len(), 6);
        assert_eq!(v.num_items(), 2);
        assert_eq!(v.get("b"), Some(5));
        assert_eq!(v.get("c"), None);
        assert_eq!(v.external(5), Some("b"));
        assert_eq!(v.external(PAD), None);
        assert_eq!(v.external(6), None);
        assert_eq!(v.token_name(CLS), Some("<cls>"));
        assert!(v.is_item(4) && !v.is_item(3) && !v.is_item(6));
    }

    #[test]
    fn encode_policies_count_unseen() {
        let v = Vocab::from_sequences([vec!["x", "y"], vec!["y", "z"]]);
        assert_eq!(v.items(), ["x", "y", "z"]);
        let unk = v.encode(["y", "new", "x", "other"], UnseenPolicy::Unk);
        assert_eq!(unk.ids, vec![5, UNK, 4, UNK]);
        assert_eq!(unk.unseen, 2);
        let drop = v.encode(["y", "new", "x", "other"], UnseenPolicy::Drop);
        assert_eq!(drop.ids, vec![5, 4]);
        assert_eq!(drop.unseen, 2);
    }

    #[test]
    fn fingerprint_is_stable_and_order_sensitive() {
        let a = Vocab::from_sequences([["1", "2", "3"]]);
        let b = Vocab::from_sequences([["1", "2", "3"]]);
        let c = Vocab::from_sequences([["2", "1", "3"]]);
        let d = Vocab::from_sequences([["12", "3"]]);
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_ne!(a.fingerprint(), d.fingerprint());
        // Pinned value: changing the hash would silently invalidate saved models.
        assert_eq!(Vocab::new().fingerprint(), Vocab::new().fingerprint());
        assert_eq!(a.fingerprint(), 0xdba8_2be8_5e9b_8e0f);
        assert!(a.check_fingerprint(b.fingerprint()).is_ok());
        assert!(matches!(
            a.check_fingerprint(c.fingerprint()),
            Err(DataError::InvalidVocab(_))
        ));
    }

    #[test]
    fn json_round_trip_and_validation() {
        let dir = tmp_dir("json");
        let path = dir.join("vocab.json");
        let v = Vocab::from_sequences([vec!["b", "a", "ü"], vec!["c"]]);
        v.save_json(&path).unwrap();
        let w = Vocab::load_json(&path).unwrap();
        assert_eq!(v, w);
        assert_eq!(w.get("ü"), Some(6));
        assert_eq!(v.fingerprint(), w.fingerprint());
        // No temporary file left behind.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");

        let text = std::fs::read_to_string(&path).unwrap();
        let dup = text.replacen("\"c\"", "\"a\"", 1);
        std::fs::write(&path, dup).unwrap();
        let err = Vocab::load_json(&path).unwrap_err();
        assert!(matches!(err, DataError::InvalidVocab(_)), "{err}");

        let swapped = text.replacen("\"b\"", "\"x\"", 1);
        std::fs::write(&path, swapped).unwrap();
        let err = Vocab::load_json(&path).unwrap_err();
        assert!(err.to_string().contains("fingerprint"), "{err}");

        std::fs::write(&path, "{ not json").unwrap();
        assert!(matches!(
            Vocab::load_json(&path),
            Err(DataError::Json { .. })
        ));
        assert!(matches!(
            Vocab::load_json(dir.join("missing.json")),
            Err(DataError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
