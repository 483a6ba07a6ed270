//! Backbone and task files.
//!
//! Both are [safetensors](https://github.com/huggingface/safetensors) files (little-endian `f32`
//! tensors named by module path) whose metadata holds:
//!
//! | key | backbone file | task file |
//! | --- | --- | --- |
//! | `format` | `peterrec-backbone` | `peterrec-task` |
//! | `version` | [`FORMAT_VERSION`] | [`FORMAT_VERSION`] |
//! | `config` | the [`NextItNetConfig`] as JSON | the [`TaskMeta`] as JSON (fine-tune config, backbone config, backbone hash) |
//! | `content_hash` | [`content_hash`] of the backbone | — |
//! | `checksum` | FNV-1a 64 over metadata and tensors | same |
//!
//! A backbone file holds the backbone (`backbone.*`) and, when saved from a pretraining model, its
//! head (`head.*`). A task file holds only what its strategy trained: for PeterRec the patches,
//! every block's `ln2` and the head. Loading a task onto a backbone whose configuration or content
//! hash differ from the recorded ones fails with [`ModelError::BackboneMismatch`]. Files are
//! written to a temporary file in the target directory and renamed into place.

use std::collections::HashMap;
use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::backbone::{NextItNet, NextItNetConfig};
use crate::error::{ModelError, Result};
use crate::finetune::{FineTuneModel, Strategy, TaskMeta};
use crate::hash::Fnv64;
use crate::head::SoftmaxHead;
use crate::lm::NextItNetLM;
use crate::patch::ModelPatchConfig;
use crate::paths::{collect_params, replace_params, NamedTensor};

/// Version written into, and accepted from, backbone and task files.
pub const FORMAT_VERSION: u32 = 1;

const BACKBONE_FORMAT: &str = "peterrec-backbone";
const TASK_FORMAT: &str = "peterrec-task";

/// Content hash of a backbone: FNV-1a 64 over every parameter's name, shape and `f32` bits, in
/// module order. Patches are excluded, so a patched backbone hashes like the one it came from.
pub fn content_hash<B: Backend>(backbone: &NextItNet<B>) -> u64 {
    let tensors = collect_params(backbone, |n| !n.contains("mp1") && !n.contains("mp2"));
    let mut h = Fnv64::new();
    for t in &tensors {
        hash_tensor(&mut h, t);
    }
    h.finish()
}

fn hash_tensor(h: &mut Fnv64, t: &NamedTensor) {
    h.write(t.name.as_bytes());
    for &d in &t.shape {
        h.write_u64(d as u64);
    }
    for v in &t.values {
        h.write(&v.to_le_bytes());
    }
}

fn checksum(meta: &HashMap<String, String>, tensors: &[NamedTensor]) -> u64 {
    let mut h = Fnv64::new();
    let mut keys: Vec<&String> = meta.keys().filter(|k| *k != "checksum").collect();
    keys.sort();
    for k in keys {
        h.write(k.as_bytes());
        h.write(&[0]);
        h.write(meta[k].as_bytes());
        h.write(&[0]);
    }
    let mut sorted: Vec<&NamedTensor> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for t in sorted {
        hash_tensor(&mut h, t);
    }
    h.finish()
}

