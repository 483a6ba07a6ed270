//! Safe wrappers over the mimalloc options the examples and benches set (feature `mimalloc`).
//!
//! glibc malloc returns big buffers to the OS and faults them back in at every training step;
//! mimalloc keeps them for a while, and with purging turned off it keeps them for good, at the
//! price of a resident size that stays at its peak.

use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t, mi_option_use_numa_nodes};

/// `mi_option_purge_delay` in the mimalloc sources that `libmimalloc-sys` 0.1.49 builds (15 in
/// both its v2 and v3 headers; the crate exports no constant for it).
const PURGE_DELAY: mi_option_t = 15;

/// Turns off mimalloc's purging of freed memory (`MIMALLOC_PURGE_DELAY=-1`). Only the first call
/// in a process does anything; make it before starting threads.
pub fn keep_freed_memory() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `mi_option_set` stores the value of a valid option number; it is not
        // synchronised with other threads setting options, which `Once` rules out here and
        // nothing else in this workspace does.
        unsafe { mi_option_set(PURGE_DELAY, -1) }
    });
}

/// mimalloc's purge delay in milliseconds (−1: never purge).
pub fn purge_delay() -> std::ffi::c_long {
    // SAFETY: reading a valid option number has no precondition.
    unsafe { mi_option_get(PURGE_DELAY) }
}

/// mimalloc's `use_numa_nodes` option, the neighbour of the purge delay in its option list.
pub fn use_numa_nodes() -> std::ffi::c_long {
    // SAFETY: reading a valid option number has no precondition.
    unsafe { mi_option_get(mi_option_use_numa_nodes) }
}
