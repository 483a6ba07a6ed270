//! Benchmark shapes and single steps, shared by the criterion benches and the `bench_step` binary.
//!
//! The two shapes, the same as the PyTorch port's (`nextitnet_torch.py`) for side-by-side runs:
//! - **A**: V=10,000, C=64, L=20, B=32, blocks `[1,2,4,8,1,2,4,8]`;
//! - **B** (the paper): V=50,000, C=256, L=50, B=128, blocks `[1,4,1,4,1,4,1,4]`.
//!
//! The fine-tune head is a V-way softmax classifier on the last position, as in the port.

use burn::optim::{adaptor::OptimizerAdaptor, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use peterrec_model::{
    FineTuneConfig, FineTuneModel, FusedAdam, FusedAdamConfig, HeadKind, NegativeDistribution,
    NegativeSampler, NextItNetConfig, NextItNetLM, Strategy,
};

/// A memory figure of this process in MiB, from the Linux `/proc/self/status` line `field`
/// (`VmRSS` resident now, `VmHWM` peak resident), or 0 where unknown.
pub fn proc_status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// A benchmark shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Name (`a` or `b`).
    pub name: &'static str,
    /// Vocabulary size.
    pub vocab: usize,
    /// Channels.
    pub channels: usize,
    /// Input positions.
    pub len: usize,
    /// Sequences per batch.
    pub batch: usize,
    /// Block dilations.
    pub dilations: &'static [usize],
}

/// Shape A.
pub const SHAPE_A: Shape = Shape {
    name: "a",
    vocab: 10_000,
    channels: 64,
    len: 20,
    batch: 32,
    dilations: &[1, 2, 4, 8, 1, 2, 4, 8],
};

/// Shape B (the paper's).
pub const SHAPE_B: Shape = Shape {
    name: "b",
    vocab: 50_000,
    channels: 256,
    len: 50,
    batch: 128,
    dilations: &[1, 4, 1, 4, 1, 4, 1, 4],
};

impl Shape {
    /// `a` or `b`.
    pub fn parse(s: &str) -> Option<Shape> {
        match s.to_ascii_lowercase().as_str() {
            "a" => Some(SHAPE_A),
            "b" => Some(SHAPE_B),
            _ => None,
        }
    }

    /// The backbone configuration.
    pub fn config(&self) -> NextItNetConfig {
        NextItNetConfig::new(self.vocab, self.channels, self.dilations.to_vec())
    }

    /// A pool of random token rows `[batch, len + 1]` (ids ≥ 4, below the vocabulary size).
    pub fn token_pool(&self, n: usize, seed: u64) -> Vec<Vec<i64>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                (0..self.batch * (self.len + 1))
                    .map(|_| rng.random_range(4..self.vocab as i64))
                    .collect()
            })
            .collect()
    }
}

fn rows<B: Backend>(
    flat: &[i64],
    batch: usize,
    width: usize,
    skip: usize,
    len: usize,
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    let data: Vec<i64> = (0..batch)
        .flat_map(|r| {
            flat[r * width + skip..r * width + skip + len]
                .iter()
                .copied()
        })
        .collect();
    Tensor::from_data(TensorData::new(data, [batch, len]), device)
}

/// A pretraining step runner: forward, loss, backward and an Adam step.
pub struct PretrainStep<B: AutodiffBackend> {
    model: Option<NextItNetLM<B>>,
    optim: OptimizerAdaptor<FusedAdam, NextItNetLM<B>, B>,
    sampler: Option<NegativeSampler>,
    rng: ChaCha8Rng,
    shape: Shape,
    pool: Vec<Vec<i64>>,
    step: usize,
    unfused: bool,
}

impl<B: AutodiffBackend> PretrainStep<B> {
    /// Builds the model; `sampled` negatives (log-uniform) switch to the sampled-softmax head.
    pub fn new(shape: Shape, sampled: Option<usize>, device: &B::Device) -> Self {
        let model = shape
            .config()
            .init_lm::<B>(device)
            .expect("valid benchmark shape");
        Self {
            model: Some(model),
            optim: FusedAdamConfig::new().init(),
            sampler: sampled.map(|n| NegativeSampler {
                num_negatives: n,
                distribution: NegativeDistribution::LogUniform,
                first_item: 4,
                num_tokens: shape.vocab as u32,
            }),
            rng: ChaCha8Rng::seed_from_u64(1),
            shape,
            pool: shape.token_pool(4, 7),
            step: 0,
            unfused: false,
        }
    }

    /// Uses the op-by-op full-softmax loss ([`NextItNetLM::loss`]) instead of the fused one
    /// ([`NextItNetLM::train_loss`]), to measure what the fusion buys.
    pub fn with_unfused_loss(mut self) -> Self {
        self.unfused = true;
        self
    }