/// Writes `bytes` to `path` atomically ([`peterrec_data::fs::write_atomic`]): a temporary file
/// beside it, flushed and synced, then renamed over `path`. A crash leaves either the old file or
/// the new one, never half of one; the temporary file a killed writer leaves behind is removed by
/// the next write to `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    peterrec_data::fs::write_atomic(path, bytes).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_file(
    path: &Path,
    format: &str,
    mut meta: HashMap<String, String>,
    tensors: &[NamedTensor],
) -> Result<()> {
    meta.insert("format".into(), format.into());
    meta.insert("version".into(), FORMAT_VERSION.to_string());
    let sum = checksum(&meta, tensors);
    meta.insert("checksum".into(), format!("{sum:016x}"));
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            TensorView::new(Dtype::F32, t.shape.clone(), b)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| ModelError::Format {
                    path: path.to_path_buf(),
                    kind: "model",
                    reason: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let data = safetensors::serialize(views, Some(meta)).map_err(|e| ModelError::Format {
        path: path.to_path_buf(),
        kind: "model",
        reason: e.to_string(),
    })?;
    write_atomic(path, &data)
}

/// A parsed, checksum-verified model file.
struct ModelFile {
    meta: HashMap<String, String>,
    tensors: Vec<NamedTensor>,
}

impl ModelFile {
    /// The JSON `config` entry of the metadata.
    fn config<T: serde::de::DeserializeOwned>(&self, path: &Path, kind: &'static str) -> Result<T> {
        self.meta
            .get("config")
            .ok_or("no `config` in metadata".to_string())
            .and_then(|s| serde_json::from_str(s).map_err(|e| e.to_string()))
            .map_err(|reason| ModelError::Format {
                path: path.to_path_buf(),
                kind,
                reason,
            })
    }
}

fn read_file(path: &Path, format: &'static str) -> Result<ModelFile> {
    let kind = if format == BACKBONE_FORMAT {
        "backbone"
    } else {
        "task"
    };
    let bad = |reason: String| ModelError::Format {
        path: path.to_path_buf(),
        kind,
        reason,
    };
    let buffer = std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let (_, header) = SafeTensors::read_metadata(&buffer).map_err(|e| bad(e.to_string()))?;
    let meta = header
        .metadata()
        .clone()
        .ok_or_else(|| bad("no metadata".into()))?;
    match meta.get("format") {
        Some(f) if f == format => {}
        Some(f) => return Err(bad(format!("format is `{f}`, expected `{format}`"))),
        None => return Err(bad("no `format` in metadata".into())),
    }
    let version = meta.get("version").cloned().unwrap_or_default();
    if version != FORMAT_VERSION.to_string() {
        return Err(ModelError::Version {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let st = SafeTensors::deserialize(&buffer).map_err(|e| bad(e.to_string()))?;
    let mut tensors = Vec::with_capacity(st.len());
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!(
                "tensor `{name}` is {:?}, expected F32",
                view.dtype()
            )));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.push(NamedTensor {
            name,
            shape: view.shape().to_vec(),
            values,
        });
    }
    let stored = meta
        .get("checksum")
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .ok_or_else(|| bad("missing or unreadable checksum".into()))?;
    let computed = checksum(&meta, &tensors);
    if stored != computed {
        return Err(ModelError::Checksum {
            path: path.to_path_buf(),
            stored,
            computed,
        });
    }
    Ok(ModelFile { meta, tensors })
}

/// Replaces the parameters of `module` named in `expected` (all of them when `None`) by the
/// file's tensors; a missing tensor, a shape mismatch or a tensor the module lacks is an error.
fn apply<B: Backend, M: Module<B>>(
    module: M,
    expected: Option<Vec<String>>,
    tensors: Vec<NamedTensor>,
    path: &Path,
) -> Result<M> {
    let expected = expected.unwrap_or_else(|| {
        crate::paths::param_shapes(&module)
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    });
    let present: std::collections::HashSet<&str> =
        tensors.iter().map(|t| t.name.as_str()).collect();
    if let Some(missing) = expected.iter().find(|n| !present.contains(n.as_str())) {
        return Err(ModelError::Tensor {
            path: path.to_path_buf(),
            name: missing.clone(),
            reason: "missing from the file".into(),
        });
    }
    let (module, errors) = replace_params(module, tensors);
    match errors.into_iter().next() {
        Some((name, reason)) => Err(ModelError::Tensor {
            path: path.to_path_buf(),
            name,
            reason,
        }),
        None => Ok(module),
    }
}

fn prefixed<B: Backend, M: Module<B>>(module: &M, prefix: &str) -> Vec<NamedTensor> {
    collect_params(module, |_| true)
        .into_iter()
        .map(|mut t| {
            t.name = format!("{prefix}.{}", t.name);
            t
        })
        .collect()
}

fn strip(tensors: Vec<NamedTensor>, prefix: &str) -> Vec<NamedTensor> {
    let p = format!("{prefix}.");
    tensors
        .into_iter()
        .filter_map(|mut t| {
            let rest = t.name.strip_prefix(&p)?.to_string();
            t.name = rest;
            Some(t)
        })
        .collect()
}

fn backbone_meta<B: Backend>(backbone: &NextItNet<B>) -> Result<HashMap<String, String>> {
    if backbone.has_patches() {
        return Err(ModelError::InvalidConfig(
            "a backbone is saved without patches; save the task file instead".into(),
        ));
    }
    let mut meta = HashMap::new();
    meta.insert("config".into(), config_json(backbone.config()));
    meta.insert(
        "content_hash".into(),
        format!("{:016x}", content_hash(backbone)),
    );
    Ok(meta)
}

fn config_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("configurations serialize to JSON")
}

