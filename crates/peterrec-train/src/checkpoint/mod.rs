//! Crash-safe checkpoints.
//!
//! * [`write_atomic`] / [`write_atomic_with`] write a file so that a reader sees either the old
//!   content or the new one, never a torn file.
//! * [`CheckpointDir`] keeps one immutable directory per saved epoch plus atomic `last` and
//!   `best` pointers; a crash mid-save leaves the previous checkpoints untouched.
//! * [`save_epoch`] / [`load_last`] save and restore a training loop's full state
//!   ([`LoopState`], the model and the optimizer) in such a directory, so that a run resumes
//!   exactly where it stopped.
//!
//! Temporary files and directories carry the prefix [`TEMP_PREFIX`];
//! [`clean_stale_temp_files`] (called by [`CheckpointDir::open`]) removes leftovers.

mod atomic;
mod dir;
mod resume;

pub use atomic::{
    clean_stale_temp_files, read_json, sync_dir, write_atomic, write_atomic_with,
    write_json_atomic, TEMP_PREFIX,
};
pub use dir::{Checkpoint, CheckpointDir, CheckpointWriter};
pub use resume::{load_last, save_epoch, LoopState, Restored};
