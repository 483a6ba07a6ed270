//! The NextItNet backbone: item embedding followed by dilated residual blocks.

use burn::config::Config;
use burn::module::Module;
use burn::nn::Embedding;
use burn::tensor::{backend::Backend, Int, Tensor};

use crate::block::{train_dropout, Insertion, ResidualBlock, ResidualBlockConfig};
use crate::error::{ModelError, Result as ModelResult};
use crate::init::tn_param;
use crate::patch::ModelPatchConfig;
use crate::positions::{index_tensor, PositionPlan};

pub mod positions;

/// Largest padding `(k−1)·2d` that a configuration may give a convolution: about a million
/// positions, far beyond any real sequence, so that a (checksummed but hostile) backbone file
/// with a huge dilation is an error when it is loaded, not an allocation in its first forward
/// pass.
pub const MAX_CONV_PADDING: usize = 1 << 20;

/// Configuration of the [`NextItNet`] backbone.
///
/// `dilations` lists the *block* dilations: block `d` holds convolutions with dilations `d` and
/// `2d`, so the paper's `[1, 4, 1, 4, 1, 4, 1, 4]` is 16 convolutions with dilations 1, 2, 4, 8
/// four times.
#[derive(Config, Debug, PartialEq)]
pub struct NextItNetConfig {
    /// Rows of the embedding table: the vocabulary size *including* reserved tokens
    /// (`peterrec_data::vocab::Vocab::len`).
    pub num_tokens: usize,
    /// Channels `C` (embedding width and residual width).
    pub channels: usize,
    /// Block dilations.
    pub dilations: Vec<usize>,
    /// Kernel width `k`.
    #[config(default = 3)]
    pub kernel_size: usize,
    /// Causal (NextItNet, next-item objectives) or centred (GRec-style cloze encoder).
    #[config(default = true)]
    pub causal: bool,
    /// LayerNorm epsilon.
    #[config(default = 1e-8)]
    pub layer_norm_eps: f64,
    /// Truncated-normal init standard deviation.
    #[config(default = 0.02)]
    pub init_std: f64,
    /// Init seed: the same seed builds the same weights on every backend.
    #[config(default = 0)]
    pub seed: u64,
}

impl NextItNetConfig {
    /// Checks the configuration describes a working network.
    pub fn validate(&self) -> ModelResult<()> {
        let bad = |m: String| Err(ModelError::InvalidConfig(m));
        if self.num_tokens == 0 {
            return bad("num_tokens must be positive".into());
        }
        if self.channels == 0 {
            return bad("channels must be positive".into());
        }
        if self.dilations.is_empty() {
            return bad("dilations must list at least one block".into());
        }
        if let Some(d) = self.dilations.iter().find(|&&d| d == 0) {
            return bad(format!("dilation {d} is not positive"));
        }
        if self.kernel_size == 0 {
            return bad("kernel_size must be positive".into());
        }
        if self.widest_padding().is_none_or(|p| p > MAX_CONV_PADDING) {
            let d = self.widest_dilation();
            return bad(format!(
                "dilation {d} with kernel_size {} pads a convolution by more than {MAX_CONV_PADDING} positions",
                self.kernel_size
            ));
        }
        if !self.causal && self.kernel_size.is_multiple_of(2) {
            return bad("a non-causal (centred) convolution needs an odd kernel_size".into());
        }
        if self.layer_norm_eps.is_nan() || self.layer_norm_eps <= 0.0 {
            return bad("layer_norm_eps must be positive".into());
        }
        Ok(())
    }

    /// Checks that `backbone` has this configuration's embedding table and blocks.
    pub fn check_matches<B: Backend>(&self, backbone: &NextItNet<B>) -> ModelResult<()> {
        if backbone.channels() != self.channels
            || backbone.blocks.len() != self.dilations.len()
            || backbone.num_tokens() != self.num_tokens
        {
            return Err(ModelError::InvalidConfig(
                "the backbone does not match its configuration".into(),
            ));
        }
        Ok(())
    }

    /// Padding of the widest convolution, `(k−1)·2d` for the largest block dilation `d` (the
    /// block's second convolution); `None` if it overflows `usize`.
    pub fn widest_padding(&self) -> Option<usize> {
        self.kernel_size
            .saturating_sub(1)
            .checked_mul(2)?
            .checked_mul(self.widest_dilation())
    }

