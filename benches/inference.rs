//! Top-10 next items for a batch of users and for a single user, at shapes A and B.
//! `cargo bench --bench inference`.

// mimalloc, keeping freed memory (faster steps; see `peterrec_experiments::alloc`).
peterrec_experiments::global_mimalloc!();

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use peterrec::train::Cpu;
use peterrec_experiments::bench::{InferStep, SHAPE_A, SHAPE_B};

fn inference(c: &mut Criterion) {
    peterrec_experiments::alloc::keep_freed_memory();
    let device = Default::default();
    for shape in [SHAPE_A, SHAPE_B] {
        let mut group = c.benchmark_group(format!("inference/{}", shape.name));
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(5));
        for (name, users) in [("batch", shape.batch), ("single-user", 1)] {
            let mut step = InferStep::<Cpu>::new(shape, users, &device);
            group.bench_function(name, |b| b.iter(|| step.run(&device)));
        }
        group.finish();
    }
}

criterion_group!(benches, inference);
criterion_main!(benches);
