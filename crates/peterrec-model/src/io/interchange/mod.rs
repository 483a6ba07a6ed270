//! Weight interchange with the PyTorch port of NextItNet and PeterRec.
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
//! | `head.weight` (export of a tied head) | `[V, C]` | `backbone.embedding.weight` | `[V, C]` | as is |
//! | `head.bias` (export of a tied head) | `[V]` | `head.tied_bias` | `[V]` | as is |
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

mod config;
mod export;
mod import;
mod layout;

pub use config::PortConfig;
use config::*;
use export::*;
pub use export::{backbone_to_port, export_backbone, export_pretrained, export_task, task_to_port};
pub use import::{
    backbone_from_port, import_backbone, import_pretrained, import_task, task_from_port,
};
use layout::*;

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

#[cfg(test)]
mod tests;
