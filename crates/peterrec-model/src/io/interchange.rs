//! Weight interchange with the PyTorch port (`shared/bench/nextitnet_torch.py`).
//!
//! Backbones (with or without model patches), pretraining heads and tasks (patches, every
//! block's `ln2`, the fine-tune head) are written to and read from
//! [safetensors](https://github.com/huggingface/safetensors) files whose tensors carry the names
//! of the port's `state_dict`, in PyTorch's layouts. The port's `export` mode writes such a file
//! (every parameter plus fixed inputs and expected outputs: a parity fixture); the files written
//! here carry the names, shapes and layouts of the port's `state_dict` (the facade's
//! `tests/parity.rs` re-exports the fixtures' models and compares them tensor by tensor), so the
//! port can `load_state_dict` them.
//!
//! # Name map
//!
//! `N` is the block index, `M` is 1 or 2 (the patch at the first or second convolution), `k` the
//! kernel width, `C` the channels, `b` the patch bottleneck, `V` the vocabulary, `K` the classes or
//! target items of the fine-tune head. Our paths are module paths inside [`NextItNet`]
//! (`backbone.` in a [`NextItNetLM`] or [`FineTuneModel`]), [`SoftmaxHead`] and [`TaskHead`].
//!
//! | port `state_dict` name | port shape | ours | our shape | conversion |
//! | --- | --- | --- | --- | --- |
//! | `emb.weight` | `[V, C]` | `embedding.weight` | `[V, C]` | as is |
//! | `blocks.N.conv1.conv.weight` | `[C, C, k]` (out, in, tap) | `blocks.N.conv1.linear.weight` | `[k·C, C]` | `ours[j·C + i, o] = port[o, i, j]` |
//! | `blocks.N.conv1.conv.bias` | `[C]` | `blocks.N.conv1.linear.bias` | `[C]` | as is |
//! | `blocks.N.ln1.weight` | `[C]` | `blocks.N.ln1.gamma` | `[C]` | as is |
//! | `blocks.N.ln1.bias` | `[C]` | `blocks.N.ln1.beta` | `[C]` | as is |
//! | `blocks.N.conv2.conv.weight` | `[C, C, k]` | `blocks.N.conv2.linear.weight` | `[k·C, C]` | as `conv1` (dilation `2d`) |
//! | `blocks.N.conv2.conv.bias` | `[C]` | `blocks.N.conv2.linear.bias` | `[C]` | as is |
//! | `blocks.N.ln2.weight` | `[C]` | `blocks.N.ln2.gamma` | `[C]` | as is (task part) |
//! | `blocks.N.ln2.bias` | `[C]` | `blocks.N.ln2.beta` | `[C]` | as is (task part) |
//! | `blocks.N.mpM.down.weight` | `[b, C]` (out, in) | `blocks.N.mpM.down.weight` | `[C, b]` | transpose |
//! | `blocks.N.mpM.down.bias` | `[b]` | `blocks.N.mpM.down.bias` | `[b]` | as is |
//! | `blocks.N.mpM.up.weight` | `[C, b]` | `blocks.N.mpM.up.weight` | `[b, C]` | transpose |
//! | `blocks.N.mpM.up.bias` | `[C]` | `blocks.N.mpM.up.bias` | `[C]` | as is |
//! | `head.weight` | `[V, C]` | `head.linear.weight` ([`SoftmaxHead`]) | `[C, V]` | transpose |
//! | `head.bias` | `[V]` | `head.linear.bias` | `[V]` | as is |
//! | `ft_head.weight` (`nn.Linear`) | `[K, C]` | [`TaskHead::Classifier`] `weight` | `[C, K]` | transpose |
//! | `ft_head.bias` (`nn.Linear`) | `[K]` | [`TaskHead::Classifier`] `bias` | `[K]` | as is |
//! | `ft_head.weight` (`nn.Embedding`, no bias) | `[K, C]` | [`TaskHead::TargetItems`] `weight` | `[K, C]` | as is |
//!
//! Only `f32` parameters are read and written. A fixture also holds `input_ids` (`i64`
//! `[B, L]`), `expected.hidden` (`[B, L, C]`), `expected.logits` (`[B, L, V]`) and
//! `expected.ft_scores` (`[B, K]`), which the importers ignore ([`PortFile`] reads them).
//!
//! The metadata key `config` holds the port's configuration as JSON ([`PortConfig`]): `vocab`,
//! `channels`, `kernel`, `block_dilations`, `layernorm_eps`, `causal`, `patches`,
//! `patch_placement` (`serial` = [`Insertion::Serial`], `serial1` = [`Insertion::SerialOne`],
//! `parallel` = [`Insertion::Parallel`]), `patch_activation`, `patch_bottleneck`, `ft_head`
//! (`linear ...` or `embedding ...`). Files written here add `patch_parallel_adds_input` (see
//! below) and the metadata key `backbone_hash` ([`content_hash`] of the backbone a task was
//! trained on) in task files.
//!
//! # Where the two networks differ, and how this module handles it
//!
//! - **Parallel patches.** The port computes `conv(x) + MP(x) = conv(x) + x + delta(x)` beside
//!   each convolution; our [`Insertion::Parallel`] computes `conv(x) + delta(x)`. The importers
//!   set [`ResidualBlock::parallel_adds_input`] on every block of a parallel-patched model read
//!   from a file, so the imported network computes the port's function; the exporters write the
//!   flag as `patch_parallel_adds_input`. A port-written file lacks that key, and its parallel
//!   patches are read with the port's convention (`true`). A file exported from a model of ours
//!   with the flag off records `false`: our importer honours it, but the port itself always adds
//!   the input, so such a file is not the same network in PyTorch. Our own task files
//!   ([`crate::persist`]) do not record the flag: save an imported parallel task with
//!   [`export_task`], not [`FineTuneModel::save_task`].
//! - **Patch activation.** Our patches use GELU in its tanh form (the original code's); a port
//!   file with `patch_activation: relu` is refused.
//! - **Token 0.** The port has no reserved ids: id 0 is an ordinary embedding row (its fixtures
//!   use it for left padding), exactly as our `PAD = 0` row is an ordinary, trained row. No id is
//!   remapped: the same ids give the same numbers on both sides. Our data pipeline reserves ids
//!   0–3 (`peterrec_data::vocab`); the port's item ids are the caller's business.
//! - **The fine-tune user vector.** The port's fine-tune head reads the hidden state at the last
//!   input position, with no `[CLS]` token; [`FineTuneModel::forward`] also reads the last
//!   position (where our pipeline puts `[CLS]`). Feed the same ids to both.
//! - **Strategies.** A task file holds patches, `ln2` and the head ([`Strategy::PeterRec`]) or
//!   only the head when the file has no patches ([`Strategy::FineCls`]); other strategies change
//!   the backbone and are exported with [`export_backbone`]. Importing a no-patch task whose
//!   `ln2` differs from the backbone's is refused (FineCls would silently drop it).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, Linear};
use burn::tensor::{backend::Backend, Tensor, TensorData};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::backbone::{NextItNet, NextItNetConfig};
use crate::block::{Insertion, ResidualBlock};
use crate::conv::DilatedConv1d;
use crate::error::{ModelError, Result};
use crate::finetune::{FineTuneConfig, FineTuneModel, Strategy};
use crate::head::{HeadKind, SoftmaxHead, TaskHead};
use crate::lm::NextItNetLM;
use crate::patch::ModelPatch;
use crate::paths::NamedTensor;
use crate::persist::{content_hash, write_atomic};