    /// The largest block dilation (0 without blocks).
    pub fn widest_dilation(&self) -> usize {
        self.dilations.iter().copied().max().unwrap_or(0)
    }

    /// Number of positions one output sees: `1 + (k−1)·Σ conv dilations` (both sides together
    /// in centred mode).
    pub fn receptive_field(&self) -> usize {
        let sum: usize = self.dilations.iter().map(|d| 3 * d).sum();
        1 + (self.kernel_size.saturating_sub(1)) * sum
    }

    /// Builds the backbone, or explains why the configuration is invalid.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> ModelResult<NextItNet<B>> {
        self.validate()?;
        let embedding = Embedding {
            weight: tn_param(
                [self.num_tokens, self.channels],
                self.init_std,
                self.seed,
                "embedding",
                device,
            ),
        };
        let blocks = self
            .dilations
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                ResidualBlockConfig::new(self.channels, d)
                    .with_kernel_size(self.kernel_size)
                    .with_causal(self.causal)
                    .with_layer_norm_eps(self.layer_norm_eps)
                    .with_init_std(self.init_std)
                    .with_seed(self.seed)
                    .init_named(&format!("blocks.{i}"), device)
            })
            .collect();
        Ok(NextItNet {
            embedding,
            blocks,
            config: self.clone(),
            dropout: 0.0,
        })
    }

    /// Builds the backbone.
    ///
    /// # Panics
    /// If the configuration is invalid; use [`NextItNetConfig::try_init`] for a typed error.
    pub fn init<B: Backend>(&self, device: &B::Device) -> NextItNet<B> {
        match self.try_init(device) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        }
    }
}

/// NextItNet: `tokens → embedding → residual blocks → hidden states`.
#[derive(Module, Debug)]
pub struct NextItNet<B: Backend> {
    /// Token embedding `[num_tokens, C]` (row 0 is PAD, an ordinary row as in the original code).
    pub embedding: Embedding<B>,
    /// The residual blocks.
    pub blocks: Vec<ResidualBlock<B>>,
    /// The configuration this backbone was built from (not a parameter: it travels with the
    /// module, so no function needs the backbone and its configuration side by side).
    config: NextItNetConfig,
    /// Dropout probability on the embeddings while training ([`NextItNet::with_dropout`]).
    dropout: f64,
}

impl<B: Backend> NextItNet<B> {
    /// Hidden states for every position.
    ///
    /// # Shapes
    /// - tokens: `[batch, length]`
    /// - output: `[batch, length, C]`
    pub fn forward(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let length = tokens.dims()[1];
        let all: Vec<usize> = (0..length).collect();
        self.forward_planned(tokens, &self.plan(length, &all))
    }

    /// Hidden states at the requested positions only, computing in every layer just the
    /// positions they depend on ([`crate::positions`]); equal to `forward` at those positions.
    ///
    /// # Shapes
    /// - tokens: `[batch, length]`
    /// - output: `[batch, positions.len(), C]`
    ///
    /// # Panics
    /// If `positions` is empty, not strictly increasing or reaches `length`.
    pub fn forward_at(&self, tokens: Tensor<B, 2, Int>, positions: &[usize]) -> Tensor<B, 3> {
        let length = tokens.dims()[1];
        self.forward_planned(tokens, &self.plan(length, positions))
    }

    /// The positions every block computes for the sorted, distinct `outputs` of a
    /// `length`-position sequence.
    ///
    /// # Panics
    /// If `outputs` is empty, not strictly increasing or reaches `length`.
    pub fn plan(&self, length: usize, outputs: &[usize]) -> PositionPlan {
        let geometries: Vec<_> = self
            .blocks
            .iter()
            .map(|b| (b.conv1.geometry(), b.conv2.geometry()))
            .collect();
        PositionPlan::new(&geometries, length, outputs)
    }

    /// Runs the backbone on the positions of `plan` (built by [`NextItNet::plan`] for this
    /// backbone and the tokens' length).
    ///
    /// # Shapes
    /// - tokens: `[batch, plan.length]`
    /// - output: `[batch, plan.outputs().len(), C]`
    ///
    /// # Panics
    /// If the plan has another number of blocks or another length.
    pub fn forward_planned(&self, tokens: Tensor<B, 2, Int>, plan: &PositionPlan) -> Tensor<B, 3> {
        assert_eq!(
            plan.blocks.len(),
            self.blocks.len(),
            "the plan was built for another backbone"
        );
        let mut x = self.embed_planned(tokens, plan);
        for (block, block_plan) in self.blocks.iter().zip(&plan.blocks) {
            x = block.forward_planned(x, block_plan);
        }
        x
    }

