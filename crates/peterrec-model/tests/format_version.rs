//! Backbone and task files keep loading across releases, and a file of another format version
//! is a typed error rather than a silent misreading.
//!
//! `tests/fixtures/v1-*.safetensors` were written by format version 1. To write them again (only
//! when the format version changes, keeping the old ones for the old version's test), run
//! `PETERREC_WRITE_FIXTURES=1 cargo test -p peterrec-model --test format_version`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::backend::NdArray;
use burn::tensor::{Int, Tensor};
use peterrec_model::io::persist::{load_backbone, save_backbone, FORMAT_VERSION};
use peterrec_model::{
    FineTuneConfig, FineTuneModel, HeadKind, Insertion, ModelError, NextItNetConfig, Strategy,
};
use safetensors::SafeTensors;

type B = NdArray<f32>;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn config() -> NextItNetConfig {
    NextItNetConfig::new(20, 8, vec![1, 2]).with_seed(5)
}

fn finetune_config() -> FineTuneConfig {
    FineTuneConfig::new(
        Strategy::PeterRec {
            insertion: Insertion::Serial,
        },
        HeadKind::Classifier { outputs: 3 },
    )
}

/// Copies the safetensors file `from` to `to` with its metadata key `version` set to `version`
/// (removed when `None`), tensors unchanged.
fn with_version(from: &Path, to: &Path, version: Option<&str>) {
    let bytes = std::fs::read(from).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta: HashMap<String, String> = header.metadata().clone().unwrap();
    match version {
        Some(v) => meta.insert("version".into(), v.into()),
        None => meta.remove("version"),
    };
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let out = safetensors::serialize(st.tensors(), Some(meta)).unwrap();
    std::fs::write(to, out).unwrap();
}

#[test]
fn version_1_files_still_load() {
    let device = Default::default();
    if std::env::var_os("PETERREC_WRITE_FIXTURES").is_some() {
        assert_eq!(
            FORMAT_VERSION, 1,
            "keep the v1 fixtures; add new ones for the new version"
        );
        let backbone = config().init::<B>(&device);
        save_backbone(&backbone, fixture("v1-backbone.safetensors")).unwrap();
        let task = finetune_config().init(backbone, &device).unwrap();
        task.save_task(fixture("v1-task.safetensors")).unwrap();
    }
    let backbone = load_backbone::<B>(fixture("v1-backbone.safetensors"), &device).unwrap();
    assert_eq!(backbone.config(), &config());
    let task = FineTuneModel::load_task(backbone, fixture("v1-task.safetensors"), &device).unwrap();
    assert_eq!(task.meta.finetune, finetune_config());
    let tokens = Tensor::<B, 2, Int>::from_ints([[4, 5, 6, 3]], &device);
    let logits = task.forward(tokens).into_data().to_vec::<f32>().unwrap();
    assert_eq!(logits.len(), 3);
    assert!(logits.iter().all(|v| v.is_finite()));
}

#[test]
fn another_format_version_is_a_typed_error() {
    let device = Default::default();
    let dir = std::env::temp_dir().join(format!("peterrec-version-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bb.safetensors");
    for (version, found) in [(Some("0"), "0"), (Some("2"), "2"), (None, "")] {
        with_version(&fixture("v1-backbone.safetensors"), &path, version);
        match load_backbone::<B>(&path, &device) {
            Err(ModelError::Version {
                found: f,
                supported,
                ..
            }) => {
                assert_eq!(f, found);
                assert_eq!(supported, FORMAT_VERSION);
            }
            other => panic!("version {version:?}: {:?}", other.map(|_| ())),
        }
    }
    with_version(
        &fixture("v1-backbone.safetensors"),
        &path,
        Some(&FORMAT_VERSION.to_string()),
    );
    load_backbone::<B>(&path, &device).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
