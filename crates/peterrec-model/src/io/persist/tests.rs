//! Hostile model files that pass the checksum.
//!
//! The checksum (FNV-1a) catches corruption, not malice: anyone can write a file whose metadata
//! says `num_tokens = 2^61` and whose checksum is right. Such a file must be a typed error,
//! without first building (allocating) the network it describes. These tests write files with
//! the crate's own writer, so their checksums are valid, then load them.

use std::path::{Path, PathBuf};

use burn::backend::NdArray;
use burn::module::Param;
use burn::tensor::{Int, Tensor, TensorData};
use proptest::prelude::*;
use proptest::strategy::Strategy;

use super::*;
use crate::block::Insertion;
use crate::finetune::{FineTuneConfig, Strategy as Tuning};
use crate::head::HeadKind;
use crate::patch::PatchInit;

type B = NdArray<f32>;

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "peterrec-persist-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn small_config() -> NextItNetConfig {
    NextItNetConfig::new(12, 4, vec![1, 2]).with_seed(3)
}

/// A valid backbone file, its config and its tensors.
fn backbone_file(dir: &Path) -> (PathBuf, NextItNetConfig, Vec<NamedTensor>) {
    let cfg = small_config();
    let path = dir.join("bb.safetensors");
    save_backbone(&cfg.init::<B>(&Default::default()), &path).unwrap();
    let file = read_file(&path, BACKBONE_FORMAT).unwrap();
    (path, cfg, file.tensors)
}

/// Writes a backbone file with `config` in its metadata and `tensors`, with a valid checksum.
fn write_backbone_with(path: &Path, config: &NextItNetConfig, tensors: &[NamedTensor]) {
    let mut meta = HashMap::new();
    meta.insert("config".into(), config_json(config));
    meta.insert("content_hash".into(), "0".into());
    write_file(path, BACKBONE_FORMAT, meta, tensors).unwrap();
}

fn is_typed(e: &ModelError) -> bool {
    !matches!(e, ModelError::Io { .. })
}

/// Loads a backbone file as a backbone and as a pretraining model.
fn load_both_ways(path: &Path) -> [Result<()>; 2] {
    let device = Default::default();
    [
        load_backbone::<B>(path, &device).map(|_| ()),
        load_pretrained::<B>(path, &device).map(|_| ()),
    ]
}

#[test]
fn a_backbone_file_describing_a_huge_network_is_a_typed_error() {
    let dir = Scratch::new("huge-backbone");
    let (path, cfg, tensors) = backbone_file(&dir.0);
    let device = Default::default();
    for hostile in [
        NextItNetConfig {
            num_tokens: 1 << 61,
            ..cfg.clone()
        },
        NextItNetConfig {
            channels: 1 << 40,
            ..cfg.clone()
        },
        cfg.clone().with_kernel_size(1 << 62),
        NextItNetConfig {
            dilations: vec![1; 1 << 20],
            ..cfg.clone()
        },
        NextItNetConfig {
            num_tokens: usize::MAX,
            ..cfg.clone()
        },
    ] {
        write_backbone_with(&path, &hostile, &tensors);
        for result in load_both_ways(&path) {
            match result {
                // A huge kernel is caught by its padding before its parameter count.
                Err(ModelError::Format { reason, .. }) => assert!(
                    reason.contains("parameter values") || reason.contains("pads a convolution"),
                    "{reason}"
                ),
                other => panic!("{hostile:?}: {other:?}"),
            }
        }
    }
    // The same tensors under their own configuration load (the check is not too strict).
    write_backbone_with(&path, &cfg, &tensors);
    load_backbone::<B>(&path, &device).unwrap();
}