    /// The embeddings of the tokens at `plan.input`: the first block's compact input.
    ///
    /// # Shapes
    /// - tokens: `[batch, plan.length]`
    /// - output: `[batch, plan.input.len(), C]`
    ///
    /// # Panics
    /// If the tokens' length is not the plan's.
    pub fn embed_planned(&self, tokens: Tensor<B, 2, Int>, plan: &PositionPlan) -> Tensor<B, 3> {
        let [_, length] = tokens.dims();
        assert_eq!(length, plan.length, "the plan was built for another length");
        let tokens = if plan.input.len() == length {
            tokens
        } else {
            let index = plan.input.iter().map(|&p| p as i64).collect();
            let index = index_tensor(index, &tokens.device());
            tokens.select(1, index)
        };
        train_dropout(self.embedding.forward(tokens), self.dropout)
    }

    /// Sets the dropout probability, applied while training (when the backend records
    /// gradients) to the embeddings and to every block's residual branch before it is added:
    /// a regulariser of pretraining. It does not change inference, is not part of the
    /// configuration or the files, and a loaded or new backbone has none.
    ///
    /// # Panics
    /// If `prob` is not in `[0, 1)`.
    pub fn with_dropout(mut self, prob: f64) -> Self {
        assert!(
            (0.0..1.0).contains(&prob),
            "dropout probability {prob} is not in [0, 1)"
        );
        self.dropout = prob;
        for block in &mut self.blocks {
            block.dropout = prob;
        }
        self
    }

    /// The dropout probability set by [`NextItNet::with_dropout`] (0 by default).
    pub fn dropout(&self) -> f64 {
        self.dropout
    }

    /// The configuration this backbone was built from.
    pub fn config(&self) -> &NextItNetConfig {
        &self.config
    }

    /// Whether the convolutions are causal (NextItNet) or centred (the cloze encoder).
    pub fn causal(&self) -> bool {
        self.config.causal
    }

    /// Channels `C`.
    pub fn channels(&self) -> usize {
        self.embedding.weight.dims()[1]
    }

    /// Rows of the embedding table.
    pub fn num_tokens(&self) -> usize {
        self.embedding.weight.dims()[0]
    }

    /// Inserts fresh model patches into every block.
    pub fn attach_patches(
        self,
        insertion: Insertion,
        config: &ModelPatchConfig,
        device: &B::Device,
    ) -> Self {
        let blocks = self
            .blocks
            .into_iter()
            .enumerate()
            .map(|(i, b)| b.attach_patches(insertion, config, &format!("blocks.{i}"), device))
            .collect();
        Self { blocks, ..self }
    }

    /// The backbone with every block's patches removed.
    pub fn without_patches(self) -> Self {
        Self {
            blocks: self
                .blocks
                .into_iter()
                .map(|b| b.detach_patches())
                .collect(),
            ..self
        }
    }

