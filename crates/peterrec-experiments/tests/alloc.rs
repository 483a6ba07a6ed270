//! The allocator setting of the experiments, benches and examples (`peterrec_experiments::alloc`)
//! sets mimalloc's purge delay and nothing else: the option number it uses is the one mimalloc
//! reads as `purge_delay`.

peterrec_experiments::global_mimalloc!();

use peterrec_experiments::alloc;
use peterrec_kernels::alloc::{purge_delay, use_numa_nodes};

#[test]
fn keep_freed_memory_sets_the_purge_delay_and_nothing_else() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        eprintln!("MIMALLOC_PURGE_DELAY is set: skipped (this test checks mimalloc's default)");
        return;
    }
    let (before, numa_before) = (purge_delay(), use_numa_nodes());
    // mimalloc v3's default purge delay (milliseconds); no other option defaults to 1000.
    assert_eq!(before, 1000, "the option read is not purge_delay");
    alloc::keep_freed_memory();
    let (after, numa_after) = (purge_delay(), use_numa_nodes());
    assert_eq!(after, -1);
    // Its neighbour in the option list is untouched.
    assert_eq!(numa_after, numa_before);
    // Allocation still works after the change.
    let v: Vec<u64> = (0..1 << 20).collect();
    assert_eq!(v.iter().sum::<u64>(), (1u64 << 20) * ((1 << 20) - 1) / 2);
}
