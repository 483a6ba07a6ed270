//! Streaming (incremental) inference: a per-user cache of every convolution's recent inputs, so
//! that appending one item costs one position per layer instead of a pass over the whole history.
//!
//! This is the fast-WaveNet idea (Paine et al., 2016) applied to NextItNet. A causal convolution
//! with kernel `k` and dilation `d` reads, at position `t`, its inputs at `t − j·d` for
//! `j = 0..k`. A [`StreamState`] keeps, for each convolution of each block, its last `(k−1)·d`
//! inputs in a ring (zeros before the first item, exactly the left zero padding of
//! [`crate::DilatedConv1d::forward`]). [`StreamModel::push`] computes the new position through
//! every block and stores each convolution's input; [`StreamModel::peek`] computes a position
//! without storing anything, which is how a `[CLS]` user vector is read after each new item while
//! `[CLS]` itself never enters the history.
//!
//! One step is a handful of small matrix-vector products, far too small for a tensor backend's
//! per-operation overhead, so a [`StreamModel`] is a host (`f32`) copy of the weights of any
//! backend's model and a step runs as plain loops. A state is a few kilobytes per user
//! (`Σ (k−1)·d·C` floats), independent of the history's length.
//!
//! The result equals the full forward pass over the same tokens without padding (tested to 1e-5
//! after each of 200 appended items, with and without patches, in `tests/stream.rs`); push PAD
//! tokens first to reproduce a left-padded row. Only causal backbones can stream: in centred mode
//! every output depends on later inputs.
//!
//! ```
//! use burn::backend::NdArray;
//! use peterrec_model::{NextItNetConfig, StreamModel};
//!
//! let device = Default::default();
//! let config = NextItNetConfig::new(100, 16, vec![1, 2]);
//! let backbone = config.init::<NdArray>(&device);
//! let model = StreamModel::from_backbone(&backbone).unwrap();
//! let mut state = model.state();
//! for item in [5, 7, 9] {
//!     model.push(&mut state, item).unwrap();
//! }
//! // The hidden state `[CLS]` (say token 2) would get, without appending it.
//! let cls = model.peek(&state, 2).unwrap();
//! assert_eq!(cls.len(), 16);
//! assert_eq!(state.len(), 3);
//! ```

use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{backend::Backend, Tensor};

use crate::backbone::NextItNet;
use crate::block::ResidualBlock;
use crate::conv::DilatedConv1d;
use crate::error::{ModelError, Result as ModelResult};
use crate::finetune::FineTuneModel;
use crate::head::TaskHead;
use crate::patch::ModelPatch;

fn host<B: Backend, const D: usize>(t: &Param<Tensor<B, D>>) -> ModelResult<Vec<f32>> {
    t.val()
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| ModelError::InvalidConfig(format!("reading a weight: {e:?}")))
}

/// `y += x · W`, with `W` row-major `[x.len(), y.len()]` (Burn's `Linear` layout).
fn affine_add(x: &[f32], w: &[f32], y: &mut [f32]) {
    let n = y.len();
    for (i, &v) in x.iter().enumerate() {
        if v != 0.0 {
            for (o, w) in y.iter_mut().zip(&w[i * n..(i + 1) * n]) {
                *o += v * w;
            }
        }
    }
}

#[derive(Debug, Clone)]
struct HostLinear {
    w: Vec<f32>,
    b: Option<Vec<f32>>,
    out: usize,
}

impl HostLinear {
    fn of<B: Backend>(l: &Linear<B>) -> ModelResult<Self> {
        Ok(Self {
            out: l.weight.dims()[1],
            w: host(&l.weight)?,
            b: l.bias.as_ref().map(host).transpose()?,
        })
    }

    /// `b + x · W`.
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        let mut y = self.b.clone().unwrap_or_else(|| vec![0.0; self.out]);
        affine_add(x, &self.w, &mut y);
        y
    }
}

#[derive(Debug, Clone)]
struct HostConv {
    linear: HostLinear,
    kernel: usize,
    dilation: usize,
}

impl HostConv {
    fn of<B: Backend>(c: &DilatedConv1d<B>) -> ModelResult<Self> {
        Ok(Self {
            linear: HostLinear::of(&c.linear)?,
            kernel: c.kernel_size,
            dilation: c.dilation,
        })
    }

    /// Rows of past inputs the convolution reads: `(k−1)·d`.
    fn span(&self) -> usize {
        (self.kernel - 1) * self.dilation
    }

    /// Output at position `t` for input `x` there, reading earlier inputs from `ring`.
    fn step(&self, ring: &[f32], t: usize, x: &[f32]) -> Vec<f32> {
        let c = x.len();
        let p = self.span();
        let lin = &self.linear;
        let mut y = lin.b.clone().unwrap_or_else(|| vec![0.0; lin.out]);
        for j in 0..self.kernel {
            let input = if j + 1 == self.kernel {
                x
            } else {
                // Position t − (k−1−j)·d; before the first item it maps to a row not yet
                // written, which is zero (the convolution's left padding).
                let back = (self.kernel - 1 - j) * self.dilation;
                let row = (t + p - back) % p;
                &ring[row * c..(row + 1) * c]
            };
            affine_add(
                input,
                &lin.w[j * c * lin.out..(j + 1) * c * lin.out],
                &mut y,
            );
        }
        y
    }
}

