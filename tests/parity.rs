//! Parity with the PyTorch port and weight interchange.
//!
//! Each fixture under `tests/fixtures/` was written by the port's `export` mode (commands in
//! `tests/fixtures/README.md`): every parameter under its `state_dict` name, fixed `input_ids`
//! and the port's outputs on them. We load the parameters through the importer, run our network
//! on the same ids and match every expected tensor within 1e-5 absolute.
//!
//! Conventions made explicit here rather than hidden:
//! - id 0 (the fixtures' left padding) is an ordinary embedding row on both sides: the ids are
//!   fed as they are, and padded positions are compared like any other;
//! - the fine-tune head reads the last input position on both sides; no `[CLS]` is appended;
//! - the port's parallel patches add their input (`conv(x) + x + delta(x)`); the importer marks
//!   the blocks with `parallel_adds_input`, and the test shows that without it the numbers differ.

use std::path::PathBuf;

use burn::backend::NdArray;
use burn::tensor::{Int, Tensor, TensorData};
use peterrec::model::io::interchange::{
    export_backbone, export_pretrained, export_task, import_backbone, import_pretrained,
    import_task, PortFile,
};
use peterrec::model::io::paths::{collect_params, replace_params, NamedTensor};
use peterrec::model::{
    FineTuneConfig, HeadKind, Insertion, ModelError, ModelPatchConfig, NextItNetConfig, PatchInit,
    Strategy,
};

type B = NdArray<f32>;

const TOLERANCE: f32 = 1e-5;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

fn max_abs_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "element counts differ");
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
}

/// The fixture's input ids, checked against the port's padding convention: row `i` starts with
/// `min(i, L/2)` ids 0 and holds no other 0.
fn input_ids(file: &PortFile) -> Tensor<B, 2, Int> {
    let ids = file.int("input_ids").expect("input_ids");
    let [b, l] = [ids.shape[0], ids.shape[1]];
    for i in 0..b {
        let row = &ids.values[i * l..(i + 1) * l];
        let pad = i.min(l / 2);
        assert!(row[..pad].iter().all(|&v| v == 0), "row {i}: {row:?}");
        assert!(row[pad..].iter().all(|&v| v != 0), "row {i}: {row:?}");
    }
    Tensor::from_data(
        TensorData::new(ids.values.clone(), [b, l]),
        &Default::default(),
    )
}

fn expected<'a>(file: &'a PortFile, name: &str) -> &'a NamedTensor {
    file.float(name)
        .unwrap_or_else(|| panic!("fixture lacks `{name}`"))
}

struct Case {
    file: &'static str,
    insertion: Option<Insertion>,
    target_table: bool,
}

const CASES: [Case; 4] = [
    Case {
        file: "plain.safetensors",
        insertion: None,
        target_table: false,
    },
    Case {
        file: "serial_gelu.safetensors",
        insertion: Some(Insertion::Serial),
        target_table: false,
    },
    Case {
        file: "parallel_gelu.safetensors",
        insertion: Some(Insertion::Parallel),
        target_table: false,
    },
    Case {
        file: "target_table.safetensors",
        insertion: Some(Insertion::Serial),
        target_table: true,
    },
];

#[test]
fn fixtures_match_the_pytorch_port() {
    let device = Default::default();
    for case in &CASES {
        let path = fixture(case.file);
        let file = PortFile::read(&path).unwrap();
        let ids = input_ids(&file);
        let [b, l] = ids.dims();

        // Token 0 is an ordinary, non-zero embedding row in the port, as PAD is in ours.
        let emb = expected(&file, "emb.weight");
        let c = emb.shape[1];
        assert!(emb.values[..c].iter().any(|&v| v != 0.0));

        // Backbone (with the file's patches) and pretraining head.
        let lm = import_pretrained::<B>(&path, &device).unwrap();
        assert_eq!(lm.backbone.has_patches(), case.insertion.is_some());
        for block in &lm.backbone.blocks {
            let parallel = case.insertion == Some(Insertion::Parallel);
            assert_eq!(block.parallel, parallel);
            assert_eq!(block.parallel_adds_input, parallel, "port convention");
        }
        let hidden = lm.backbone.forward(ids.clone());
        let want_hidden = expected(&file, "expected.hidden");
        assert_eq!(hidden.dims().to_vec(), want_hidden.shape);
        let d_hidden = max_abs_diff(&values(hidden.clone()), &want_hidden.values);

        let logits = lm.head.forward(hidden, &lm.backbone.embedding.weight);
        let want_logits = expected(&file, "expected.logits");
        assert_eq!(logits.dims().to_vec(), want_logits.shape);
        let d_logits = max_abs_diff(&values(logits), &want_logits.values);

        // Task (patches, ln2, ft_head) onto the backbone; the user vector is the last position.
        let backbone = import_backbone::<B>(&path, &device).unwrap();
        let task = import_task(backbone, &path, &device).unwrap();
        match case.insertion {
            Some(insertion) => assert_eq!(task.strategy(), Strategy::PeterRec { insertion }),
            None => assert_eq!(task.strategy(), Strategy::FineCls),
        }
        let outputs = expected(&file, "expected.ft_scores").shape[1];
        let kind = if case.target_table {
            HeadKind::TargetItems { outputs }
        } else {
            HeadKind::Classifier { outputs }
        };
        assert_eq!(task.head.kind(), kind);
        let d_task_hidden = max_abs_diff(
            &values(task.backbone.forward(ids.clone())),
            &want_hidden.values,
        );
        let scores = task.forward(ids.clone());
        let want_scores = expected(&file, "expected.ft_scores");
        assert_eq!(scores.dims().to_vec(), want_scores.shape);
        assert_eq!(want_scores.shape, vec![b, outputs]);
        let d_scores = max_abs_diff(&values(scores), &want_scores.values);

        eprintln!(
            "{}: B={b} L={l} max |diff| hidden {d_hidden:.3e}, logits {d_logits:.3e}, \
             task hidden {d_task_hidden:.3e}, ft scores {d_scores:.3e}",
            case.file
        );
        for (what, d) in [
            ("hidden", d_hidden),
            ("logits", d_logits),
            ("task hidden", d_task_hidden),
            ("ft scores", d_scores),
        ] {
            assert!(d <= TOLERANCE, "{}: {what} differs by {d}", case.file);
        }
    }
}

