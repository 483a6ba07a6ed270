//! Dilated causal convolution: our matmul form vs Burn's `Conv1d`, on the ndarray backend.
//!
//! Two formulations, timed to keep the faster one in the model crate. Compared here:
//! - `matmul`: [`DilatedConv1d`] on `[B, L, C]` (the `k` taps of every position gathered into
//!   `[B, L, k·C]`, one `Linear(k·C → C)`), the form the model crate uses;
//! - `conv1d`: `burn::nn::conv::Conv1d` with dilation `d` and explicit causal padding
//!   `((k−1)·d, 0)` on `[B, C, L]`, plus the two `swap_dims(1, 2)` a `[B, L, C]` network needs
//!   around it (LayerNorm and Linear work on the last axis).
//!
//! Modes: `forward` on plain `NdArray<f32>`, `train` (forward + backward, input gradient
//! included) on `Autodiff<NdArray<f32>>`. Targets: one convolution, and a stack of 4 residual
//! blocks (block dilations 1, 4, 1, 4; each block is conv(d) → LN → ReLU → conv(2d) → LN → ReLU
//! plus the skip). Before timing, every pair is checked to compute the same function with
//! converted weights (max abs diff < 1e-4).
//!
//! Run: `cargo bench --bench conv`; the stack at shape B only with `PETERREC_BENCH_FULL=1` (its
//! `Conv1d` training step is by far the slowest target). Figures and run times:
//! `docs/benchmarks.md`.

// mimalloc, keeping freed memory (faster steps; see `peterrec_experiments::alloc`).
peterrec_experiments::global_mimalloc!();

use std::hint::black_box;
use std::time::Duration;

use burn::backend::{Autodiff, NdArray};
use burn::module::Param;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{LayerNorm, PaddingConfig1d};
use burn::tensor::activation::relu;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, Tensor, TensorData};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use peterrec::model::{DilatedConv1d, DilatedConv1dConfig, ResidualBlock, ResidualBlockConfig};

type B = NdArray<f32>;
type AB = Autodiff<NdArray<f32>>;

const KERNEL: usize = 3;
/// Block dilations of the stack (each block's second conv uses twice the dilation).
const STACK_DILATIONS: [usize; 4] = [1, 4, 1, 4];

/// Set this variable to also run the 4-block stack at shape B (left out by default: its `Conv1d`
/// training step takes much longer than every other target's; see `docs/benchmarks.md`).
const FULL_ENV: &str = "PETERREC_BENCH_FULL";

/// One benchmark shape: batch, length, channels, dilation of the single-conv target.
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    batch: usize,
    length: usize,
    channels: usize,
    dilation: usize,
}

const SHAPES: [Shape; 2] = [
    Shape {
        name: "A_B32_L20_C64_d4",
        batch: 32,
        length: 20,
        channels: 64,
        dilation: 4,
    },
    Shape {
        name: "B_B128_L50_C256_d8",
        batch: 128,
        length: 50,
        channels: 256,
        dilation: 8,
    },
];

/// A deterministic pseudo-random vector in `[-scale, scale)`.
fn pseudo_random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Our conv (with a non-zero bias, so the check covers it) and the equivalent Burn `Conv1d`:
/// `W_conv[o, i, j] = W_lin[j·C + i, o]`.
fn conv_pair<Bk: Backend>(
    c: usize,
    d: usize,
    seed: u64,
    device: &Bk::Device,
) -> (DilatedConv1d<Bk>, Conv1d<Bk>) {
    let mut ours = DilatedConv1dConfig::new(c, c)
        .with_kernel_size(KERNEL)
        .with_dilation(d)
        .with_seed(seed)
        .init::<Bk>(device);
    let bias = TensorData::new(pseudo_random(c, seed + 1, 0.1), [c]);
    ours.linear.bias = Some(Param::from_tensor(Tensor::from_data(bias, device)));

    let conv = to_conv1d(&ours, device);
    (ours, conv)
}