#[derive(Debug, Clone)]
struct HostNorm {
    gamma: Vec<f32>,
    beta: Option<Vec<f32>>,
    eps: f32,
}

impl HostNorm {
    fn of<B: Backend>(ln: &LayerNorm<B>, eps: f64) -> ModelResult<Self> {
        Ok(Self {
            gamma: host(&ln.gamma)?,
            beta: ln.beta.as_ref().map(host).transpose()?,
            eps: eps as f32,
        })
    }

    /// `ReLU(LayerNorm(x))`, in place.
    fn relu_norm(&self, x: &mut [f32]) {
        let n = x.len() as f32;
        let mean = x.iter().sum::<f32>() / n;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let denom = (var + self.eps).sqrt();
        for (i, v) in x.iter_mut().enumerate() {
            let mut y = (*v - mean) / denom * self.gamma[i];
            if let Some(b) = &self.beta {
                y += b[i];
            }
            *v = y.max(0.0);
        }
    }
}

#[derive(Debug, Clone)]
struct HostPatch {
    down: HostLinear,
    up: HostLinear,
}

impl HostPatch {
    fn of<B: Backend>(p: &ModelPatch<B>) -> ModelResult<Self> {
        Ok(Self {
            down: HostLinear::of(&p.down)?,
            up: HostLinear::of(&p.up)?,
        })
    }

    /// The residual branch `W_up · GELU(W_down · x + b_down) + b_up` (tanh GELU, as Burn's
    /// `gelu_approximate`).
    fn delta(&self, x: &[f32]) -> Vec<f32> {
        const SQRT_2_OVER_PI: f32 = 0.797_884_6;
        let mut h = self.down.apply(x);
        for v in &mut h {
            let inner = (*v + 0.044715 * *v * *v * *v) * SQRT_2_OVER_PI;
            *v *= 0.5 * (1.0 + inner.tanh());
        }
        self.up.apply(&h)
    }
}

#[derive(Debug, Clone)]
struct HostBlock {
    conv: [HostConv; 2],
    norm: [HostNorm; 2],
    patch: [Option<HostPatch>; 2],
    parallel: bool,
    parallel_adds_input: bool,
}

impl HostBlock {
    fn of<B: Backend>(b: &ResidualBlock<B>, eps: f64) -> ModelResult<Self> {
        let patch = |p: &Option<ModelPatch<B>>| p.as_ref().map(HostPatch::of).transpose();
        Ok(Self {
            conv: [HostConv::of(&b.conv1)?, HostConv::of(&b.conv2)?],
            norm: [HostNorm::of(&b.ln1, eps)?, HostNorm::of(&b.ln2, eps)?],
            patch: [patch(&b.mp1)?, patch(&b.mp2)?],
            parallel: b.parallel,
            parallel_adds_input: b.parallel_adds_input,
        })
    }

    /// One half of the block (conv, patch, LayerNorm, ReLU), as in
    /// [`ResidualBlock::forward`].
    fn half(&self, i: usize, ring: &[f32], t: usize, x: &[f32]) -> Vec<f32> {
        let mut h = self.conv[i].step(ring, t, x);
        if let Some(mp) = &self.patch[i] {
            let (input, add_input) = if self.parallel {
                (x, self.parallel_adds_input)
            } else {
                (&h[..], true)
            };
            let mut delta = mp.delta(input);
            if add_input {
                for (d, v) in delta.iter_mut().zip(input) {
                    *d += v;
                }
            }
            if self.parallel {
                for (v, d) in h.iter_mut().zip(&delta) {
                    *v += d;
                }
            } else {
                h = delta;
            }
        }
        self.norm[i].relu_norm(&mut h);
        h
    }
}

#[derive(Debug, Clone)]
enum HostHead {
    Classifier(HostLinear),
    /// `[T, C]` row-major.
    TargetItems(Vec<f32>),
}

/// A host copy of a causal NextItNet (and, from a fine-tuned model, its task head) for streaming
/// inference: see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct StreamModel {
    channels: usize,
    num_tokens: usize,
    embedding: Vec<f32>,
    blocks: Vec<HostBlock>,
    head: Option<HostHead>,
}

/// The streamed history of one user: every convolution's recent inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamState {
    /// Per block and convolution: a ring of `(k−1)·d` rows of `C` inputs (row `t mod span`
    /// holds position `t`); empty for a kernel of 1.
    rings: Vec<[Vec<f32>; 2]>,
    len: usize,
    last: Vec<f32>,
}

impl StreamState {
    /// Number of items pushed so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The hidden state at the last pushed position, `[C]` (`None` before the first push): what
    /// [`NextItNet::forward`] gives at the last position of the pushed tokens.
    pub fn last(&self) -> Option<&[f32]> {
        (self.len > 0).then_some(&self.last[..])
    }