#[test]
fn a_backbone_file_with_a_huge_dilation_is_a_typed_error_when_loaded() {
    // Same parameter count as the real file (dilations hold no parameters), valid checksum: only
    // the padding the dilation implies is absurd.
    let dir = Scratch::new("huge-dilation");
    let (path, cfg, tensors) = backbone_file(&dir.0);
    let mut dilations = cfg.dilations.clone();
    *dilations.last_mut().unwrap() = 1 << 40;
    let hostile = NextItNetConfig {
        dilations,
        ..cfg.clone()
    };
    write_backbone_with(&path, &hostile, &tensors);
    for result in load_both_ways(&path) {
        match result {
            Err(ModelError::Format {
                path: p, reason, ..
            }) => {
                assert_eq!(p, path);
                assert!(reason.contains("pads a convolution"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}

/// A task file on `backbone` (saved from a PeterRec model), its path and tensors.
fn task_file(
    dir: &Path,
) -> (
    PathBuf,
    NextItNetConfig,
    NextItNet<B>,
    TaskMeta,
    Vec<NamedTensor>,
) {
    let cfg = small_config();
    let device = Default::default();
    let backbone = cfg.init::<B>(&device);
    let model = FineTuneConfig::new(
        Tuning::PeterRec {
            insertion: Insertion::Serial,
        },
        HeadKind::Classifier { outputs: 3 },
    )
    .init(backbone.clone(), &device)
    .unwrap();
    let path = dir.join("task.safetensors");
    model.save_task(&path).unwrap();
    let file = read_file(&path, TASK_FORMAT).unwrap();
    (path, cfg, backbone, model.meta.clone(), file.tensors)
}

fn write_task_with(path: &Path, meta: &TaskMeta, tensors: &[NamedTensor]) {
    let mut m = HashMap::new();
    m.insert("config".into(), config_json(meta));
    write_file(path, TASK_FORMAT, m, tensors).unwrap();
}

#[test]
fn a_task_file_describing_a_huge_head_or_patch_is_a_typed_error() {
    let dir = Scratch::new("huge-task");
    let (path, _, backbone, meta, tensors) = task_file(&dir.0);
    let device = Default::default();
    let with = |f: FineTuneConfig| TaskMeta {
        finetune: f,
        ..meta.clone()
    };
    for hostile in [
        with(FineTuneConfig {
            head: HeadKind::Classifier { outputs: 1 << 61 },
            ..meta.finetune.clone()
        }),
        with(FineTuneConfig {
            head: HeadKind::TargetItems {
                outputs: usize::MAX,
            },
            ..meta.finetune.clone()
        }),
        with(meta.finetune.clone().with_bottleneck_ratio(1e300)),
    ] {
        write_task_with(&path, &hostile, &tensors);
        match FineTuneModel::load_task(backbone.clone(), &path, &device) {
            Err(ModelError::Format { reason, .. }) => {
                assert!(reason.contains("parameter values"), "{reason}")
            }
            other => panic!("{:?}: {:?}", hostile.finetune, other.map(|_| ())),
        }
    }
    write_task_with(&path, &meta, &tensors);
    FineTuneModel::load_task(backbone, &path, &device).unwrap();
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![0..40usize, Just(1 << 40), Just(1 << 61), any::<usize>()]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(1e-8),
        Just(0.0),
        Just(-1.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        any::<f64>()
    ]
}

fn hostile_backbone_config() -> impl Strategy<Value = NextItNetConfig> {
    let base = small_config();
    (
        prop_oneof![Just(base.num_tokens), size()],
        prop_oneof![Just(base.channels), size()],
        prop_oneof![
            Just(base.dilations.clone()),
            prop::collection::vec(size(), 0..5)
        ],
        prop_oneof![Just(3usize), size()],
        any::<bool>(),
        float(),
        float(),
        any::<u64>(),
    )
        .prop_map(
            |(num_tokens, channels, dilations, kernel_size, causal, eps, std, seed)| {
                NextItNetConfig {
                    num_tokens,
                    channels,
                    dilations,
                    kernel_size,
                    causal,
                    layer_norm_eps: eps,
                    init_std: std,
                    seed,
                }
            },
        )
}

fn hostile_finetune_config() -> impl Strategy<Value = FineTuneConfig> {
    let strategy = prop_oneof![
        Just(Tuning::PeterRec {
            insertion: Insertion::Serial
        }),
        Just(Tuning::PeterRec {
            insertion: Insertion::Parallel
        }),
        Just(Tuning::PeterRec {
            insertion: Insertion::SerialOne
        }),
        Just(Tuning::FineAll),
        Just(Tuning::FineCls),
        size().prop_map(Tuning::FineLast),
        Just(Tuning::Scratch),
    ];
    let head = prop_oneof![
        size().prop_map(|outputs| HeadKind::Classifier { outputs }),
        size().prop_map(|outputs| HeadKind::TargetItems { outputs }),
    ];
    let init = prop_oneof![
        Just(PatchInit::ZeroUp),
        float().prop_map(|std| PatchInit::TruncatedNormal { std })
    ];
    (strategy, head, float(), init, any::<u64>()).prop_map(|(s, h, ratio, init, seed)| {
        FineTuneConfig::new(s, h)
            .with_bottleneck_ratio(ratio)
            .with_patch_init(init)
            .with_seed(seed)
    })
}

fn cases() -> ProptestConfig {
    // A failing input is saved beside this file (`<file>.proptest-regressions`) and replayed
    // first by later runs.
    let mut c = ProptestConfig {
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 128;
    }
    c
}

proptest! {
    #![proptest_config(cases())]

    /// Any configuration in a checksummed backbone file: a typed error, or a backbone holding
    /// exactly the file's tensors; never a panic or an unbounded allocation.
    #[test]
    fn fuzz_backbone_config_with_valid_checksum(config in hostile_backbone_config()) {
        let dir = Scratch::new("fuzz-backbone");
        let (path, _, tensors) = backbone_file(&dir.0);
        write_backbone_with(&path, &config, &tensors);
        match load_backbone::<B>(&path, &Default::default()) {
            Ok(backbone) => {
                prop_assert_eq!(backbone.config(), &config);
                let mut expected = strip(tensors, "backbone");
                expected.sort_by(|a, b| a.name.cmp(&b.name));
                let mut loaded = collect_params(&backbone, |_| true);
                loaded.sort_by(|a, b| a.name.cmp(&b.name));
                prop_assert_eq!(loaded, expected);
            }
            Err(e) => prop_assert!(is_typed(&e), "{}", e),
        }
    }

    /// Any fine-tuning configuration in a checksummed task file on the right backbone: a typed
    /// error or a model holding exactly the file's tensors.
    #[test]
    fn fuzz_task_config_with_valid_checksum(finetune in hostile_finetune_config()) {
        let dir = Scratch::new("fuzz-task");
        let (path, _, backbone, meta, tensors) = task_file(&dir.0);
        let hostile = TaskMeta { finetune, ..meta };
        write_task_with(&path, &hostile, &tensors);
        match FineTuneModel::load_task(backbone, &path, &Default::default()) {
            Ok(model) => {
                let trained = collect_params(&model, |n| model.is_trainable(n));
                for t in &trained {
                    let stored = tensors.iter().find(|s| s.name == t.name);
                    prop_assert_eq!(Some(t), stored);
                }
            }
            Err(e) => prop_assert!(is_typed(&e), "{}", e),
        }
    }
}

#[test]
fn a_tied_pretrained_file_loads_tied_and_exports_as_the_untied_head_it_equals() {
    let dir = Scratch::new("tied");
    let device = Default::default();
    let cfg = NextItNetConfig::new(12, 4, vec![1, 2]).with_seed(3);
    let mut lm = cfg.init_lm_with::<B>(true, &device).unwrap();
    // A non-zero bias, so that a bias lost on the way would show.
    let bias: Vec<f32> = (0..12).map(|i| i as f32 / 10.0).collect();
    lm.head.tied_bias = Some(Param::from_tensor(Tensor::from_data(
        TensorData::new(bias, [12]),
        &device,
    )));
    let path = dir.0.join("tied.safetensors");
    save_pretrained(&lm, &path).unwrap();
    let loaded = load_pretrained::<B>(&path, &device).unwrap();
    assert!(loaded.head.is_tied());
    let names: Vec<String> = collect_params(&loaded, |_| true)
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(names.contains(&"head.tied_bias".to_string()), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("head.linear")),
        "{names:?}"
    );
    assert_eq!(
        collect_params(&lm, |_| true),
        collect_params(&loaded, |_| true)
    );

    let tokens = Tensor::<B, 2, Int>::from_data(
        TensorData::new(vec![0i64, 4, 5, 6, 7, 8, 9, 10], [2, 4]),
        &device,
    );
    let logits = |m: &NextItNetLM<B>| -> Vec<f32> {
        m.forward(tokens.clone()).into_data().to_vec().unwrap()
    };
    let port = dir.0.join("port.safetensors");
    crate::export_pretrained(&lm, &port).unwrap();
    let imported = crate::import_pretrained::<B>(&port, &device).unwrap();
    assert!(!imported.head.is_tied());
    assert_eq!(logits(&lm), logits(&imported));
    assert_eq!(logits(&lm), logits(&loaded));
}
