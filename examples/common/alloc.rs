//! The global allocator of the examples: mimalloc, told never to hand freed memory back to the OS
//! (faster training steps; see `peterrec_experiments::alloc`).
//!
//! Include with `#[path = "common/alloc.rs"] mod alloc;` and call [`keep_freed_memory`] first
//! thing in `main`.

peterrec_experiments::global_mimalloc!();

pub use peterrec_experiments::alloc::keep_freed_memory;
