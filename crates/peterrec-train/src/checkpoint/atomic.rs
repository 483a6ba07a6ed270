//! Atomic file writes: a reader sees either the old content of a file or the new one, never a
//! torn file. The writes are [`peterrec_data::fs`]'s, with the errors as [`TrainError`]s: the
//! bytes go to a temporary file in the same directory, which is flushed to disk (`fsync`),
//! renamed over the target, and the directory itself is flushed (on Unix) so the rename survives
//! a power loss. Temporary files carry the prefix [`TEMP_PREFIX`]; [`clean_stale_temp_files`]
//! removes leftovers.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::Path;

use peterrec_data::fs::is_temp_name;
pub(super) use peterrec_data::fs::temp_path;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{IoResultExt, Result, TrainError};

/// Prefix of every temporary file or directory this module creates.
pub use peterrec_data::fs::TEMP_PREFIX;

/// Flushes a directory entry to disk so that renames inside it are durable (no-op off Unix).
pub fn sync_dir(dir: &Path) -> Result<()> {
    peterrec_data::fs::sync_dir(dir).with_path(dir)
}

/// Writes `bytes` to `path` atomically (see the module documentation).
///
/// The parent directory must exist. On error the previous content of `path`, if any, is
/// untouched and no temporary file is left behind.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    peterrec_data::fs::write_atomic(path, bytes).with_path(path)
}

/// Like [`write_atomic`], but the content is produced by `write`, which streams into a
/// buffered temporary file (e.g. `|w| serde_json::to_writer(w, &value).map_err(Into::into)`).
///
/// If `write` fails, the temporary file is removed, `path` keeps its previous content, and the
/// error is returned with the path of the target.
pub fn write_atomic_with<F>(path: impl AsRef<Path>, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
{
    let path = path.as_ref();
    peterrec_data::fs::write_atomic_with(path, write).with_path(path)
}

/// Serialises `value` as pretty JSON into `path` atomically.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: impl AsRef<Path>, value: &T) -> Result<()> {
    let path = path.as_ref();
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| TrainError::json(Some(path), e))?;
    write_atomic(path, &bytes)
}

/// Reads a JSON file written by [`write_json_atomic`] (or any JSON file).
pub fn read_json<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<T> {
    let path = path.as_ref();
    let bytes = fs::read(path).with_path(path)?;
    serde_json::from_slice(&bytes).map_err(|e| TrainError::json(Some(path), e))
}

/// Removes every temporary file or directory (name starting with [`TEMP_PREFIX`]) directly
/// inside `dir`, and returns how many were removed. A missing `dir` removes nothing.
///
/// Do not call it while another writer is saving into the same directory.
pub fn clean_stale_temp_files(dir: impl AsRef<Path>) -> Result<usize> {
    let dir = dir.as_ref();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(TrainError::io(dir, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.with_path(dir)?;
        if !is_temp_name(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let p = entry.path();
        let is_dir = entry.file_type().with_path(&p)?.is_dir();
        if is_dir {
            fs::remove_dir_all(&p).with_path(&p)?;
        } else {
            fs::remove_file(&p).with_path(&p)?;
        }
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{temp_entries, TempDir};
    use std::io::Write;

    #[test]
    fn write_atomic_creates_and_replaces() {
        let t = TempDir::new("atomic");
        let p = t.path().join("a.bin");
        write_atomic(&p, b"one").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"two, longer").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two, longer");
        assert!(temp_entries(t.path()).is_empty());
    }

    #[test]
    fn failed_write_keeps_previous_file() {
        let t = TempDir::new("atomic-fail");
        let p = t.path().join("model.bin");
        write_atomic(&p, b"good").unwrap();
        let err = write_atomic_with(&p, |w| {
            w.write_all(b"half a reco")?;
            Err(std::io::Error::other("serialiser blew up"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("model.bin"), "{err}");
        assert!(err.to_string().contains("serialiser blew up"), "{err}");
        assert_eq!(fs::read(&p).unwrap(), b"good");
        assert!(temp_entries(t.path()).is_empty());
    }

    #[test]
    fn write_into_missing_dir_is_an_error() {
        let t = TempDir::new("atomic-missing");
        let p = t.path().join("nope").join("x.bin");
        let err = write_atomic(&p, b"x").unwrap_err();
        assert!(matches!(err, TrainError::Io { .. }));
        assert!(write_atomic(t.path().join(".."), b"x").is_err());
    }

    #[test]
    fn json_round_trip() {
        let t = TempDir::new("json");
        let p = t.path().join("state.json");
        write_json_atomic(&p, &vec![1u32, 2, 3]).unwrap();
        let v: Vec<u32> = read_json(&p).unwrap();
        assert_eq!(v, vec![1, 2, 3]);
        fs::write(&p, b"{").unwrap();
        assert!(matches!(
            read_json::<Vec<u32>>(&p).unwrap_err(),
            TrainError::Json { .. }
        ));
    }

    #[test]
    fn stale_temp_files_are_cleaned() {
        let t = TempDir::new("stale");
        fs::write(t.path().join(format!("{TEMP_PREFIX}1-0-model.bin")), b"x").unwrap();
        fs::create_dir(t.path().join(format!("{TEMP_PREFIX}1-1-epoch-000001"))).unwrap();
        fs::write(
            t.path().join(format!("{TEMP_PREFIX}1-1-epoch-000001/f")),
            b"x",
        )
        .unwrap();
        fs::write(t.path().join("keep.bin"), b"x").unwrap();
        assert_eq!(clean_stale_temp_files(t.path()).unwrap(), 2);
        assert!(temp_entries(t.path()).is_empty());
        assert!(t.path().join("keep.bin").exists());
        assert_eq!(clean_stale_temp_files(t.path().join("absent")).unwrap(), 0);
    }
}