    /// Floats this state holds (its memory is four bytes each, plus a few vectors' headers).
    pub fn num_floats(&self) -> usize {
        self.rings.iter().flatten().map(Vec::len).sum::<usize>() + self.last.len()
    }
}

impl StreamModel {
    /// A host copy of `backbone` (its configuration gives the LayerNorm epsilon).
    /// Fails for a centred (non-causal) backbone.
    pub fn from_backbone<B: Backend>(backbone: &NextItNet<B>) -> ModelResult<Self> {
        let config = backbone.config();
        if !backbone.causal() {
            return Err(ModelError::InvalidConfig(
                "streaming inference needs a causal backbone: a centred one looks at later items"
                    .into(),
            ));
        }
        config.check_matches(backbone)?;
        let eps = config.layer_norm_eps;
        Ok(Self {
            channels: backbone.channels(),
            num_tokens: backbone.num_tokens(),
            embedding: host(&backbone.embedding.weight)?,
            blocks: backbone
                .blocks
                .iter()
                .map(|b| HostBlock::of(b, eps))
                .collect::<ModelResult<_>>()?,
            head: None,
        })
    }

    /// A host copy of a fine-tuned model: its (patched) backbone and its task head.
    pub fn from_task<B: Backend>(model: &FineTuneModel<B>) -> ModelResult<Self> {
        let mut m = Self::from_backbone(&model.backbone)?;
        m.head = Some(match &model.head {
            TaskHead::Classifier(l) => HostHead::Classifier(HostLinear::of(l)?),
            TaskHead::TargetItems(t) => HostHead::TargetItems(host(&t.weight)?),
        });
        Ok(m)
    }

    /// Channels `C`.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// An empty history (all caches zero, as the convolutions' left padding).
    pub fn state(&self) -> StreamState {
        let c = self.channels;
        StreamState {
            rings: self
                .blocks
                .iter()
                .map(|b| b.conv.clone().map(|conv| vec![0.0; conv.span() * c]))
                .collect(),
            len: 0,
            last: vec![0.0; c],
        }
    }

    /// Appends `token` to the history and returns the hidden state at the new position, `[C]`.
    /// A token outside the embedding table, or a state of another model, is an error and leaves
    /// the state unchanged.
    pub fn push<'s>(&self, state: &'s mut StreamState, token: u32) -> ModelResult<&'s [f32]> {
        let (out, inputs) = self.step(state, token)?;
        let t = state.len;
        let c = self.channels;
        for ((block, rings), ins) in self.blocks.iter().zip(&mut state.rings).zip(inputs) {
            for ((conv, ring), x) in block.conv.iter().zip(rings.iter_mut()).zip(ins) {
                let p = conv.span();
                if p > 0 {
                    let row = t % p;
                    ring[row * c..(row + 1) * c].copy_from_slice(&x);
                }
            }
        }
        state.len += 1;
        state.last = out;
        Ok(&state.last)
    }

    /// The hidden state the next position would have for `token`, `[C]`, without appending it.
    pub fn peek(&self, state: &StreamState, token: u32) -> ModelResult<Vec<f32>> {
        Ok(self.step(state, token)?.0)
    }

    /// Task scores of the streamed history: the head on [`StreamModel::peek`] of `cls` (the
    /// `[CLS]` token), `[outputs]`. The same as [`FineTuneModel::forward`] on the pushed tokens
    /// followed by `[CLS]`. An error for a model made without a head.
    pub fn scores(&self, state: &StreamState, cls: u32) -> ModelResult<Vec<f32>> {
        let user = self.peek(state, cls)?;
        match &self.head {
            Some(HostHead::Classifier(l)) => Ok(l.apply(&user)),
            Some(HostHead::TargetItems(table)) => Ok(table
                .chunks(self.channels)
                .map(|row| row.iter().zip(&user).map(|(a, b)| a * b).sum())
                .collect()),
            None => Err(ModelError::InvalidConfig(
                "this stream model has no task head (build it with StreamModel::from_task)".into(),
            )),
        }
    }

    /// The output at the next position and every convolution's input there.
    #[allow(clippy::type_complexity)]
    fn step(&self, state: &StreamState, token: u32) -> ModelResult<(Vec<f32>, Vec<[Vec<f32>; 2]>)> {
        let c = self.channels;
        if token as usize >= self.num_tokens {
            return Err(ModelError::InvalidConfig(format!(
                "token {token} is outside the {} token embeddings",
                self.num_tokens
            )));
        }
        if state.rings.len() != self.blocks.len() || state.last.len() != c {
            return Err(ModelError::InvalidConfig(
                "this stream state belongs to another model".into(),
            ));
        }
        let t = state.len;
        let mut x = self.embedding[token as usize * c..(token as usize + 1) * c].to_vec();
        let mut inputs = Vec::with_capacity(self.blocks.len());
        for (block, rings) in self.blocks.iter().zip(&state.rings) {
            let h = block.half(0, &rings[0], t, &x);
            let h2 = block.half(1, &rings[1], t, &h);
            let out: Vec<f32> = x.iter().zip(&h2).map(|(a, b)| a + b).collect();
            inputs.push([std::mem::replace(&mut x, out), h]);
        }
        Ok((x, inputs))
    }
}
