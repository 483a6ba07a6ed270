//! A directory of per-epoch checkpoints with atomic `last` and `best` pointers.
//!
//! [`CheckpointDir`] keeps one immutable directory per saved epoch plus two small pointer files,
//! `last.json` and `best.json`, each replaced atomically:
//!
//! ```text
//! run/
//!   epoch-000003/   model.mpk, optim.mpk, state.json, ... (whatever the trainer writes)
//!   epoch-000004/
//!   last.json       {"epoch":4,"dir":"epoch-000004"}
//!   best.json       {"epoch":3,"dir":"epoch-000003"}
//! ```
//!
//! An epoch directory is first filled under a temporary name (see [`CheckpointWriter`]) and
//! renamed into place only when complete, so a crash mid-save leaves the previous `last` and
//! `best` untouched. [`CheckpointDir::open`] removes the leftovers of an interrupted save.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::atomic::{
    clean_stale_temp_files, read_json, sync_dir, temp_path, write_json_atomic, TEMP_PREFIX,
};
use crate::error::{IoResultExt, Result, TrainError};

/// Content of the `last.json` / `best.json` pointer files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Pointer {
    epoch: usize,
    dir: String,
}

/// A committed checkpoint: its epoch and the directory holding its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The epoch it was saved at.
    pub epoch: usize,
    /// Its directory (inside the [`CheckpointDir`] root).
    pub dir: PathBuf,
}

impl Checkpoint {
    /// Path of the file `name` inside this checkpoint.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A directory of per-epoch checkpoints with atomic `last` and `best` pointers
/// (layout in the module documentation).
#[derive(Clone, Debug)]
pub struct CheckpointDir {
    root: PathBuf,
}

const LAST: &str = "last.json";
const BEST: &str = "best.json";
/// Marks the temporary name of a committed epoch directory being replaced by a new commit.
const REPLACED: &str = "replaced-";

/// Puts back every committed epoch directory that a commit moved aside to replace it but was
/// killed before the new one took its place (so `last`/`best` would point at nothing), before
/// [`clean_stale_temp_files`] would delete it.
fn restore_replaced(root: &Path) -> Result<()> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(TrainError::io(root, e)),
    };
    let mut restored = false;
    for entry in entries {
        let entry = entry.with_path(root)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
            continue;
        };
        let Some((_, epoch_dir)) = rest.split_once(REPLACED) else {
            continue;
        };
        let target = root.join(epoch_dir);
        if epoch_dir.starts_with("epoch-") && !target.exists() {
            fs::rename(entry.path(), &target).with_path(&target)?;
            restored = true;
        }
    }
    if restored {
        sync_dir(root)?;
    }
    Ok(())
}

