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

/// Turns off mimalloc's purging of freed memory (`MIMALLOC_PURGE_DELAY=-1`). Only the first call
/// in a process does anything; make it before starting threads.
pub fn keep_freed_memory() {
    peterrec_kernels::alloc::keep_freed_memory();
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
