//! mimalloc as the global allocator, told never to hand freed memory back to the OS.
//!
//! Training allocates and frees large buffers every step. glibc's malloc returns them to the OS
//! and page-faults them in again at the next step; mimalloc keeps them for a while, and with
//! purging turned off it keeps them for good, so no step pays for the kernel zeroing fresh pages
//! (the figures are in `docs/benchmarks.md`). The price is a resident size that stays at its peak.
//!
//! A binary installs it with [`global_mimalloc!`](crate::global_mimalloc) at its root and calls
//! [`keep_freed_memory`] first thing in `main`. The library itself installs no allocator, so a
//! program that only uses, say, [`crate::bench`] keeps the allocator it chose.

pub use mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the mimalloc sources that `libmimalloc-sys` 0.1.49 builds (15 in
/// both its v2 and v3 headers; the crate exports no constant for it). `tests/alloc.rs` checks it.
pub const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Turns off mimalloc's purging of freed memory (`MIMALLOC_PURGE_DELAY=-1`). Only the first call
/// in a process does anything; make it before starting threads.
pub fn keep_freed_memory() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `mi_option_set` stores the value of a valid option number; it is not
        // synchronised with other threads setting options, which `Once` rules out here and
        // nothing else in these programs does.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
    });
}

/// Declares mimalloc the global allocator of the crate it is expanded in (once, at the root of a
/// binary, bench or test).
#[macro_export]
macro_rules! global_mimalloc {
    () => {
        #[global_allocator]
        static GLOBAL: $crate::alloc::MiMalloc = $crate::alloc::MiMalloc;
    };
}
