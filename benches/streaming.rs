//! Streaming inference: appending one item to a history of 200 and reading the `[CLS]` user
//! vector, incrementally ([`StreamState`]) against recomputing the whole history.
//! `cargo bench --bench streaming`.
//!
//! Two backbones, both with the paper's blocks `[1,4]×4` (receptive field 121) and a PeterRec
//! serial patch in every block: C = 64 and C = 256. One user. "recompute" runs the model (ndarray
//! backend) over the 200 items plus `[CLS]` and reads the task scores; "incremental" pushes the
//! 200th item into a [`StreamModel`] state holding the first 199 and reads the scores at `[CLS]`
//! (the state is cloned each iteration, which is part of the measured cost).

// mimalloc, keeping freed memory (faster steps; see `peterrec_experiments::alloc`).
peterrec_experiments::global_mimalloc!();

use std::time::Duration;

use burn::tensor::{Int, Tensor, TensorData};
use criterion::{criterion_group, criterion_main, Criterion};
use peterrec::model::{
    FineTuneConfig, HeadKind, Insertion, NextItNetConfig, PatchInit, Strategy, StreamModel,
};
use peterrec::train::Cpu;

const HISTORY: usize = 200;
const CLS: u32 = 2;

fn streaming(c: &mut Criterion) {
    peterrec_experiments::alloc::keep_freed_memory();
    let device = Default::default();
    for channels in [64, 256] {
        let config = NextItNetConfig::new(10_000, channels, vec![1, 4, 1, 4, 1, 4, 1, 4]);
        let model = FineTuneConfig::new(
            Strategy::PeterRec {
                insertion: Insertion::Serial,
            },
            HeadKind::Classifier { outputs: 2 },
        )
        .with_patch_init(PatchInit::TruncatedNormal { std: 0.02 })
        .init(config.init::<Cpu>(&device), &device)
        .expect("a valid model");
        let items: Vec<i64> = (0..HISTORY as i64).map(|i| 4 + (i * 37) % 9_000).collect();
        let stream = StreamModel::from_task(&model).expect("a causal model");
        let mut state = stream.state();
        for &i in &items[..HISTORY - 1] {
            stream
                .push(&mut state, i as u32)
                .expect("in the vocabulary");
        }
        let mut row = items.clone();
        row.push(CLS as i64);
        let full: Tensor<Cpu, 2, Int> =
            Tensor::from_data(TensorData::new(row, [1, HISTORY + 1]), &device);
        let last = items[HISTORY - 1];

        let mut group = c.benchmark_group(format!("streaming/C{channels}"));
        group.sample_size(20);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(4));
        group.bench_function("recompute-200", |b| {
            b.iter(|| model.forward(full.clone()).into_data())
        });
        group.bench_function("incremental-append", |b| {
            b.iter(|| {
                let mut s = state.clone();
                stream.push(&mut s, last as u32).expect("in the vocabulary");
                stream.scores(&s, CLS).expect("a head")
            })
        });
        group.finish();
    }
}

criterion_group!(benches, streaming);
criterion_main!(benches);