/// Burn's `Conv1d` inside a `[B, L, C]` network: swap to `[B, C, L]` and back.
fn conv1d_blc<Bk: Backend>(conv: &Conv1d<Bk>, x: Tensor<Bk, 3>) -> Tensor<Bk, 3> {
    conv.forward(x.swap_dims(1, 2)).swap_dims(1, 2)
}

/// The NextItNet residual block with Burn's `Conv1d` (same weights as a [`ResidualBlock`]).
struct Conv1dBlock<Bk: Backend> {
    conv1: Conv1d<Bk>,
    ln1: LayerNorm<Bk>,
    conv2: Conv1d<Bk>,
    ln2: LayerNorm<Bk>,
}

impl<Bk: Backend> Conv1dBlock<Bk> {
    fn forward(&self, x: Tensor<Bk, 3>) -> Tensor<Bk, 3> {
        let h = relu(self.ln1.forward(conv1d_blc(&self.conv1, x.clone())));
        x + relu(self.ln2.forward(conv1d_blc(&self.conv2, h)))
    }
}

/// Converts one of our convs to a Burn `Conv1d` with the same weights.
fn to_conv1d<Bk: Backend>(ours: &DilatedConv1d<Bk>, device: &Bk::Device) -> Conv1d<Bk> {
    let [kc, c_out] = ours.linear.weight.dims();
    let c_in = kc / ours.kernel_size;
    let w = ours
        .linear
        .weight
        .val()
        .reshape([ours.kernel_size, c_in, c_out])
        .permute([2, 1, 0])
        .into_data();
    let mut conv = Conv1dConfig::new(c_in, c_out, ours.kernel_size)
        .with_dilation(ours.dilation)
        .with_padding(PaddingConfig1d::Explicit(ours.padding(), 0))
        .init::<Bk>(device);
    conv.weight = Param::from_tensor(Tensor::from_data(w, device));
    conv.bias = ours
        .linear
        .bias
        .as_ref()
        .map(|b| Param::from_tensor(Tensor::from_data(b.val().into_data(), device)));
    conv
}

/// A stack of our residual blocks and the same stack with Burn's `Conv1d`.
fn stack_pair<Bk: Backend>(
    c: usize,
    device: &Bk::Device,
) -> (Vec<ResidualBlock<Bk>>, Vec<Conv1dBlock<Bk>>) {
    let ours: Vec<ResidualBlock<Bk>> = STACK_DILATIONS
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            ResidualBlockConfig::new(c, d)
                .with_kernel_size(KERNEL)
                .init_named::<Bk>(&format!("blocks.{i}"), device)
        })
        .collect();
    let theirs = ours
        .iter()
        .map(|b| Conv1dBlock {
            conv1: to_conv1d(&b.conv1, device),
            ln1: b.ln1.clone(),
            conv2: to_conv1d(&b.conv2, device),
            ln2: b.ln2.clone(),
        })
        .collect();
    (ours, theirs)
}

fn stack_ours<Bk: Backend>(blocks: &[ResidualBlock<Bk>], x: Tensor<Bk, 3>) -> Tensor<Bk, 3> {
    blocks.iter().fold(x, |h, b| b.forward(h))
}

fn stack_conv1d<Bk: Backend>(blocks: &[Conv1dBlock<Bk>], x: Tensor<Bk, 3>) -> Tensor<Bk, 3> {
    blocks.iter().fold(x, |h, b| b.forward(h))
}

fn input<Bk: Backend>(s: &Shape, seed: u64, device: &Bk::Device) -> Tensor<Bk, 3> {
    let n = s.batch * s.length * s.channels;
    Tensor::from_data(
        TensorData::new(pseudo_random(n, seed, 1.0), [s.batch, s.length, s.channels]),
        device,
    )
}

fn max_abs_diff(a: Tensor<B, 3>, b: Tensor<B, 3>) -> f32 {
    (a - b).abs().max().into_scalar()
}

