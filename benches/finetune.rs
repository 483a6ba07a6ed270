//! One fine-tuning step (forward, backward, Adam) per strategy at shapes A and B: the design
//! card's "patch vs full fine-tune". `cargo bench --bench finetune`.

// mimalloc, keeping freed memory (faster steps; see `peterrec_experiments::alloc`).
peterrec_experiments::global_mimalloc!();

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use peterrec::model::{Insertion, Strategy};
use peterrec::train::CpuAutodiff;
use peterrec_experiments::bench::{FineTuneStep, SHAPE_A, SHAPE_B};

fn strategies() -> [Strategy; 5] {
    [
        Strategy::PeterRec {
            insertion: Insertion::Serial,
        },
        Strategy::PeterRec {
            insertion: Insertion::Parallel,
        },
        Strategy::FineAll,
        Strategy::FineCls,
        Strategy::FineLast(1),
    ]
}

fn finetune(c: &mut Criterion) {
    peterrec_experiments::alloc::keep_freed_memory();
    let device = Default::default();
    for shape in [SHAPE_A, SHAPE_B] {
        let mut group = c.benchmark_group(format!("finetune/{}", shape.name));
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(if shape.name == "a" { 5 } else { 20 }));
        for strategy in strategies() {
            let mut step = FineTuneStep::<CpuAutodiff>::new(shape, strategy, &device);
            group.bench_function(strategy.to_string(), |b| b.iter(|| step.run(&device)));
        }
        group.finish();
    }
}

criterion_group!(benches, finetune);
criterion_main!(benches);