impl CheckpointDir {
    /// Opens (creating it if needed) the checkpoint directory `root` and recovers from an
    /// interrupted save: a committed epoch directory that was being replaced is put back, and
    /// stale temporary files are removed. Only one writer may use a directory at a time.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        fs::create_dir_all(&root).with_path(&root)?;
        restore_replaced(&root)?;
        clean_stale_temp_files(&root)?;
        Ok(Self { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Name of the directory of `epoch` (`epoch-000007`).
    pub fn epoch_dir_name(epoch: usize) -> String {
        format!("epoch-{epoch:06}")
    }

    /// Path of the directory of `epoch` (which may not exist).
    pub fn epoch_dir(&self, epoch: usize) -> PathBuf {
        self.root.join(Self::epoch_dir_name(epoch))
    }

    /// Starts saving `epoch`: returns a writer whose staging directory receives the files.
    pub fn begin(&self, epoch: usize) -> Result<CheckpointWriter> {
        let staging = temp_path(&self.root, &Self::epoch_dir_name(epoch));
        fs::create_dir(&staging).with_path(&staging)?;
        Ok(CheckpointWriter {
            owner: self.clone(),
            epoch,
            staging,
            committed: false,
        })
    }

    /// Saves `files` (name, bytes) as the checkpoint of `epoch` and moves `last` (and `best`
    /// when `is_best`) to it. Shorthand for [`begin`](Self::begin), writes and
    /// [`commit`](CheckpointWriter::commit).
    pub fn save(&self, epoch: usize, files: &[(&str, &[u8])], is_best: bool) -> Result<Checkpoint> {
        let writer = self.begin(epoch)?;
        for (name, bytes) in files {
            writer.write(name, bytes)?;
        }
        writer.commit(is_best)
    }

    fn read_pointer(&self, name: &str) -> Result<Option<Checkpoint>> {
        let path = self.root.join(name);
        if !path.exists() {
            return Ok(None);
        }
        let ptr: Pointer = read_json(&path)?;
        let dir = self.root.join(&ptr.dir);
        if !dir.is_dir() {
            return Err(TrainError::checkpoint(
                &path,
                format!("points to missing directory {}", dir.display()),
            ));
        }
        Ok(Some(Checkpoint {
            epoch: ptr.epoch,
            dir,
        }))
    }

    fn write_pointer(&self, name: &str, epoch: usize) -> Result<()> {
        write_json_atomic(
            self.root.join(name),
            &Pointer {
                epoch,
                dir: Self::epoch_dir_name(epoch),
            },
        )
    }

    /// The most recently committed checkpoint, if any (what to resume from).
    pub fn last(&self) -> Result<Option<Checkpoint>> {
        self.read_pointer(LAST)
    }

    /// The checkpoint last committed with `is_best = true` (or set by
    /// [`set_best`](Self::set_best)), if any.
    pub fn best(&self) -> Result<Option<Checkpoint>> {
        self.read_pointer(BEST)
    }

    /// Points `best` at the existing checkpoint of `epoch`.
    pub fn set_best(&self, epoch: usize) -> Result<()> {
        let dir = self.epoch_dir(epoch);
        if !dir.is_dir() {
            return Err(TrainError::checkpoint(&dir, "no checkpoint for this epoch"));
        }
        self.write_pointer(BEST, epoch)
    }

    /// Epochs with a committed checkpoint directory, ascending.
    pub fn epochs(&self) -> Result<Vec<usize>> {
        let mut epochs = Vec::new();
        for entry in fs::read_dir(&self.root).with_path(&self.root)? {
            let entry = entry.with_path(&self.root)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(num) = name.strip_prefix("epoch-") {
                if let Ok(e) = num.parse::<usize>() {
                    if entry.path().is_dir() {
                        epochs.push(e);
                    }
                }
            }
        }
        epochs.sort_unstable();
        Ok(epochs)
    }

    /// Deletes epoch directories except `best`, `last` and the `keep_last` most recent epochs;
    /// returns the deleted epochs. Each directory is renamed to a temporary name before being
    /// deleted, so a half-deleted one never looks like a checkpoint.
    pub fn prune(&self, keep_last: usize) -> Result<Vec<usize>> {
        let epochs = self.epochs()?;
        let keep: Vec<usize> = [self.last()?, self.best()?]
            .into_iter()
            .flatten()
            .map(|c| c.epoch)
            .chain(epochs.iter().rev().take(keep_last).copied())
            .collect();
        let mut removed = Vec::new();
        for e in epochs {
            if keep.contains(&e) {
                continue;
            }
            let dir = self.epoch_dir(e);
            let trash = temp_path(&self.root, &Self::epoch_dir_name(e));
            fs::rename(&dir, &trash).with_path(&dir)?;
            fs::remove_dir_all(&trash).with_path(&trash)?;
            removed.push(e);
        }
        if !removed.is_empty() {
            sync_dir(&self.root)?;
        }
        Ok(removed)
    }
}

/// An epoch checkpoint being written; nothing is visible until [`commit`](Self::commit).
///
/// Files go into a staging directory ([`dir`](Self::dir)); Burn recorders can be pointed at
/// [`path`](Self::path) directly. Dropping the writer without committing deletes the staging
/// directory and leaves the checkpoint directory as it was.
#[derive(Debug)]
pub struct CheckpointWriter {
    owner: CheckpointDir,
    epoch: usize,
    staging: PathBuf,
    committed: bool,
}

impl CheckpointWriter {
    /// The epoch being saved.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// The staging directory.
    pub fn dir(&self) -> &Path {
        &self.staging
    }

    /// Path of the file `name` in the staging directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.staging.join(name)
    }

    /// Writes the file `name` with `bytes`.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let p = self.path(name);
        fs::write(&p, bytes).with_path(&p)
    }