const KIND: &str = "PyTorch-port interchange";

/// An integer tensor of a [`PortFile`] (the fixtures' `input_ids`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<i64>,
}

/// The contents of a safetensors file in the port's naming: metadata, `f32` tensors and `i64`
/// tensors, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortFile {
    /// The file's metadata (`config` holds a [`PortConfig`] as JSON).
    pub metadata: HashMap<String, String>,
    /// `f32` tensors by name.
    pub floats: BTreeMap<String, NamedTensor>,
    /// `i64` tensors by name.
    pub ints: BTreeMap<String, IntTensor>,
    /// Where the file was read from (used in error messages; empty for a file built in memory).
    pub source: PathBuf,
}

impl PortFile {
    /// Reads a safetensors file. `F32` and `I64` tensors are kept; another dtype is an error.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bad = |reason: String| format_error(path, reason);
        let buffer = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let (_, header) = SafeTensors::read_metadata(&buffer).map_err(|e| bad(e.to_string()))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let st = SafeTensors::deserialize(&buffer).map_err(|e| bad(e.to_string()))?;
        let mut file = PortFile {
            metadata,
            source: path.to_path_buf(),
            ..Default::default()
        };
        for (name, view) in st.tensors() {
            let shape = view.shape().to_vec();
            match view.dtype() {
                Dtype::F32 => {
                    let values = view
                        .data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    file.insert_float(&name, shape, values);
                }
                Dtype::I64 => {
                    let values = view
                        .data()
                        .chunks_exact(8)
                        .map(|b| {
                            i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                        })
                        .collect();
                    file.ints.insert(name, IntTensor { shape, values });
                }
                other => {
                    return Err(bad(format!(
                        "tensor `{name}` is {other:?}; only F32 and I64 are read"
                    )))
                }
            }
        }
        Ok(file)
    }

    /// Writes the file (atomically: a temporary file renamed into place).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for (name, t) in &self.floats {
            let b = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            bytes.push((name.clone(), Dtype::F32, t.shape.clone(), b));
        }
        for (name, t) in &self.ints {
            let b = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            bytes.push((name.clone(), Dtype::I64, t.shape.clone(), b));
        }
        let views = bytes
            .iter()
            .map(|(name, dtype, shape, b)| {
                TensorView::new(*dtype, shape.clone(), b)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| format_error(path, e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let data = safetensors::serialize(views, Some(self.metadata.clone()))
            .map_err(|e| format_error(path, e.to_string()))?;
        write_atomic(path, &data)
    }

    /// The `f32` tensor called `name`.
    pub fn float(&self, name: &str) -> Option<&NamedTensor> {
        self.floats.get(name)
    }

    /// The `i64` tensor called `name`.
    pub fn int(&self, name: &str) -> Option<&IntTensor> {
        self.ints.get(name)
    }

    /// Adds (or replaces) an `f32` tensor.
    pub fn insert_float(&mut self, name: &str, shape: Vec<usize>, values: Vec<f32>) {
        self.floats.insert(
            name.to_string(),
            NamedTensor {
                name: name.to_string(),
                shape,
                values,
            },
        );
    }

    /// The configuration in the metadata key `config`.
    pub fn config(&self) -> Result<PortConfig> {
        let text = self
            .metadata
            .get("config")
            .ok_or_else(|| format_error(&self.source, "no `config` in the metadata".into()))?;
        serde_json::from_str(text).map_err(|e| format_error(&self.source, e.to_string()))
    }

    fn set_config(&mut self, config: &PortConfig) {
        let json = serde_json::to_string(config).expect("the configuration serializes to JSON");
        self.metadata.insert("config".into(), json);
    }
}

fn format_error(path: &Path, reason: String) -> ModelError {
    ModelError::Format {
        path: path.to_path_buf(),
        kind: KIND,
        reason,
    }
}

fn tensor_error(path: &Path, name: &str, reason: String) -> ModelError {
    ModelError::Tensor {
        path: path.to_path_buf(),
        name: name.to_string(),
        reason,
    }
}

fn default_true() -> bool {
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

    fn set_patches(&mut self, layout: Option<PatchLayout>) {
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
fn same_structure(a: &NextItNetConfig, b: &NextItNetConfig) -> bool {
    a.num_tokens == b.num_tokens
        && a.channels == b.channels
        && a.dilations == b.dilations
        && a.kernel_size == b.kernel_size
        && a.causal == b.causal
        && a.layer_norm_eps == b.layer_norm_eps
}

fn check_matches<B: Backend>(backbone: &NextItNet<B>, config: &NextItNetConfig) -> Result<()> {
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

// ---------------------------------------------------------------------------------------------
// Layout conversions (host side, exact: they only move values).

/// `[rows, cols]` → `[cols, rows]`.
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

/// Port `Conv1d` weight `[out, in, k]` → our `[k·in, out]`.
fn conv_from_port(w: &[f32], c_out: usize, c_in: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for o in 0..c_out {
        for i in 0..c_in {
            for j in 0..k {
                out[(j * c_in + i) * c_out + o] = w[(o * c_in + i) * k + j];
            }
        }
    }
    out
}

/// Our `[k·in, out]` → port `Conv1d` weight `[out, in, k]`.
fn conv_to_port(w: &[f32], c_out: usize, c_in: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for o in 0..c_out {
        for i in 0..c_in {
            for j in 0..k {
                out[(o * c_in + i) * k + j] = w[(j * c_in + i) * c_out + o];
            }
        }
    }
    out
}

fn host<B: Backend, const D: usize>(p: &Param<Tensor<B, D>>) -> Vec<f32> {
    p.val()
        .into_data()
        .convert::<f32>()
        .to_vec()
        .expect("float parameter")
}

fn param<B: Backend, const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
}

// ---------------------------------------------------------------------------------------------
// Export: our modules → port tensors.

fn put_linear<B: Backend>(out: &mut PortFile, name: &str, linear: &Linear<B>) {
    let [d_in, d_out] = linear.weight.dims();
    out.insert_float(
        &format!("{name}.weight"),
        vec![d_out, d_in],
        transpose(&host(&linear.weight), d_in, d_out),
    );
    if let Some(bias) = &linear.bias {
        out.insert_float(&format!("{name}.bias"), vec![d_out], host(bias));
    }
}

fn put_conv<B: Backend>(out: &mut PortFile, name: &str, conv: &DilatedConv1d<B>) {
    let [rows, c_out] = conv.linear.weight.dims();
    let k = conv.kernel_size;
    let c_in = rows / k;
    out.insert_float(
        &format!("{name}.conv.weight"),
        vec![c_out, c_in, k],
        conv_to_port(&host(&conv.linear.weight), c_out, c_in, k),
    );
    let bias = match &conv.linear.bias {
        Some(b) => host(b),
        None => vec![0.0; c_out],
    };
    out.insert_float(&format!("{name}.conv.bias"), vec![c_out], bias);
}

fn put_ln<B: Backend>(out: &mut PortFile, name: &str, ln: &LayerNorm<B>) {
    let [c] = ln.gamma.dims();
    out.insert_float(&format!("{name}.weight"), vec![c], host(&ln.gamma));
    let beta = match &ln.beta {
        Some(b) => host(b),
        None => vec![0.0; c],
    };
    out.insert_float(&format!("{name}.bias"), vec![c], beta);
}

fn put_patch<B: Backend>(out: &mut PortFile, name: &str, patch: &ModelPatch<B>) {
    put_linear(out, &format!("{name}.down"), &patch.down);
    put_linear(out, &format!("{name}.up"), &patch.up);
}

/// How the patches of a backbone are laid out.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PatchLayout {
    insertion: Insertion,
    adds_input: bool,
    bottleneck: usize,
}

/// The patch layout shared by every block (`None` without patches); mixed layouts are refused.
fn patch_layout<B: Backend>(backbone: &NextItNet<B>) -> Result<Option<PatchLayout>> {
    let mut found: Option<Option<PatchLayout>> = None;
    for (n, block) in backbone.blocks.iter().enumerate() {
        let layout = match (&block.mp1, &block.mp2, block.parallel) {
            (None, None, _) => None,
            (Some(_), Some(mp2), parallel) => Some(PatchLayout {
                insertion: if parallel {
                    Insertion::Parallel
                } else {
                    Insertion::Serial
                },
                adds_input: parallel && block.parallel_adds_input,
                bottleneck: mp2.down.weight.dims()[1],
            }),
            (None, Some(mp2), false) => Some(PatchLayout {
                insertion: Insertion::SerialOne,
                adds_input: false,
                bottleneck: mp2.down.weight.dims()[1],
            }),
            _ => {
                return Err(ModelError::InvalidConfig(format!(
                    "block {n}: this patch layout has no counterpart in the port"
                )))
            }
        };
        match found {
            None => found = Some(layout),
            Some(first) if first == layout => {}
            Some(_) => {
                return Err(ModelError::InvalidConfig(
                    "blocks carry different patch layouts; the port has one for all blocks".into(),
                ))
            }
        }
    }
    Ok(found.flatten())
}

/// Adds the backbone's tensors (patches too when `with_patches`).
fn put_backbone<B: Backend>(out: &mut PortFile, backbone: &NextItNet<B>, with_patches: bool) {
    let [v, c] = backbone.embedding.weight.dims();
    out.insert_float("emb.weight", vec![v, c], host(&backbone.embedding.weight));
    for (n, block) in backbone.blocks.iter().enumerate() {
        put_conv(out, &format!("blocks.{n}.conv1"), &block.conv1);
        put_ln(out, &format!("blocks.{n}.ln1"), &block.ln1);
        put_conv(out, &format!("blocks.{n}.conv2"), &block.conv2);
        put_ln(out, &format!("blocks.{n}.ln2"), &block.ln2);
        if with_patches {
            put_block_patches(out, n, block);
        }
    }
}

fn put_block_patches<B: Backend>(out: &mut PortFile, n: usize, block: &ResidualBlock<B>) {
    if let Some(mp) = &block.mp1 {
        put_patch(out, &format!("blocks.{n}.mp1"), mp);
    }
    if let Some(mp) = &block.mp2 {
        put_patch(out, &format!("blocks.{n}.mp2"), mp);
    }
}

/// The port tensors of a backbone (with its patches, if any) and, if given, its pretraining head.
pub fn backbone_to_port<B: Backend>(
    backbone: &NextItNet<B>,
    head: Option<&SoftmaxHead<B>>,
) -> Result<PortFile> {
    let config = backbone.config();
    config.validate()?;
    check_matches(backbone, config)?;
    let layout = patch_layout(backbone)?;
    let mut file = PortFile::default();
    put_backbone(&mut file, backbone, true);
    if let Some(head) = head {
        put_linear(&mut file, "head", &head.linear);
    }
    let mut pc = PortConfig::of_backbone(config);
    pc.set_patches(layout);
    if head.is_some() {
        pc.other.insert(
            "pretrain_head".into(),
            "logits = head(relu(hidden)); head.weight [V, C]".into(),
        );
    }
    file.set_config(&pc);
    Ok(file)
}

/// Writes a backbone (with its patches, if any) in the port's naming.
pub fn export_backbone<B: Backend>(backbone: &NextItNet<B>, path: impl AsRef<Path>) -> Result<()> {
    backbone_to_port(backbone, None)?.write(path)
}

/// Writes a pretraining model (backbone and `head.*`) in the port's naming.
pub fn export_pretrained<B: Backend>(model: &NextItNetLM<B>, path: impl AsRef<Path>) -> Result<()> {
    backbone_to_port(&model.backbone, Some(&model.head))?.write(path)
}

/// The port tensors of a task: every block's patches and `ln2` (PeterRec) and `ft_head.*`.
pub fn task_to_port<B: Backend>(task: &FineTuneModel<B>) -> Result<PortFile> {
    let with_block_parts = match task.strategy() {
        Strategy::PeterRec { .. } => true,
        Strategy::FineCls => false,
        other => {
            return Err(ModelError::InvalidConfig(format!(
                "a `{other}` task changes the backbone; export the backbone with \
                 `export_backbone` instead"
            )))
        }
    };
    let layout = patch_layout(&task.backbone)?;
    let mut file = PortFile::default();
    if with_block_parts {
        for (n, block) in task.backbone.blocks.iter().enumerate() {
            put_block_patches(&mut file, n, block);
            put_ln(&mut file, &format!("blocks.{n}.ln2"), &block.ln2);
        }
    }
    let head_note = match &task.head {
        TaskHead::Classifier(linear) => {
            put_linear(&mut file, "ft_head", linear);
            if linear.bias.is_some() {
                "linear [classes, C] + bias"
            } else {
                "linear [classes, C], no bias"
            }
        }
        TaskHead::TargetItems(table) => {
            let [t, c] = table.weight.dims();
            file.insert_float("ft_head.weight", vec![t, c], host(&table.weight));
            "embedding table [classes, C], dot product"
        }
    };
    let mut pc = PortConfig::of_backbone(&task.meta.backbone);
    pc.set_patches(layout);
    pc.ft_head = Some(head_note.into());
    file.set_config(&pc);
    file.metadata.insert(
        "backbone_hash".into(),
        format!("{:016x}", task.meta.backbone_hash),
    );
    Ok(file)
}

/// Writes a task (patches, every block's `ln2`, `ft_head.*`) in the port's naming.
pub fn export_task<B: Backend>(task: &FineTuneModel<B>, path: impl AsRef<Path>) -> Result<()> {
    task_to_port(task)?.write(path)
}

// ---------------------------------------------------------------------------------------------
// Import: port tensors → our modules.

/// Reads tensors from a [`PortFile`], checking shapes and remembering which were used.
struct Source<'a> {
    file: &'a PortFile,
    used: RefCell<HashSet<String>>,
}

impl<'a> Source<'a> {
    fn new(file: &'a PortFile) -> Self {
        Self {
            file,
            used: RefCell::new(HashSet::new()),
        }
    }

    fn path(&self) -> &Path {
        &self.file.source
    }

    fn has(&self, name: &str) -> bool {
        self.file.floats.contains_key(name)
    }

    /// The tensor `name`, of rank `shape.len()`; `None` entries of `shape` accept any size.
    fn get_any(&self, name: &str, shape: &[Option<usize>]) -> Result<&'a NamedTensor> {
        let t = self
            .file
            .floats
            .get(name)
            .ok_or_else(|| tensor_error(self.path(), name, "missing from the file".into()))?;
        let fits = t.shape.len() == shape.len()
            && t.shape
                .iter()
                .zip(shape)
                .all(|(&a, b)| b.is_none_or(|b| a == b));
        if !fits {
            let want: Vec<String> = shape
                .iter()
                .map(|d| d.map_or("_".into(), |d| d.to_string()))
                .collect();
            return Err(tensor_error(
                self.path(),
                name,
                format!(
                    "shape {:?} in the file, [{}] expected",
                    t.shape,
                    want.join(", ")
                ),
            ));
        }
        self.used.borrow_mut().insert(name.to_string());
        Ok(t)
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<&'a [f32]> {
        let shape: Vec<Option<usize>> = shape.iter().map(|&d| Some(d)).collect();
        Ok(&self.get_any(name, &shape)?.values)
    }

    /// Port `nn.Linear` `name` → our `Linear` (`d_out` given, `d_in` any).
    fn linear<B: Backend>(
        &self,
        name: &str,
        d_in: Option<usize>,
        d_out: Option<usize>,
        bias_required: bool,
        device: &B::Device,
    ) -> Result<Linear<B>> {
        let w = self.get_any(&format!("{name}.weight"), &[d_out, d_in])?;
        let (d_out, d_in) = (w.shape[0], w.shape[1]);
        let bias_name = format!("{name}.bias");
        let bias = if bias_required || self.has(&bias_name) {
            Some(param(
                self.get(&bias_name, &[d_out])?.to_vec(),
                [d_out],
                device,
            ))
        } else {
            None
        };
        Ok(Linear {
            weight: param(transpose(&w.values, d_out, d_in), [d_in, d_out], device),
            bias,
        })
    }

    fn conv<B: Backend>(
        &self,
        name: &str,
        conv: &mut DilatedConv1d<B>,
        device: &B::Device,
    ) -> Result<()> {
        let [rows, c_out] = conv.linear.weight.dims();
        let k = conv.kernel_size;
        let c_in = rows / k;
        let w = self.get(&format!("{name}.conv.weight"), &[c_out, c_in, k])?;
        conv.linear.weight = param(conv_from_port(w, c_out, c_in, k), [rows, c_out], device);
        let b = self.get(&format!("{name}.conv.bias"), &[c_out])?;
        conv.linear.bias = Some(param(b.to_vec(), [c_out], device));
        Ok(())
    }

    fn ln<B: Backend>(&self, name: &str, ln: &mut LayerNorm<B>, device: &B::Device) -> Result<()> {
        let [c] = ln.gamma.dims();
        ln.gamma = param(
            self.get(&format!("{name}.weight"), &[c])?.to_vec(),
            [c],
            device,
        );
        ln.beta = Some(param(
            self.get(&format!("{name}.bias"), &[c])?.to_vec(),
            [c],
            device,
        ));
        Ok(())
    }

    fn patch<B: Backend>(
        &self,
        name: &str,
        channels: usize,
        bottleneck: Option<usize>,
        device: &B::Device,
    ) -> Result<ModelPatch<B>> {
        let down = self.linear(
            &format!("{name}.down"),
            Some(channels),
            bottleneck,
            true,
            device,
        )?;
        let b = down.weight.dims()[1];
        let up = self.linear(&format!("{name}.up"), Some(b), Some(channels), true, device)?;
        Ok(ModelPatch { down, up })
    }

    /// Replaces the patches of `block` by the file's `blocks.{n}.mp*`.
    fn block_patches<B: Backend>(
        &self,
        n: usize,
        block: &mut ResidualBlock<B>,
        config: &PortConfig,
        insertion: Insertion,
        device: &B::Device,
    ) -> Result<()> {
        let c = config.channels;
        let b = config.patch_bottleneck;
        let mp1 = format!("blocks.{n}.mp1");
        block.mp1 = match insertion {
            Insertion::Serial | Insertion::Parallel => Some(self.patch(&mp1, c, b, device)?),
            Insertion::SerialOne => None,
        };
        block.mp2 = Some(self.patch(&format!("blocks.{n}.mp2"), c, b, device)?);
        block.parallel = insertion == Insertion::Parallel;
        block.parallel_adds_input = block.parallel && config.parallel_adds_input();
        Ok(())
    }

    /// Fails on a `blocks.*` tensor no reader used (a block or patch the model lacks).
    fn check_blocks_used(&self) -> Result<()> {
        let used = self.used.borrow();
        match self
            .file
            .floats
            .keys()
            .find(|k| k.starts_with("blocks.") && !used.contains(*k))
        {
            Some(k) => Err(tensor_error(
                self.path(),
                k,
                "the configuration has no place for this tensor".into(),
            )),
            None => Ok(()),
        }
    }
}

