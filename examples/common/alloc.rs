//! The global allocator of the training examples and benches: mimalloc, told never to hand freed
//! memory back to the OS.
//!
//! glibc malloc returns big buffers to the OS and faults them back in at every step; mimalloc keeps
//! them for a while, and with purging turned off it keeps them for good (faster training steps,
//! the time otherwise going to the kernel zeroing fresh pages; docs/benchmarks.md has the
//! measurements). The price is that the resident size stays at its peak.
//!
//! Include with `#[path = "common/alloc.rs"] mod alloc;` and call [`keep_freed_memory`] first
//! thing in `main`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns off mimalloc's purging of freed memory (`MIMALLOC_PURGE_DELAY=-1`). Only the first call
/// in a process does anything; make it before starting threads.
pub fn keep_freed_memory() {
    peterrec_kernels::alloc::keep_freed_memory();
}