    /// Writes the file `name` as pretty JSON.
    pub fn write_json<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<()> {
        let p = self.path(name);
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| TrainError::json(Some(&p), e))?;
        fs::write(&p, bytes).with_path(&p)
    }

    /// Makes the checkpoint durable and visible: flushes every staged file, renames the staging
    /// directory to `epoch-NNNNNN` (replacing an earlier checkpoint of the same epoch), then
    /// moves `last` to it, and `best` too when `is_best`.
    ///
    /// If an earlier checkpoint of this epoch was `best` and this one is not marked best, the
    /// `best` pointer is removed rather than left pointing at content it was not given for; it
    /// is removed before the content changes, so that not even a crash leaves it so.
    pub fn commit(mut self, is_best: bool) -> Result<Checkpoint> {
        for entry in fs::read_dir(&self.staging).with_path(&self.staging)? {
            let p = entry.with_path(&self.staging)?.path();
            if p.is_file() {
                File::open(&p).and_then(|f| f.sync_all()).with_path(&p)?;
            }
        }
        sync_dir(&self.staging)?;

        let root = self.owner.root.clone();
        let target = self.owner.epoch_dir(self.epoch);
        let mut trash = None;
        if target.exists() {
            // `best` must not point at the new content for a moment, even if we are killed:
            // drop it before the content changes, not after.
            if !is_best {
                if let Some(best) = self.owner.best()? {
                    if best.epoch == self.epoch {
                        let p = root.join(BEST);
                        fs::remove_file(&p).with_path(&p)?;
                        sync_dir(&root)?;
                    }
                }
            }
            // Moved aside under a name that `open` recognises: if we are killed before the
            // new directory is in place, `open` puts the old one back (see `restore_replaced`).
            let t = temp_path(
                &root,
                &format!("{REPLACED}{}", CheckpointDir::epoch_dir_name(self.epoch)),
            );
            fs::rename(&target, &t).with_path(&target)?;
            trash = Some(t);
        }
        fs::rename(&self.staging, &target).with_path(&target)?;
        self.committed = true;
        sync_dir(&root)?;

        self.owner.write_pointer(LAST, self.epoch)?;
        if is_best {
            self.owner.write_pointer(BEST, self.epoch)?;
        }
        if let Some(t) = trash {
            fs::remove_dir_all(&t).with_path(&t)?;
        }
        Ok(Checkpoint {
            epoch: self.epoch,
            dir: target,
        })
    }
}

