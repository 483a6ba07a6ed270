//! Damaged backbone and task files: every truncation and every flipped byte is a typed error
//! (or, where the byte is insignificant, e.g. header padding, the very same weights), and
//! property-based fuzzing (proptest) of both loaders with arbitrary and mutated files.
//!
//! Hostile files whose checksum is valid (a forged configuration) are tested next to the loader,
//! in `src/io/persist/tests.rs`. Set `PROPTEST_CASES` for longer fuzzing runs
//! (`docs/reliability.md`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::backend::NdArray;
use peterrec_model::io::paths::{collect_params, NamedTensor};
use peterrec_model::io::persist::{load_backbone, load_pretrained, save_backbone, save_pretrained};
use peterrec_model::{
    FineTuneConfig, FineTuneModel, HeadKind, Insertion, ModelError, NextItNet, NextItNetConfig,
    Strategy as Tuning,
};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

type B = NdArray<f32>;

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "peterrec-files-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config() -> NextItNetConfig {
    NextItNetConfig::new(10, 4, vec![1, 2]).with_seed(5)
}

fn sorted(mut t: Vec<NamedTensor>) -> Vec<NamedTensor> {
    t.sort_by(|a, b| a.name.cmp(&b.name));
    t
}

fn backbone() -> NextItNet<B> {
    config().init::<B>(&Default::default())
}

fn task_model() -> FineTuneModel<B> {
    FineTuneConfig::new(
        Tuning::PeterRec {
            insertion: Insertion::Serial,
        },
        HeadKind::Classifier { outputs: 3 },
    )
    .with_seed(9)
    .init(backbone(), &Default::default())
    .unwrap()
}

fn trained(model: &FineTuneModel<B>) -> Vec<NamedTensor> {
    sorted(collect_params(model, |n| model.is_trainable(n)))
}

/// A load error is typed: anything but an I/O error (the files here always exist).
fn typed(e: &ModelError, path: &Path) -> Result<(), TestCaseError> {
    match e {
        ModelError::Io { .. } => Err(TestCaseError::fail(format!("I/O error: {e}"))),
        ModelError::InvalidConfig(_) => Ok(()),
        _ => {
            let msg = e.to_string();
            prop_assert!(msg.contains(&path.display().to_string()), "{}", msg);
            Ok(())
        }
    }
}

/// Loads `bytes` as a backbone file: a typed error (returned), or exactly `original`'s weights.
fn check_backbone(
    dir: &Scratch,
    bytes: &[u8],
    original: &NextItNet<B>,
) -> Result<Option<ModelError>, TestCaseError> {
    let path = dir.path("damaged.safetensors");
    std::fs::write(&path, bytes).unwrap();
    match load_backbone::<B>(&path, &Default::default()) {
        Ok(b) => {
            prop_assert_eq!(b.config(), &config());
            prop_assert_eq!(
                sorted(collect_params(&b, |_| true)),
                sorted(collect_params(original, |_| true)),
                "damaged file loaded as other weights"
            );
            Ok(None)
        }
        Err(e) => typed(&e, &path).map(|()| Some(e)),
    }
}

/// Loads `bytes` as a task file onto the right backbone: a typed error (returned), or exactly
/// the saved model's trained weights.
fn check_task(
    dir: &Scratch,
    bytes: &[u8],
    original: &[NamedTensor],
) -> Result<Option<ModelError>, TestCaseError> {
    let path = dir.path("damaged-task.safetensors");
    std::fs::write(&path, bytes).unwrap();
    match FineTuneModel::load_task(backbone(), &path, &Default::default()) {
        Ok(m) => {
            prop_assert_eq!(
                trained(&m),
                original,
                "damaged file loaded as other weights"
            );
            Ok(None)
        }
        Err(e) => typed(&e, &path).map(|()| Some(e)),
    }
}

/// The bytes of a saved file, written once per test binary (saving syncs to disk, which would
/// dominate a long fuzzing run).
fn saved_bytes(name: &str, save: impl FnOnce(&Path)) -> Vec<u8> {
    let dir = Scratch::new(name);
    let path = dir.path("saved.safetensors");
    save(&path);
    std::fs::read(path).unwrap()
}

/// The backbone (rebuilt, it is seeded) and its saved file.
fn saved_backbone() -> (NextItNet<B>, Vec<u8>) {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    let bytes =
        BYTES.get_or_init(|| saved_bytes("saved-bb", |p| save_backbone(&backbone(), p).unwrap()));
    (backbone(), bytes.clone())
}

/// The task model's trained weights and its saved file.
fn saved_task() -> (Vec<NamedTensor>, Vec<u8>) {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    let bytes =
        BYTES.get_or_init(|| saved_bytes("saved-task", |p| task_model().save_task(p).unwrap()));
    (trained(&task_model()), bytes.clone())
}

#[test]
fn every_truncation_of_a_task_file_is_a_typed_error() {
    let dir = Scratch::new("task-truncated");
    let (_, bytes) = saved_task();
    let path = dir.path("cut.safetensors");
    for len in 0..bytes.len() {
        std::fs::write(&path, &bytes[..len]).unwrap();
        match FineTuneModel::load_task(backbone(), &path, &Default::default()) {
            Err(ModelError::Format { kind: "task", .. }) => {}
            Err(e) => panic!("{len} bytes: {e:?}"),
            Ok(_) => panic!("{len} of {} bytes loaded", bytes.len()),
        }
    }
}