/// Setup check: both formulations compute the same function (single conv and stack).
fn check_equivalence(s: &Shape) {
    let device = Default::default();
    let x = input::<B>(s, 7, &device);
    let (ours, conv) = conv_pair::<B>(s.channels, s.dilation, 3, &device);
    let diff = max_abs_diff(ours.forward(x.clone()), conv1d_blc(&conv, x.clone()));
    assert!(diff < 1e-4, "{}: conv max abs diff {diff}", s.name);
    let (ours, theirs) = stack_pair::<B>(s.channels, &device);
    let diff = max_abs_diff(stack_ours(&ours, x.clone()), stack_conv1d(&theirs, x));
    assert!(diff < 1e-4, "{}: stack max abs diff {diff}", s.name);
}

/// Forward + backward with a fixed random upstream gradient; the input requires a gradient too,
/// as it would inside a network.
fn train_step<F>(f: F, x: &Tensor<AB, 3>, r: &Tensor<AB, 3>) -> <AB as AutodiffBackend>::Gradients
where
    F: Fn(Tensor<AB, 3>) -> Tensor<AB, 3>,
{
    let y = f(x.clone().require_grad());
    (y * r.clone()).sum().backward()
}

fn bench_conv(c: &mut Criterion) {
    peterrec_experiments::alloc::keep_freed_memory();
    for s in &SHAPES {
        check_equivalence(s);

        let device = Default::default();
        let x = input::<B>(s, 11, &device);
        let (ours, conv) = conv_pair::<B>(s.channels, s.dilation, 3, &device);
        let mut g = c.benchmark_group(format!("conv/{}/forward", s.name));
        g.bench_function(BenchmarkId::from_parameter("matmul"), |bch| {
            bch.iter(|| black_box(ours.forward(black_box(x.clone()))))
        });
        g.bench_function(BenchmarkId::from_parameter("conv1d"), |bch| {
            bch.iter(|| black_box(conv1d_blc(&conv, black_box(x.clone()))))
        });
        g.finish();

        let x = input::<AB>(s, 11, &device);
        let r = Tensor::<AB, 3>::random(x.dims(), Distribution::Normal(0.0, 1.0), &device);
        let (ours, conv) = conv_pair::<AB>(s.channels, s.dilation, 3, &device);
        let mut g = c.benchmark_group(format!("conv/{}/train", s.name));
        g.bench_function(BenchmarkId::from_parameter("matmul"), |bch| {
            bch.iter(|| black_box(train_step(|x| ours.forward(x), &x, &r)))
        });
        g.bench_function(BenchmarkId::from_parameter("conv1d"), |bch| {
            bch.iter(|| black_box(train_step(|x| conv1d_blc(&conv, x), &x, &r)))
        });
        g.finish();
    }
}

fn bench_stack(c: &mut Criterion) {
    peterrec_experiments::alloc::keep_freed_memory();
    let full = std::env::var_os(FULL_ENV).is_some();
    for s in SHAPES.iter().take(if full { SHAPES.len() } else { 1 }) {
        let device = Default::default();
        let x = input::<B>(s, 13, &device);
        let (ours, theirs) = stack_pair::<B>(s.channels, &device);
        let mut g = c.benchmark_group(format!("stack4/{}/forward", s.name));
        g.bench_function(BenchmarkId::from_parameter("matmul"), |bch| {
            bch.iter(|| black_box(stack_ours(&ours, black_box(x.clone()))))
        });
        g.bench_function(BenchmarkId::from_parameter("conv1d"), |bch| {
            bch.iter(|| black_box(stack_conv1d(&theirs, black_box(x.clone()))))
        });
        g.finish();

        let x = input::<AB>(s, 13, &device);
        let r = Tensor::<AB, 3>::random(x.dims(), Distribution::Normal(0.0, 1.0), &device);
        let (ours, theirs) = stack_pair::<AB>(s.channels, &device);
        let mut g = c.benchmark_group(format!("stack4/{}/train", s.name));
        g.bench_function(BenchmarkId::from_parameter("matmul"), |bch| {
            bch.iter(|| black_box(train_step(|x| stack_ours(&ours, x), &x, &r)))
        });
        g.bench_function(BenchmarkId::from_parameter("conv1d"), |bch| {
            bch.iter(|| black_box(train_step(|x| stack_conv1d(&theirs, x), &x, &r)))
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_conv, bench_stack
}
criterion_main!(benches);