impl Drop for CheckpointWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{temp_entries, TempDir};

    #[test]
    fn checkpoint_dir_tracks_best_and_last() {
        let t = TempDir::new("ckpt");
        let ck = CheckpointDir::open(t.path().join("run")).unwrap();
        assert_eq!(ck.last().unwrap(), None);
        assert_eq!(ck.best().unwrap(), None);
        assert!(ck.epochs().unwrap().is_empty());

        ck.save(1, &[("model.bin", b"m1")], true).unwrap();
        ck.save(2, &[("model.bin", b"m2")], false).unwrap();
        let c3 = ck.save(3, &[("model.bin", b"m3")], false).unwrap();
        assert_eq!(c3.epoch, 3);
        assert_eq!(fs::read(c3.file("model.bin")).unwrap(), b"m3");

        let last = ck.last().unwrap().unwrap();
        let best = ck.best().unwrap().unwrap();
        assert_eq!((last.epoch, best.epoch), (3, 1));
        assert_eq!(fs::read(best.file("model.bin")).unwrap(), b"m1");
        assert_eq!(ck.epochs().unwrap(), vec![1, 2, 3]);

        assert_eq!(ck.prune(1).unwrap(), vec![2]);
        assert_eq!(ck.epochs().unwrap(), vec![1, 3]);
        assert_eq!(ck.prune(0).unwrap(), Vec::<usize>::new());

        ck.set_best(3).unwrap();
        assert_eq!(ck.best().unwrap().unwrap().epoch, 3);
        assert!(ck.set_best(2).is_err());
        assert!(temp_entries(ck.root()).is_empty());
    }

    #[test]
    fn abandoned_writer_leaves_previous_checkpoint() {
        let t = TempDir::new("ckpt-abandon");
        let ck = CheckpointDir::open(t.path()).unwrap();
        ck.save(1, &[("model.bin", b"m1")], true).unwrap();
        {
            let w = ck.begin(2).unwrap();
            w.write("model.bin", b"partial").unwrap();
            w.write_json("state.json", &serde_json::json!({"epoch": 2}))
                .unwrap();
            assert!(w.path("model.bin").exists());
            // dropped without commit, as when the process errors out mid-save
        }
        assert_eq!(ck.last().unwrap().unwrap().epoch, 1);
        assert_eq!(ck.epochs().unwrap(), vec![1]);
        assert!(temp_entries(ck.root()).is_empty());
    }

    #[test]
    fn open_cleans_interrupted_save() {
        let t = TempDir::new("ckpt-crash");
        let ck = CheckpointDir::open(t.path()).unwrap();
        ck.save(1, &[("model.bin", b"m1")], false).unwrap();
        let w = ck.begin(2).unwrap();
        w.write("model.bin", b"partial").unwrap();
        std::mem::forget(w); // simulates a crash: no Drop runs
        assert_eq!(temp_entries(t.path()).len(), 1);
        let ck = CheckpointDir::open(t.path()).unwrap();
        assert!(temp_entries(t.path()).is_empty());
        assert_eq!(ck.last().unwrap().unwrap().epoch, 1);
        assert_eq!(ck.best().unwrap(), None);
    }

    #[test]
    fn recommitting_an_epoch_replaces_it() {
        let t = TempDir::new("ckpt-recommit");
        let ck = CheckpointDir::open(t.path()).unwrap();
        ck.save(1, &[("m", b"old")], true).unwrap();
        let c = ck.save(1, &[("m", b"new")], false).unwrap();
        assert_eq!(fs::read(c.file("m")).unwrap(), b"new");
        // the best pointer referred to the replaced content: dropped
        assert_eq!(ck.best().unwrap(), None);
        ck.save(1, &[("m", b"newer")], true).unwrap();
        assert_eq!(ck.best().unwrap().unwrap().epoch, 1);
        assert!(temp_entries(t.path()).is_empty());
    }

    #[test]
    fn open_restores_an_epoch_whose_replacement_was_interrupted() {
        let t = TempDir::new("ckpt-replace-crash");
        let ck = CheckpointDir::open(t.path()).unwrap();
        ck.save(1, &[("m", b"old")], true).unwrap();
        // A re-commit of epoch 1 killed between moving the old directory aside and renaming
        // the new one into place: `last` and `best` point at a directory that is not there.
        let w = ck.begin(1).unwrap();
        w.write("m", b"new").unwrap();
        let aside = temp_path(t.path(), &format!("{REPLACED}epoch-000001"));
        fs::rename(ck.epoch_dir(1), &aside).unwrap();
        std::mem::forget(w);
        assert!(ck.last().is_err());
        let ck = CheckpointDir::open(t.path()).unwrap();
        assert!(temp_entries(t.path()).is_empty());
        let last = ck.last().unwrap().unwrap();
        assert_eq!(fs::read(last.file("m")).unwrap(), b"old");
        assert_eq!(ck.best().unwrap().unwrap().epoch, 1);
        // Once the new directory is in place, the old one is only garbage.
        ck.save(1, &[("m", b"newer")], false).unwrap();
        fs::create_dir(temp_path(t.path(), &format!("{REPLACED}epoch-000001"))).unwrap();
        let ck = CheckpointDir::open(t.path()).unwrap();
        assert!(temp_entries(t.path()).is_empty());
        assert_eq!(
            fs::read(ck.last().unwrap().unwrap().file("m")).unwrap(),
            b"newer"
        );
    }

    #[test]
    fn dangling_pointer_is_reported() {
        let t = TempDir::new("ckpt-dangling");
        let ck = CheckpointDir::open(t.path()).unwrap();
        ck.save(4, &[("m", b"x")], true).unwrap();
        fs::remove_dir_all(ck.epoch_dir(4)).unwrap();
        let err = ck.last().unwrap_err();
        assert!(matches!(err, TrainError::Checkpoint { .. }), "{err}");
    }
}
