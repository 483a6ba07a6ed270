//! Export: our modules → port tensors.

use super::*;

pub(super) fn put_linear<B: Backend>(out: &mut PortFile, name: &str, linear: &Linear<B>) {
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

pub(super) fn put_conv<B: Backend>(out: &mut PortFile, name: &str, conv: &DilatedConv1d<B>) {
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

pub(super) fn put_ln<B: Backend>(out: &mut PortFile, name: &str, ln: &LayerNorm<B>) {
    let [c] = ln.gamma.dims();
    out.insert_float(&format!("{name}.weight"), vec![c], host(&ln.gamma));
    let beta = match &ln.beta {
        Some(b) => host(b),
        None => vec![0.0; c],
    };
    out.insert_float(&format!("{name}.bias"), vec![c], beta);
}

pub(super) fn put_patch<B: Backend>(out: &mut PortFile, name: &str, patch: &ModelPatch<B>) {
    put_linear(out, &format!("{name}.down"), &patch.down);
    put_linear(out, &format!("{name}.up"), &patch.up);
}

/// How the patches of a backbone are laid out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct PatchLayout {
    pub(super) insertion: Insertion,
    pub(super) adds_input: bool,
    pub(super) bottleneck: usize,
}

/// The patch layout shared by every block (`None` without patches); mixed layouts are refused.
pub(super) fn patch_layout<B: Backend>(backbone: &NextItNet<B>) -> Result<Option<PatchLayout>> {
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
pub(super) fn put_backbone<B: Backend>(
    out: &mut PortFile,
    backbone: &NextItNet<B>,
    with_patches: bool,
) {
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

pub(super) fn put_block_patches<B: Backend>(
    out: &mut PortFile,
    n: usize,
    block: &ResidualBlock<B>,
) {
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
        // A tied head is written as the untied one it equals: the item table is its weight.
        let (weight, bias) = head.weight_and_bias(&backbone.embedding.weight);
        let linear = Linear {
            weight: Param::from_tensor(weight),
            bias: bias.map(Param::from_tensor),
        };
        put_linear(&mut file, "head", &linear);
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