    /// Whether any block carries a patch.
    pub fn has_patches(&self) -> bool {
        self.blocks
            .iter()
            .any(|b| b.mp1.is_some() || b.mp2.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::TensorData;

    type B = NdArray<f32>;

    fn tokens(ids: &[i64], b: usize, l: usize) -> Tensor<B, 2, Int> {
        Tensor::from_data(TensorData::new(ids.to_vec(), [b, l]), &Default::default())
    }

    fn out_rows(m: &NextItNet<B>, ids: &[i64], l: usize) -> Vec<Vec<f32>> {
        let v: Vec<f32> = m.forward(tokens(ids, 1, l)).into_data().to_vec().unwrap();
        let c = m.channels();
        v.chunks(c).map(|r| r.to_vec()).collect()
    }

    #[test]
    fn dropout_acts_only_while_training_and_is_removable() {
        type AB = burn::backend::Autodiff<B>;
        let cfg = NextItNetConfig::new(20, 8, vec![1, 2]).with_init_std(0.3);
        let device = Default::default();
        let plain = cfg.init::<AB>(&device);
        let ids: Vec<i64> = (0..12).map(|i| 4 + i % 13).collect();
        let run = |m: &NextItNet<AB>| -> Vec<f32> {
            let t = Tensor::from_data(TensorData::new(ids.clone(), [1, 12]), &device);
            m.forward(t).into_data().to_vec().unwrap()
        };
        let reference = run(&plain);
        let dropped = plain.clone().with_dropout(0.5);
        assert_eq!(dropped.dropout(), 0.5);
        assert!(dropped.blocks.iter().all(|b| b.dropout == 0.5));
        // Training (autodiff on): some values change.
        assert_ne!(run(&dropped), reference);
        // Inference (the inner backend): exactly the plain network.
        let inner: Vec<f32> = burn::module::AutodiffModule::valid(&dropped)
            .forward(tokens(&ids, 1, 12))
            .into_data()
            .to_vec()
            .unwrap();
        assert_eq!(inner, reference);
        // Set back to 0: exactly the plain network again, also while training.
        assert_eq!(run(&dropped.with_dropout(0.0)), reference);
    }

    #[test]
    #[should_panic(expected = "not in [0, 1)")]
    fn dropout_of_one_is_refused() {
        let _ = NextItNetConfig::new(20, 8, vec![1])
            .init::<B>(&Default::default())
            .with_dropout(1.0);
    }

    #[test]
    fn receptive_field_formula() {
        let c = NextItNetConfig::new(10, 4, vec![1, 4, 1, 4, 1, 4, 1, 4]);
        // 16 convs, dilations 1,2,4,8 four times: 1 + 2 * 4 * 15 = 121.
        assert_eq!(c.receptive_field(), 121);
        assert_eq!(
            NextItNetConfig::new(10, 4, vec![1, 2]).receptive_field(),
            1 + 2 * 9
        );
    }

    #[test]
    fn causal_output_depends_only_on_the_past_and_receptive_field_is_exact() {
        let cfg = NextItNetConfig::new(20, 6, vec![1, 2]).with_init_std(0.3);
        let rf = cfg.receptive_field(); // 19
        let l = 24;
        let m = cfg.init::<B>(&Default::default());
        let base: Vec<i64> = (0..l as i64).map(|i| 4 + i % 13).collect();
        let a = out_rows(&m, &base, l);
        for t in [0usize, 5, 11, 23] {
            let mut changed = base.clone();
            changed[t] = if changed[t] == 19 { 18 } else { 19 };
            let b = out_rows(&m, &changed, l);
            for p in 0..l {
                let differs = a[p] != b[p];
                let should = p >= t && p < t + rf;
                assert_eq!(differs, should, "perturb {t}, position {p}");
            }
        }
    }

    #[test]
    fn centred_mode_sees_the_future() {
        let cfg = NextItNetConfig::new(20, 6, vec![1])
            .with_causal(false)
            .with_init_std(0.3);
        let m = cfg.init::<B>(&Default::default());
        let base: Vec<i64> = (0..10).map(|i| 4 + i).collect();
        let mut changed = base.clone();
        changed[6] = 19;
        let (a, b) = (out_rows(&m, &base, 10), out_rows(&m, &changed, 10));
        // Radius is (rf - 1) / 2 = 3 on each side of position 6.
        for p in 0..10 {
            assert_eq!(a[p] != b[p], (3..=9).contains(&p), "position {p}");
        }
    }

    #[test]
    fn invalid_configs_are_typed_errors() {
        let d = Default::default();
        for cfg in [
            NextItNetConfig::new(10, 0, vec![1]),
            NextItNetConfig::new(10, 4, vec![]),
            NextItNetConfig::new(10, 4, vec![1, 0]),
            NextItNetConfig::new(10, 4, vec![1]).with_kernel_size(0),
            NextItNetConfig::new(0, 4, vec![1]),
            NextItNetConfig::new(10, 4, vec![1, (MAX_CONV_PADDING / 4) + 1]),
            NextItNetConfig::new(10, 4, vec![usize::MAX / 2]),
            NextItNetConfig::new(10, 4, vec![1 << 40]).with_kernel_size(1 << 30),
            NextItNetConfig::new(10, 4, vec![1])
                .with_causal(false)
                .with_kernel_size(2),
        ] {
            assert!(matches!(
                cfg.try_init::<B>(&d),
                Err(ModelError::InvalidConfig(_))
            ));
        }
    }
}