#[test]
fn every_flipped_byte_of_a_task_file_is_a_typed_error_or_harmless() {
    let dir = Scratch::new("task-flipped");
    let (original, bytes) = saved_task();
    let mut checksum_errors = 0;
    for i in 0..bytes.len() {
        for mask in [0x01, 0x80] {
            let mut damaged = bytes.clone();
            damaged[i] ^= mask;
            let err = check_task(&dir, &damaged, &original).unwrap();
            if let Some(ModelError::Checksum { .. }) = err {
                checksum_errors += 1;
            }
        }
    }
    // Every byte of tensor data is covered by the checksum (4 bytes per value, 2 masks).
    let values: usize = original.iter().map(|t| t.values.len()).sum();
    assert!(checksum_errors >= 2 * 4 * values, "{checksum_errors}");
}

#[test]
fn every_flipped_byte_of_a_backbone_file_is_a_typed_error_or_harmless() {
    let dir = Scratch::new("backbone-flipped");
    let (original, bytes) = saved_backbone();
    for i in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[i] ^= 0x01;
        check_backbone(&dir, &damaged, &original).unwrap();
    }
    // Every truncation too.
    for len in 0..bytes.len() {
        let err = check_backbone(&dir, &bytes[..len], &original).unwrap();
        assert!(
            matches!(err, Some(ModelError::Format { .. })),
            "{len}: {err:?}"
        );
    }
}

#[test]
fn a_damaged_pretrained_file_is_a_typed_error() {
    let dir = Scratch::new("pretrained");
    let device = Default::default();
    let lm = config().init_lm::<B>(&device).unwrap();
    let path = dir.path("lm.safetensors");
    save_pretrained(&lm, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    // The last bytes are tensor data (whichever tensor comes last); flip the last one.
    let mut damaged = bytes.clone();
    *damaged.last_mut().unwrap() ^= 0x10;
    std::fs::write(&path, &damaged).unwrap();
    assert!(matches!(
        load_pretrained::<B>(&path, &device),
        Err(ModelError::Checksum { .. })
    ));
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    assert!(matches!(
        load_pretrained::<B>(&path, &device),
        Err(ModelError::Format { .. })
    ));
}

#[test]
fn an_absurd_bottleneck_ratio_is_a_typed_error_at_construction() {
    for ratio in [f64::INFINITY, 1e300, f64::NAN, 0.0, -1.0] {
        let err = FineTuneConfig::new(
            Tuning::PeterRec {
                insertion: Insertion::Parallel,
            },
            HeadKind::Classifier { outputs: 2 },
        )
        .with_bottleneck_ratio(ratio)
        .init(backbone(), &Default::default())
        .map(|_| ())
        .unwrap_err();
        assert!(
            matches!(err, ModelError::InvalidConfig(_)),
            "{ratio}: {err}"
        );
    }
}

fn cases(default: u32) -> ProptestConfig {
    // A failing input is saved beside this file (`<file>.proptest-regressions`) and replayed
    // first by later runs.
    let mut c = ProptestConfig {
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = default;
    }
    c
}

/// Edits of a file: flip, insert, delete, truncate, overwrite with a salient byte.
fn mutate(mut bytes: Vec<u8>, edits: &[(u8, Index, u8)]) -> Vec<u8> {
    const SALIENT: &[u8] = b"\0\xff{}[]\":,0123456789 ";
    for (kind, at, byte) in edits {
        if bytes.is_empty() {
            bytes.push(*byte);
            continue;
        }
        let i = at.index(bytes.len());
        match kind % 5 {
            0 => bytes[i] ^= byte | 1,
            1 => bytes.insert(i, *byte),
            2 => {
                bytes.remove(i);
            }
            3 => bytes.truncate(i),
            _ => bytes[i] = SALIENT[usize::from(*byte) % SALIENT.len()],
        }
    }
    bytes
}

fn edits() -> impl proptest::strategy::Strategy<Value = Vec<(u8, Index, u8)>> {
    prop::collection::vec((any::<u8>(), any::<Index>(), any::<u8>()), 1..6)
}

/// Arbitrary bytes, sometimes behind a plausible safetensors length prefix.
fn garbage() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    let raw = prop::collection::vec(any::<u8>(), 0..512);
    prop_oneof![
        raw.clone(),
        (any::<u8>(), raw).prop_map(|(n, body)| {
            let mut v = u64::from(n).to_le_bytes().to_vec();
            v.extend(body);
            v
        }),
    ]
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn fuzz_backbone_file_arbitrary_bytes(bytes in garbage()) {
        let dir = Scratch::new("fuzz-bb-bytes");
        check_backbone(&dir, &bytes, &backbone())?;
    }

    #[test]
    fn fuzz_backbone_file_mutated(e in edits()) {
        let dir = Scratch::new("fuzz-bb-mutated");
        let (original, bytes) = saved_backbone();
        check_backbone(&dir, &mutate(bytes, &e), &original)?;
    }

    #[test]
    fn fuzz_task_file_arbitrary_bytes(bytes in garbage()) {
        let dir = Scratch::new("fuzz-task-bytes");
        check_task(&dir, &bytes, &[])?;
    }

    #[test]
    fn fuzz_task_file_mutated(e in edits()) {
        let dir = Scratch::new("fuzz-task-mutated");
        let (original, bytes) = saved_task();
        check_task(&dir, &mutate(bytes, &e), &original)?;
    }
}
