//! The global allocator of the training examples and benches: mimalloc, told never to hand freed
//! memory back to the OS.
//!
//! glibc malloc returns big buffers to the OS and faults them back in at every step; mimalloc keeps
//! them for a while (20-35% faster training steps), and with purging turned off it keeps them for
//! good: one ML-1M pretraining epoch (C=64, 8 blocks, rows of 200, Flex) took 101 s instead of
//! 129 s, the rest having gone to the kernel zeroing fresh pages (docs/benchmarks.md). The price is
//! that the resident size stays at its peak.
//!
//! Include with `#[path = "common/alloc.rs"] mod alloc;` and call [`keep_freed_memory`] first
//! thing in `main`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