/// Builds the backbone (with its patches, if the file has them) from a port file.
pub fn backbone_from_port<B: Backend>(file: &PortFile, device: &B::Device) -> Result<NextItNet<B>> {
    let pc = file.config()?;
    let config = pc.backbone_config()?;
    let insertion = pc.insertion()?;
    let src = Source::new(file);
    let mut backbone = config.try_init::<B>(device)?;
    let (v, c) = (config.num_tokens, config.channels);
    backbone.embedding = Embedding {
        weight: param(src.get("emb.weight", &[v, c])?.to_vec(), [v, c], device),
    };
    for (n, block) in backbone.blocks.iter_mut().enumerate() {
        src.conv(&format!("blocks.{n}.conv1"), &mut block.conv1, device)?;
        src.ln(&format!("blocks.{n}.ln1"), &mut block.ln1, device)?;
        src.conv(&format!("blocks.{n}.conv2"), &mut block.conv2, device)?;
        src.ln(&format!("blocks.{n}.ln2"), &mut block.ln2, device)?;
        if let Some(insertion) = insertion {
            src.block_patches(n, block, &pc, insertion, device)?;
        }
    }
    src.check_blocks_used()?;
    Ok(backbone)
}

/// Reads a backbone (with its patches, if the file has them) written by the port or by
/// [`export_backbone`] / [`export_pretrained`]. Heads and fixture tensors are ignored.
pub fn import_backbone<B: Backend>(
    path: impl AsRef<Path>,
    device: &B::Device,
) -> Result<NextItNet<B>> {
    backbone_from_port(&PortFile::read(path)?, device)
}