/// Saves a pretrained backbone (and no head).
pub fn save_backbone<B: Backend>(backbone: &NextItNet<B>, path: impl AsRef<Path>) -> Result<()> {
    let meta = backbone_meta(backbone)?;
    write_file(
        path.as_ref(),
        BACKBONE_FORMAT,
        meta,
        &prefixed(backbone, "backbone"),
    )
}

/// Saves a pretraining model: the backbone and its softmax head.
pub fn save_pretrained<B: Backend>(model: &NextItNetLM<B>, path: impl AsRef<Path>) -> Result<()> {
    let meta = backbone_meta(&model.backbone)?;
    let mut tensors = prefixed(&model.backbone, "backbone");
    tensors.extend(prefixed(&model.head, "head"));
    write_file(path.as_ref(), BACKBONE_FORMAT, meta, &tensors)
}

fn read_backbone_file(path: &Path) -> Result<(NextItNetConfig, ModelFile)> {
    let file = read_file(path, BACKBONE_FORMAT)?;
    let config: NextItNetConfig = file.config(path, "backbone")?;
    config.validate().map_err(|e| ModelError::Format {
        path: path.to_path_buf(),
        kind: "backbone",
        reason: e.to_string(),
    })?;
    check_values(&file, path, "backbone", backbone_values(&config))?;
    Ok((config, file))
}

/// Fewest parameter values a backbone built from `config` holds (its embedding table and its
/// convolution weights), `None` beyond `usize`.
fn backbone_values(config: &NextItNetConfig) -> Option<usize> {
    let embedding = config.num_tokens.checked_mul(config.channels)?;
    let conv = config
        .kernel_size
        .checked_mul(config.channels)?
        .checked_mul(config.channels)?;
    let blocks = config.dilations.len().checked_mul(conv.checked_mul(2)?)?;
    embedding.checked_add(blocks)
}

/// Fewest parameter values the trained part of a task model holds (its head, and its patches
/// for PeterRec), `None` beyond `usize`.
fn task_values(meta: &TaskMeta) -> Option<usize> {
    let c = meta.backbone.channels;
    let head = meta.finetune.head.outputs().checked_mul(c)?;
    let patches = match meta.finetune.strategy {
        Strategy::PeterRec { .. } => {
            let b = ModelPatchConfig::new(c)
                .with_bottleneck_ratio(meta.finetune.bottleneck_ratio)
                .bottleneck();
            let one = b.checked_mul(c)?.checked_mul(2)?; // down and up projections
            meta.backbone.dilations.len().checked_mul(one)?
        }
        _ => 0,
    };
    head.checked_add(patches)
}

/// Rejects a file whose configuration asks for more parameter values than it stores, before
/// anything is built from that configuration. The checksum only detects accidents (anyone can
/// compute it), so without this a few-kilobyte file claiming `num_tokens = 2^61` would make the
/// loader allocate without bound, or abort.
fn check_values(
    file: &ModelFile,
    path: &Path,
    kind: &'static str,
    needed: Option<usize>,
) -> Result<()> {
    let stored: usize = file.tensors.iter().map(|t| t.values.len()).sum();
    match needed {
        Some(n) if n <= stored => Ok(()),
        _ => Err(ModelError::Format {
            path: path.to_path_buf(),
            kind,
            reason: format!(
                "its configuration describes {} parameter values but the file holds only {stored}",
                needed.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string())
            ),
        }),
    }
}