#[test]
fn the_parallel_convention_is_what_makes_the_parallel_fixture_match() {
    let device = Default::default();
    let path = fixture("parallel_gelu.safetensors");
    let file = PortFile::read(&path).unwrap();
    let ids = input_ids(&file);
    let want = &expected(&file, "expected.hidden").values;
    let mut backbone = import_backbone::<B>(&path, &device).unwrap();
    assert!(max_abs_diff(&values(backbone.forward(ids.clone())), want) <= TOLERANCE);
    // Our own parallel convention (`conv(x) + delta(x)`) on the same weights is another network.
    for block in &mut backbone.blocks {
        block.parallel_adds_input = false;
    }
    let d = max_abs_diff(&values(backbone.forward(ids)), want);
    eprintln!("parallel fixture with our convention instead of the port's: max |diff| {d:.3e}");
    assert!(d > 1e-2, "without the port's convention: max |diff| {d}");
}

#[test]
fn a_task_is_refused_on_another_backbone() {
    let device = Default::default();
    // The plain fixture's backbone is not the one the serial fixture's task was trained on.
    let plain = import_backbone::<B>(fixture("plain.safetensors"), &device).unwrap();
    let err = import_task(plain, fixture("serial_gelu.safetensors"), &device);
    assert!(
        matches!(err, Err(ModelError::BackboneMismatch { .. })),
        "{err:?}"
    );
}

/// Moves every parameter whose path satisfies `keep` away from its init (LayerNorm ones and
/// zeros, zero biases).
fn perturb_where<M: burn::module::Module<B>>(
    module: M,
    salt: f32,
    keep: impl Fn(&str) -> bool,
) -> M {
    let tensors: Vec<NamedTensor> = collect_params(&module, keep)
        .into_iter()
        .enumerate()
        .map(|(k, mut t)| {
            for (i, v) in t.values.iter_mut().enumerate() {
                *v += 0.05 * ((i as f32 + 1.0) * 0.37 + k as f32 * 1.3 + salt).sin();
            }
            t
        })
        .collect();
    let (module, errors) = replace_params(module, tensors);
    assert!(errors.is_empty(), "{errors:?}");
    module
}

fn perturb<M: burn::module::Module<B>>(module: M, salt: f32) -> M {
    perturb_where(module, salt, |_| true)
}

fn assert_same_params<M1: burn::module::Module<B>, M2: burn::module::Module<B>>(a: &M1, b: &M2) {
    let (a, b) = (collect_params(a, |_| true), collect_params(b, |_| true));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.name, y.name);
        assert_eq!(x.shape, y.shape, "{}", x.name);
        let (xb, yb): (Vec<u32>, Vec<u32>) = (
            x.values.iter().map(|v| v.to_bits()).collect(),
            y.values.iter().map(|v| v.to_bits()).collect(),
        );
        assert!(xb == yb, "{} is not bitwise equal", x.name);
    }
}

/// A file in the temporary directory, unique to this process.
fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("peterrec-parity-{}-{name}", std::process::id()))
}

