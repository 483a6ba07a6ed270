//! Import: port tensors → our modules.

use super::*;

/// Reads tensors from a [`PortFile`], checking shapes and remembering which were used.
pub(super) struct Source<'a> {
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
        head: SoftmaxHead {
            linear: Some(linear),
            tied_bias: None,
        },
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