/// Loads a backbone file (ignoring any pretraining head in it); the backbone carries the
/// configuration stored in the file ([`NextItNet::config`]).
pub fn load_backbone<B: Backend>(
    path: impl AsRef<Path>,
    device: &B::Device,
) -> Result<NextItNet<B>> {
    let path = path.as_ref();
    let (config, file) = read_backbone_file(path)?;
    let backbone = apply(
        config.try_init(device)?,
        None,
        strip(file.tensors, "backbone"),
        path,
    )?;
    Ok(backbone)
}

/// Loads a pretraining model (backbone and head) saved by [`save_pretrained`].
pub fn load_pretrained<B: Backend>(
    path: impl AsRef<Path>,
    device: &B::Device,
) -> Result<NextItNetLM<B>> {
    let path = path.as_ref();
    let (config, file) = read_backbone_file(path)?;
    // A tied head has no weight of its own: the file tells which head it holds.
    let tied = !file.tensors.iter().any(|t| t.name == "head.linear.weight");
    let lm = config.init_lm_with(tied, device)?;
    let (b, h): (Vec<_>, Vec<_>) = file
        .tensors
        .into_iter()
        .partition(|t| t.name.starts_with("backbone."));
    let backbone = apply(lm.backbone, None, strip(b, "backbone"), path)?;
    let head: SoftmaxHead<B> = apply(lm.head, None, strip(h, "head"), path)?;
    Ok(NextItNetLM { backbone, head })
}

impl<B: Backend> FineTuneModel<B> {
    /// Saves what this model's strategy trained, with the backbone's identity.
    pub fn save_task(&self, path: impl AsRef<Path>) -> Result<()> {
        let tensors = collect_params(self, |n| self.is_trainable(n));
        let task_meta = TaskMeta {
            parallel_adds_input: self.backbone.blocks.iter().any(|b| b.parallel_adds_input),
            ..self.meta.clone()
        };
        let mut meta = HashMap::new();
        meta.insert("config".into(), config_json(&task_meta));
        write_file(path.as_ref(), TASK_FORMAT, meta, &tensors)
    }

    /// Rebuilds a fine-tuned model from a task file and the pretrained backbone it was trained on.
    ///
    /// Fails with [`ModelError::BackboneMismatch`] when `backbone` is not the backbone recorded
    /// in the task file (another configuration or other weights).
    pub fn load_task(
        backbone: NextItNet<B>,
        path: impl AsRef<Path>,
        device: &B::Device,
    ) -> Result<Self> {
        let config = &backbone.config().clone();
        let path = path.as_ref();
        let file = read_file(path, TASK_FORMAT)?;
        let meta: TaskMeta = file.config(path, "task")?;
        let mismatch = |what: &str, expected: String, found: String| ModelError::BackboneMismatch {
            path: path.to_path_buf(),
            what: what.into(),
            expected,
            found,
        };
        if &meta.backbone != config {
            return Err(mismatch(
                "config",
                config_json(&meta.backbone),
                config_json(config),
            ));
        }
        let found = content_hash(&backbone);
        if found != meta.backbone_hash {
            return Err(mismatch(
                "content hash",
                format!("{:016x}", meta.backbone_hash),
                format!("{found:016x}"),
            ));
        }
        check_values(&file, path, "task", task_values(&meta))?;
        let mut model = meta.finetune.init(backbone, device)?;
        for block in &mut model.backbone.blocks {
            block.parallel_adds_input = block.parallel && meta.parallel_adds_input;
        }
        model.meta.parallel_adds_input = meta.parallel_adds_input;
        let expected = model.trainable_names();
        let model = apply(model, Some(expected), file.tensors, path)?;
        Ok(model.apply_freezing())
    }
}

#[cfg(test)]
mod tests;