#[test]
fn export_then_import_is_bitwise_identity() {
    let device = Default::default();
    let config = NextItNetConfig::new(23, 8, vec![1, 2, 4]).with_seed(5);
    let ids: Tensor<B, 2, Int> = Tensor::from_data(
        TensorData::new(
            (0..20i64).map(|i| (i * 7) % 23).collect::<Vec<_>>(),
            [2, 10],
        ),
        &device,
    );
    let patch = ModelPatchConfig::new(8).with_init(PatchInit::TruncatedNormal { std: 0.3 });
    let layouts = [
        None,
        Some((Insertion::Serial, false)),
        Some((Insertion::SerialOne, false)),
        Some((Insertion::Parallel, false)),
        Some((Insertion::Parallel, true)),
    ];
    for (n, layout) in layouts.into_iter().enumerate() {
        // Pretraining model, with a patched backbone.
        let mut lm = config.init_lm::<B>(&device).unwrap();
        if let Some((insertion, adds_input)) = layout {
            lm.backbone = lm.backbone.attach_patches(insertion, &patch, &device);
            for block in &mut lm.backbone.blocks {
                block.parallel_adds_input = adds_input;
            }
        }
        let lm = perturb(lm, n as f32);
        let path = tmp(&format!("lm-{n}.safetensors"));
        export_pretrained(&lm, &path).unwrap();
        let back = import_pretrained::<B>(&path, &device).unwrap();
        let back_config = back.backbone.config().clone();
        assert_eq!(back_config.dilations, config.dilations);
        assert_same_params(&lm, &back);
        for (x, y) in lm.backbone.blocks.iter().zip(&back.backbone.blocks) {
            assert_eq!(
                (x.parallel, x.parallel_adds_input),
                (y.parallel, y.parallel_adds_input)
            );
        }
        assert_eq!(
            values(lm.forward(ids.clone())),
            values(back.forward(ids.clone()))
        );
        let _ = std::fs::remove_file(&path);

        // The backbone alone.
        let path = tmp(&format!("backbone-{n}.safetensors"));
        export_backbone(&lm.backbone, &path).unwrap();
        let bb = import_backbone::<B>(&path, &device).unwrap();
        assert_same_params(&lm.backbone, &bb);
        let _ = std::fs::remove_file(&path);

        // A task onto its (unpatched) pretrained backbone.
        let Some((insertion, adds_input)) = layout else {
            continue;
        };
        let pretrained = perturb(config.init::<B>(&device), 100.0);
        for head in [
            HeadKind::Classifier { outputs: 4 },
            HeadKind::TargetItems { outputs: 6 },
        ] {
            let task = FineTuneConfig::new(Strategy::PeterRec { insertion }, head)
                .with_patch_init(PatchInit::TruncatedNormal { std: 0.3 })
                .init(pretrained.clone(), &device)
                .unwrap();
            // Only what the task trains: the backbone stays the pretrained one.
            let trainable = task.trainable_names();
            let mut task = perturb_where(task, 7.0 + n as f32, |name| {
                trainable.iter().any(|t| t == name)
            });
            for block in &mut task.backbone.blocks {
                block.parallel_adds_input = adds_input;
            }
            let path = tmp(&format!("task-{n}-{}.safetensors", head.outputs()));
            export_task(&task, &path).unwrap();
            // The task file holds only patches, ln2 and the head.
            let file = PortFile::read(&path).unwrap();
            assert!(file
                .floats
                .keys()
                .all(|k| k.contains(".mp") || k.contains(".ln2.") || k.starts_with("ft_head.")));
            let back = import_task(pretrained.clone(), &path, &device).unwrap();
            let _ = std::fs::remove_file(&path);
            assert_eq!(back.strategy(), task.strategy());
            assert_eq!(back.head.kind(), head);
            assert_eq!(back.meta.backbone_hash, task.meta.backbone_hash);
            assert_same_params(&task, &back);
            assert_eq!(
                values(task.forward(ids.clone())),
                values(back.forward(ids.clone()))
            );
        }
    }
}

#[test]
fn our_export_of_a_fixture_model_has_the_port_names_shapes_and_values() {
    let device = Default::default();
    for case in &CASES {
        let path = fixture(case.file);
        let port = PortFile::read(&path).unwrap();
        let lm = import_pretrained::<B>(&path, &device).unwrap();
        let backbone = import_backbone::<B>(&path, &device).unwrap();
        let task = import_task(backbone, &path, &device).unwrap();
        let (lm_path, task_path) = (
            tmp(&format!("re-{}", case.file)),
            tmp(&format!("re-task-{}", case.file)),
        );
        export_pretrained(&lm, &lm_path).unwrap();
        export_task(&task, &task_path).unwrap();
        let mut ours = PortFile::read(&lm_path).unwrap();
        ours.floats
            .extend(PortFile::read(&task_path).unwrap().floats);
        let _ = std::fs::remove_file(&lm_path);
        let _ = std::fs::remove_file(&task_path);
        let params: Vec<&String> = port
            .floats
            .keys()
            .filter(|k| !k.starts_with("expected."))
            .collect();
        let mut names: Vec<&String> = ours.floats.keys().collect();
        names.sort();
        assert_eq!(names, params, "{}", case.file);
        for name in params {
            let (a, b) = (&port.floats[name], &ours.floats[name]);
            assert_eq!(a.shape, b.shape, "{}: {name}", case.file);
            assert!(a.values == b.values, "{}: {name} differs", case.file);
        }
        let config_back = ours.config().unwrap();
        let config_port = port.config().unwrap();
        assert_eq!(config_back.patch_placement, config_port.patch_placement);
        assert_eq!(config_back.block_dilations, config_port.block_dilations);
    }
}
