//! One pretraining step (forward, loss, backward, Adam) with the full softmax head and with the
//! sampled-softmax head (1,024 log-uniform negatives), at shapes A and B.
//! `cargo bench --bench pretrain`.

// mimalloc, keeping freed memory (faster steps; see `peterrec_experiments::alloc`).
peterrec_experiments::global_mimalloc!();

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use peterrec::train::CpuAutodiff;
use peterrec_experiments::bench::{PretrainStep, SHAPE_A, SHAPE_B};

fn pretrain(c: &mut Criterion) {
    peterrec_experiments::alloc::keep_freed_memory();
    let device = Default::default();
    for shape in [SHAPE_A, SHAPE_B] {
        let mut group = c.benchmark_group(format!("pretrain/{}", shape.name));
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(if shape.name == "a" { 5 } else { 60 }));
        for (name, sampled) in [("full-softmax", None), ("sampled-softmax-1024", Some(1024))] {
            let mut step = PretrainStep::<CpuAutodiff>::new(shape, sampled, &device);
            group.bench_function(name, |b| b.iter(|| step.run(&device)));
        }
        group.finish();
    }
}

criterion_group!(benches, pretrain);
criterion_main!(benches);