    /// Runs one step and returns the loss.
    pub fn run(&mut self, device: &B::Device) -> f32 {
        let s = self.shape;
        let flat = &self.pool[self.step % self.pool.len()];
        self.step += 1;
        let inputs = rows::<B>(flat, s.batch, s.len + 1, 0, s.len, device);
        let targets = rows::<B>(flat, s.batch, s.len + 1, 1, s.len, device);
        let mask = Tensor::<B, 2, Int>::ones([s.batch, s.len], device);
        let model = self.model.take().expect("model present between steps");
        let out = match &self.sampler {
            Some(sampler) => model.sampled_loss(inputs, targets, &mask, sampler, &mut self.rng),
            None if self.unfused => model.loss(inputs, targets, &mask),
            None => model.train_loss(inputs, targets, &mask),
        };
        let loss = out.loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(out.loss.backward(), &model);
        self.model = Some(self.optim.step(1e-3, model, grads));
        to_f32(loss)
    }
}

fn to_f32<E: burn::tensor::ElementConversion>(e: E) -> f32 {
    e.elem::<f32>()
}

/// A fine-tuning step runner for one strategy (V-way softmax head on the last position).
pub struct FineTuneStep<B: AutodiffBackend> {
    model: Option<FineTuneModel<B>>,
    optim: OptimizerAdaptor<FusedAdam, FineTuneModel<B>, B>,
    shape: Shape,
    pool: Vec<Vec<i64>>,
    step: usize,
}

impl<B: AutodiffBackend> FineTuneStep<B> {
    /// Builds a backbone and prepares it for `strategy`.
    pub fn new(shape: Shape, strategy: Strategy, device: &B::Device) -> Self {
        let config = shape.config();
        let backbone = config.init::<B>(device);
        let model = FineTuneConfig::new(
            strategy,
            HeadKind::Classifier {
                outputs: shape.vocab,
            },
        )
        .init(backbone, device)
        .expect("valid benchmark shape");
        Self {
            model: Some(model),
            optim: FusedAdamConfig::new().init(),
            shape,
            pool: shape.token_pool(4, 9),
            step: 0,
        }
    }

    /// Runs one step and returns the loss.
    pub fn run(&mut self, device: &B::Device) -> f32 {
        let s = self.shape;
        let flat = &self.pool[self.step % self.pool.len()];
        self.step += 1;
        let inputs = rows::<B>(flat, s.batch, s.len + 1, 0, s.len, device);
        let labels: Vec<i64> = (0..s.batch)
            .map(|r| flat[r * (s.len + 1) + s.len])
            .collect();
        let labels = Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [s.batch]), device);
        let model = self.model.take().expect("model present between steps");
        let out = model.softmax_train_loss(inputs, labels);
        let loss = out.loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(out.loss.backward(), &model);
        self.model = Some(self.optim.step(1e-3, model, grads));
        to_f32(loss)
    }

    /// Trainable parameters: Adam keeps two moments for each, and nothing for frozen ones.
    pub fn trainable_params(&self) -> usize {
        let model = self.model.as_ref().expect("model present");
        peterrec_model::ParamReport::of(model).trainable
    }
}

/// An inference runner: top-10 next items for a batch (or one user).
pub struct InferStep<B: Backend> {
    model: NextItNetLM<B>,
    shape: Shape,
    pool: Vec<Vec<i64>>,
    users: usize,
    step: usize,
}

impl<B: Backend> InferStep<B> {
    /// Builds the model; `users` rows per query (the batch size, or 1).
    pub fn new(shape: Shape, users: usize, device: &B::Device) -> Self {
        let model = shape
            .config()
            .init_lm::<B>(device)
            .expect("valid benchmark shape");
        Self {
            model,
            shape,
            pool: shape.token_pool(4, 11),
            users: users.clamp(1, shape.batch),
            step: 0,
        }
    }

    /// Scores the next item of each user and returns the top-10 indices of the first.
    pub fn run(&mut self, device: &B::Device) -> Vec<i64> {
        let s = self.shape;
        let flat = &self.pool[self.step % self.pool.len()];
        self.step += 1;
        let inputs = rows::<B>(flat, self.users, s.len + 1, 0, s.len, device);
        let logits = self.model.next_item_logits(inputs);
        let [_, v] = logits.dims();
        let scores: Vec<f32> = logits
            .into_data()
            .convert::<f32>()
            .to_vec()
            .expect("float scores");
        let top = peterrec_model::rank::top_k_rows(&scores, v, 10);
        top[0].iter().map(|&(i, _)| i as i64).collect()
    }
}