/// Reads a pretraining model: the backbone (with its patches, if any) and `head.*`.
pub fn import_pretrained<B: Backend>(
    path: impl AsRef<Path>,
    device: &B::Device,
) -> Result<NextItNetLM<B>> {
    let file = PortFile::read(path)?;
    let backbone = backbone_from_port(&file, device)?;
    let config = backbone.config().clone();
    let src = Source::new(&file);
    let linear = src.linear(
        "head",
        Some(config.channels),
        Some(config.num_tokens),
        false,
        device,
    )?;
    Ok(NextItNetLM {
        backbone,
        head: SoftmaxHead { linear },
    })
}

/// Builds a task on `backbone` from a port file: see [`import_task`].
pub fn task_from_port<B: Backend>(
    file: &PortFile,
    backbone: NextItNet<B>,
    device: &B::Device,
) -> Result<FineTuneModel<B>> {
    let config = &backbone.config().clone();
    let path = file.source.as_path();
    let pc = file.config()?;
    let file_config = pc.backbone_config()?;
    let mismatch = |what: String, expected: String, found: String| ModelError::BackboneMismatch {
        path: path.to_path_buf(),
        what,
        expected,
        found,
    };
    if !same_structure(&file_config, config) {
        return Err(mismatch(
            "config".into(),
            serde_json::to_string(&file_config).unwrap_or_default(),
            serde_json::to_string(config).unwrap_or_default(),
        ));
    }
    check_matches(&backbone, config)?;
    if let Some(hash) = file.metadata.get("backbone_hash") {
        let found = format!("{:016x}", content_hash(&backbone));
        if *hash != found {
            return Err(mismatch("content hash".into(), hash.clone(), found));
        }
    }
    let insertion = pc.insertion()?;
    // A full port file also carries the backbone it was trained on: it must be this one. The
    // `ln2` of a PeterRec task is the task's own.
    let ours = {
        let mut f = PortFile::default();
        put_backbone(&mut f, &backbone, false);
        f
    };
    for (name, theirs) in &file.floats {
        let task_ln2 = insertion.is_some() && name.contains(".ln2.");
        let Some(mine) = ours.floats.get(name) else {
            continue;
        };
        if task_ln2 {
            continue;
        }
        if mine.shape != theirs.shape || mine.values != theirs.values {
            let diff = mine
                .values
                .iter()
                .zip(&theirs.values)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            let what = if name.contains(".ln2.") {
                format!("tensor `{name}` (a task without patches keeps the backbone's ln2)")
            } else {
                format!("tensor `{name}`")
            };
            return Err(mismatch(
                what,
                format!("the file's {:?}", theirs.shape),
                format!("{:?}, max abs difference {diff}", mine.shape),
            ));
        }
    }

    let src = Source::new(file);
    let c = config.channels;
    let (head, head_kind) = {
        let kind = pc.ft_head.as_deref().unwrap_or("");
        let linear = if kind.starts_with("linear") {
            true
        } else if kind.starts_with("embedding") {
            false
        } else {
            src.has("ft_head.bias")
        };
        if linear {
            let l = src.linear("ft_head", Some(c), None, false, device)?;
            let outputs = l.weight.dims()[1];
            (TaskHead::Classifier(l), HeadKind::Classifier { outputs })
        } else {
            let w = src.get_any("ft_head.weight", &[None, Some(c)])?;
            let outputs = w.shape[0];
            let table = Embedding {
                weight: param(w.values.clone(), [outputs, c], device),
            };
            (
                TaskHead::TargetItems(table),
                HeadKind::TargetItems { outputs },
            )
        }
    };
    let (strategy, ratio) = match insertion {
        Some(insertion) => {
            let b = match pc.patch_bottleneck {
                Some(b) => b,
                None => {
                    src.get_any("blocks.0.mp2.down.weight", &[None, Some(c)])?
                        .shape[0]
                }
            };
            // `ModelPatchConfig::bottleneck` is `ceil(C · ratio)`: aim below `b` to be exact.
            let mut ratio = b as f64 / c as f64;
            if ((c as f64 * ratio).ceil() as usize) != b {
                ratio = (b as f64 - 0.5) / c as f64;
            }
            (Strategy::PeterRec { insertion }, ratio)
        }
        None => (Strategy::FineCls, 0.25),
    };
    let mut model = FineTuneConfig::new(strategy, head_kind)
        .with_bottleneck_ratio(ratio)
        .init(backbone, device)?;
    if let Some(insertion) = insertion {
        for (n, block) in model.backbone.blocks.iter_mut().enumerate() {
            src.block_patches(n, block, &pc, insertion, device)?;
            src.ln(&format!("blocks.{n}.ln2"), &mut block.ln2, device)?;
        }
    }
    // Every patch tensor of the file must have found a place.
    let used = src.used.borrow().clone();
    if let Some(k) = file
        .floats
        .keys()
        .find(|k| (k.contains(".mp1.") || k.contains(".mp2.")) && !used.contains(*k))
    {
        return Err(tensor_error(
            path,
            k,
            "the configuration has no place for this tensor".into(),
        ));
    }
    model.head = head;
    Ok(model.apply_freezing())
}

