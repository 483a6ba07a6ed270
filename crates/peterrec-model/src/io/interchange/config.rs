//! The port's configuration record and the structural checks against ours.

use super::*;

pub(super) fn default_true() -> bool {
    true
}

/// The port's configuration, as its `export` mode writes it into the metadata key `config`.
/// Keys this type does not name are kept in [`PortConfig::other`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortConfig {
    /// Vocabulary size `V` (rows of `emb.weight`).
    pub vocab: usize,
    /// Channels `C`.
    pub channels: usize,
    /// Kernel width `k`.
    pub kernel: usize,
    /// Block dilations (convolutions `d` then `2d` in each block).
    pub block_dilations: Vec<usize>,
    /// LayerNorm epsilon.
    pub layernorm_eps: f64,
    /// Causal convolutions (the port is always causal; ours may be centred).
    #[serde(default = "default_true")]
    pub causal: bool,
    /// Whether the blocks carry model patches.
    #[serde(default)]
    pub patches: bool,
    /// `serial`, `serial1` or `parallel`.
    #[serde(default)]
    pub patch_placement: Option<String>,
    /// `gelu` (tanh approximation) or `relu`; only `gelu` can be imported.
    #[serde(default)]
    pub patch_activation: Option<String>,
    /// Patch bottleneck width `b`.
    #[serde(default)]
    pub patch_bottleneck: Option<usize>,
    /// Parallel patches only: whether the patch adds its input beside the convolution
    /// (`conv(x) + x + delta(x)`, the port's convention, assumed when absent) or not (ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_parallel_adds_input: Option<bool>,
    /// Description of the fine-tune head: `linear ...` ([`TaskHead::Classifier`]) or
    /// `embedding ...` ([`TaskHead::TargetItems`]).
    #[serde(default)]
    pub ft_head: Option<String>,
    /// Every other key (the fixtures' `seq_len`, `batch`, layout notes, ...).
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl PortConfig {
    /// The port configuration of a backbone built from `config`, without patches or heads.
    pub fn of_backbone(config: &NextItNetConfig) -> Self {
        let mut other = serde_json::Map::new();
        let mut note = |k: &str, v: &str| {
            other.insert(k.into(), serde_json::Value::String(v.into()));
        };
        note("conv_dilations_per_block", "d then 2*d");
        note(
            "weight_layouts",
            "torch: Conv1d weight [out, in, k]; Linear weight [out, in]; Embedding [num, dim]",
        );
        note("written_by", "peterrec-model interchange");
        other.insert("padding_id".into(), serde_json::Value::from(0));
        PortConfig {
            vocab: config.num_tokens,
            channels: config.channels,
            kernel: config.kernel_size,
            block_dilations: config.dilations.clone(),
            layernorm_eps: config.layer_norm_eps,
            causal: config.causal,
            patches: false,
            patch_placement: None,
            patch_activation: None,
            patch_bottleneck: None,
            patch_parallel_adds_input: None,
            ft_head: None,
            other,
        }
    }

    /// Our backbone configuration (default init std and seed: every parameter comes from the
    /// file).
    pub fn backbone_config(&self) -> Result<NextItNetConfig> {
        let config = NextItNetConfig::new(self.vocab, self.channels, self.block_dilations.clone())
            .with_kernel_size(self.kernel)
            .with_causal(self.causal)
            .with_layer_norm_eps(self.layernorm_eps);
        config.validate()?;
        Ok(config)
    }

    /// Where the patches go (`None` without patches). Refuses what our patches cannot compute.
    pub fn insertion(&self) -> Result<Option<Insertion>> {
        if !self.patches {
            return Ok(None);
        }
        match self.patch_activation.as_deref() {
            Some("gelu") => {}
            other => {
                return Err(ModelError::InvalidConfig(format!(
                    "patch activation {other:?}: our model patches use GELU (tanh form); \
                     export from the port with `--adapter-act gelu`"
                )))
            }
        }
        match self.patch_placement.as_deref() {
            Some("serial") => Ok(Some(Insertion::Serial)),
            Some("serial1") => Ok(Some(Insertion::SerialOne)),
            Some("parallel") => Ok(Some(Insertion::Parallel)),
            other => Err(ModelError::InvalidConfig(format!(
                "unknown patch placement {other:?} (expected serial, serial1 or parallel)"
            ))),
        }
    }

    /// Whether parallel patches add their input (the port's convention unless the file says
    /// otherwise).
    pub fn parallel_adds_input(&self) -> bool {
        self.patch_parallel_adds_input.unwrap_or(true)
    }

    pub(super) fn set_patches(&mut self, layout: Option<PatchLayout>) {
        let Some(layout) = layout else {
            self.patches = false;
            self.patch_placement = None;
            self.patch_activation = None;
            self.patch_bottleneck = None;
            self.patch_parallel_adds_input = None;
            return;
        };
        self.patches = true;
        self.patch_placement = Some(
            match layout.insertion {
                Insertion::Serial => "serial",
                Insertion::SerialOne => "serial1",
                Insertion::Parallel => "parallel",
            }
            .into(),
        );
        self.patch_activation = Some("gelu".into());
        self.patch_bottleneck = Some(layout.bottleneck);
        self.patch_parallel_adds_input =
            (layout.insertion == Insertion::Parallel).then_some(layout.adds_input);
    }
}

/// Whether two backbone configurations describe the same network shape (init std and seed do not
/// matter once weights are loaded).
pub(super) fn same_structure(a: &NextItNetConfig, b: &NextItNetConfig) -> bool {
    a.num_tokens == b.num_tokens
        && a.channels == b.channels
        && a.dilations == b.dilations
        && a.kernel_size == b.kernel_size
        && a.causal == b.causal
        && a.layer_norm_eps == b.layer_norm_eps
}

pub(super) fn check_matches<B: Backend>(
    backbone: &NextItNet<B>,
    config: &NextItNetConfig,
) -> Result<()> {
    let ok = backbone.num_tokens() == config.num_tokens
        && backbone.channels() == config.channels
        && backbone.blocks.len() == config.dilations.len()
        && backbone
            .blocks
            .iter()
            .zip(&config.dilations)
            .all(|(b, &d)| {
                b.conv1.dilation == d
                    && b.conv2.dilation == 2 * d
                    && b.conv1.kernel_size == config.kernel_size
                    && b.conv1.causal == config.causal
            });
    if ok {
        Ok(())
    } else {
        Err(ModelError::InvalidConfig(
            "the backbone does not match its configuration".into(),
        ))
    }
}
