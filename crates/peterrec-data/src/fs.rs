//! Crash-safe file writes, shared by everything peterrec saves (vocabularies, model files,
//! checkpoints).
//!
//! [`write_atomic`] and [`write_atomic_with`] write a file so that a reader sees either its old
//! content or the new one, never a torn file: the bytes go to a temporary file in the same
//! directory ([`temp_path`]), which is flushed to disk (`fsync`), renamed over the target, and
//! the directory itself is flushed ([`sync_dir`], on Unix) so that the rename survives a power
//! loss. On error the temporary file is removed and the target keeps its previous content.
//!
//! Every temporary name starts with [`TEMP_PREFIX`] (see [`is_temp_name`]), so a directory can
//! be cleaned of the leftovers of interrupted saves wholesale. Without such a cleaning, a write
//! removes the temporary files that writers killed while saving the same target left behind (those
//! of other processes), so repeated crashes never accumulate them: one writer per target file.
//!
//! Errors are plain [`std::io::Error`]s; callers add the path to their own error type.
//!
//! ```
//! let dir = std::env::temp_dir().join(format!("peterrec-fs-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("state.json");
//! peterrec_data::fs::write_atomic(&path, b"{}")?;
//! peterrec_data::fs::write_atomic_with(&path, |w| std::io::Write::write_all(w, b"[]"))?;
//! assert_eq!(std::fs::read(&path)?, b"[]");
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of every temporary file or directory made by [`temp_path`].
pub const TEMP_PREFIX: &str = ".peterrec-tmp-";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary name in `dir` for a file or directory whose final name is `final_name`:
/// `{TEMP_PREFIX}{process id}-{counter}-{final_name}`, unique within the process.
pub fn temp_path(dir: &Path, final_name: &str) -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(
        "{TEMP_PREFIX}{}-{n}-{final_name}",
        std::process::id()
    ))
}

/// `true` for a name made by [`temp_path`].
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// The process id and the final name of a temporary name made by [`temp_path`].
fn parse_temp_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(TEMP_PREFIX)?;
    let (pid, rest) = rest.split_once('-')?;
    let (n, final_name) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(pid) && digits(n)).then_some((pid, final_name))
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Flushes a directory entry to disk so that renames inside it are durable (no-op off Unix).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes `bytes` to `path` atomically (see the [module docs](self)).
///
/// The parent directory must exist. On error the previous content of `path`, if any, is
/// untouched and no temporary file is left behind.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Like [`write_atomic`], but the content is produced by `write`, which streams into a
/// buffered temporary file (e.g. `|w| serde_json::to_writer(w, &value).map_err(Into::into)`).
///
/// If `write` fails, the temporary file is removed, `path` keeps its previous content, and
/// `write`'s error is returned.
pub fn write_atomic_with<F>(path: impl AsRef<Path>, write: F) -> io::Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> io::Result<()>,
{
    let path = path.as_ref();
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
        .to_string_lossy()
        .into_owned();
    let dir = parent_dir(path);
    remove_stale_temps(&dir, &name);
    let tmp = temp_path(&dir, &name);

    let result = (|| -> io::Result<()> {
        let file = File::options().write(true).create_new(true).open(&tmp)?;
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(&dir)
}

/// Removes the temporary files for `final_name` in `dir` that other processes (writers killed
/// mid-save) left behind. Best effort: a file that cannot be removed is left.
fn remove_stale_temps(dir: &Path, final_name: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let own = std::process::id().to_string();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, target)) = name.to_str().and_then(parse_temp_name) else {
            continue;
        };
        if target == final_name && pid != own && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let p = std::env::temp_dir()
                .join(format!("peterrec-data-fs-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_and_replaces_without_leftovers() {
        let t = TempDir::new("replace");
        let p = t.0.join("a.bin");
        write_atomic(&p, b"one").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"two, longer").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two, longer");
        assert_eq!(names(&t.0), vec!["a.bin"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let t = TempDir::new("fail");
        let p = t.0.join("model.bin");
        write_atomic(&p, b"good").unwrap();
        let err = write_atomic_with(&p, |w| {
            w.write_all(b"half a reco")?;
            Err(io::Error::other("serialiser blew up"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("serialiser blew up"), "{err}");
        assert_eq!(fs::read(&p).unwrap(), b"good");
        assert_eq!(names(&t.0), vec!["model.bin"]);
        assert!(write_atomic(t.0.join("missing").join("x"), b"x").is_err());
        assert!(write_atomic(t.0.join(".."), b"x").is_err());
        assert_eq!(names(&t.0), vec!["model.bin"]);
    }

    #[test]
    fn leftovers_of_killed_writers_are_removed_by_the_next_write() {
        let t = TempDir::new("stale");
        let other = |n: u32, name: &str| format!("{TEMP_PREFIX}{}-{n}-{name}", u32::MAX);
        for name in [other(0, "v.json"), other(1, "v.json"), other(2, "w.json")] {
            fs::write(t.0.join(name), b"torn").unwrap();
        }
        fs::create_dir(t.0.join(other(3, "v.json"))).unwrap();
        // Not temporary names of ours: kept.
        fs::write(t.0.join(format!("{TEMP_PREFIX}x-0-v.json")), b"x").unwrap();
        fs::write(t.0.join(".v.json.tmp-1"), b"x").unwrap();
        write_atomic(t.0.join("v.json"), b"new").unwrap();
        let mut want = vec![
            other(2, "w.json"),
            other(3, "v.json"),
            format!("{TEMP_PREFIX}x-0-v.json"),
            ".v.json.tmp-1".to_string(),
            "v.json".to_string(),
        ];
        want.sort();
        assert_eq!(names(&t.0), want);
    }

    #[test]
    fn temp_names_are_unique_and_recognised() {
        let dir = Path::new("d");
        let a = temp_path(dir, "f");
        let b = temp_path(dir, "f");
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(is_temp_name(name));
        let pid = std::process::id().to_string();
        assert_eq!(parse_temp_name(name), Some((pid.as_str(), "f")));
        assert!(!is_temp_name("f"));
        assert_eq!(
            parse_temp_name(&format!("{TEMP_PREFIX}1-2-a-b")),
            Some(("1", "a-b"))
        );
        assert_eq!(parse_temp_name(&format!("{TEMP_PREFIX}1-a-b")), None);
    }
}