/// Reads a task (patches, every block's `ln2`, `ft_head.*`) onto `backbone` (patches it
/// carries are replaced). The file may be a task file written by
/// [`export_task`] or a full port file: then the backbone tensors it holds must equal
/// `backbone`'s, else [`ModelError::BackboneMismatch`]. The strategy is
/// [`Strategy::PeterRec`] with the file's insertion, or [`Strategy::FineCls`] without patches.
pub fn import_task<B: Backend>(
    backbone: NextItNet<B>,
    path: impl AsRef<Path>,
    device: &B::Device,
) -> Result<FineTuneModel<B>> {
    task_from_port(&PortFile::read(path)?, backbone, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_layout_round_trips_and_matches_the_formula() {
        let (c_out, c_in, k) = (3, 2, 4);
        let port: Vec<f32> = (0..c_out * c_in * k).map(|v| v as f32).collect();
        let ours = conv_from_port(&port, c_out, c_in, k);
        for o in 0..c_out {
            for i in 0..c_in {
                for j in 0..k {
                    assert_eq!(
                        ours[(j * c_in + i) * c_out + o],
                        port[(o * c_in + i) * k + j]
                    );
                }
            }
        }
        assert_eq!(conv_to_port(&ours, c_out, c_in, k), port);
        let m: Vec<f32> = (0..6).map(|v| v as f32).collect();
        assert_eq!(transpose(&m, 2, 3), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        assert_eq!(transpose(&transpose(&m, 2, 3), 3, 2), m);
    }

    #[test]
    fn port_config_parses_the_fixture_form_and_keeps_other_keys() {
        let json = r#"{"vocab": 50, "channels": 8, "kernel": 3, "block_dilations": [1, 2],
            "layernorm_eps": 1e-08, "seq_len": 12, "padding_id": 0, "causal": true,
            "patches": true, "patch_placement": "parallel", "patch_activation": "gelu",
            "patch_bottleneck": 2, "ft_head": "linear [classes, C] + bias"}"#;
        let pc: PortConfig = serde_json::from_str(json).unwrap();
        assert_eq!(pc.insertion().unwrap(), Some(Insertion::Parallel));
        assert!(pc.parallel_adds_input());
        assert_eq!(pc.other["seq_len"], 12);
        let cfg = pc.backbone_config().unwrap();
        assert_eq!(cfg.layer_norm_eps, 1e-8);
        let relu = PortConfig {
            patch_activation: Some("relu".into()),
            ..pc
        };
        assert!(matches!(
            relu.insertion(),
            Err(ModelError::InvalidConfig(_))
        ));
    }
}
