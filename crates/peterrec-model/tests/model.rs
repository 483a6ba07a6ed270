//! Behavioural tests of the model crate on the ndarray backend, at tiny shapes.

use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use peterrec_model::io::paths::collect_params;
use peterrec_model::io::persist::{load_backbone, load_pretrained, save_backbone, save_pretrained};
use peterrec_model::{
    FineTuneConfig, FineTuneModel, HeadKind, Insertion, ModelError, NegativeDistribution,
    NegativeSampler, NextItNetConfig, ParamGroup, ParamReport, PatchInit, Strategy,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

type B = NdArray<f32>;
type AB = Autodiff<B>;

const CLS: i64 = 2;

fn config() -> NextItNetConfig {
    NextItNetConfig::new(30, 8, vec![1, 2, 1]).with_seed(11)
}

fn tokens<BB: Backend>(rows: &[Vec<i64>]) -> Tensor<BB, 2, Int> {
    let l = rows[0].len();
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), l]), &Default::default())
}

fn batch() -> Vec<Vec<i64>> {
    vec![
        vec![0, 0, 5, 6, 7, 8, 9, CLS],
        vec![4, 10, 11, 12, 13, 14, 15, CLS],
        vec![0, 0, 0, 0, 20, 21, 22, CLS],
    ]
}

fn values<BB: Backend, const D: usize>(t: Tensor<BB, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("peterrec-model-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn zero_initialised_patches_compute_the_pretrained_function_bitwise() {
    let device = Default::default();
    let cfg = config();
    let plain = cfg.init::<B>(&device);
    let want = values(plain.forward(tokens(&batch())));
    for insertion in [Insertion::Serial, Insertion::Parallel, Insertion::SerialOne] {
        let patched = cfg.init::<B>(&device).attach_patches(
            insertion,
            &peterrec_model::ModelPatchConfig::new(8),
            &device,
        );
        assert!(patched.has_patches());
        let got = values(patched.forward(tokens(&batch())));
        assert_eq!(got, want, "{insertion:?}");
        // A randomly initialised up-projection does change the function.
        let noisy = cfg.init::<B>(&device).attach_patches(
            insertion,
            &peterrec_model::ModelPatchConfig::new(8)
                .with_init(PatchInit::TruncatedNormal { std: 0.5 }),
            &device,
        );
        assert_ne!(
            values(noisy.forward(tokens(&batch()))),
            want,
            "{insertion:?}"
        );
    }
}

fn finetune_model(strategy: Strategy, head: HeadKind) -> FineTuneModel<AB> {
    let device = Default::default();
    let cfg = config();
    let backbone = cfg.init::<AB>(&device);
    FineTuneConfig::new(strategy, head)
        .init(backbone, &device)
        .unwrap()
}

/// Runs three Adam steps with weight decay and returns (before, after) parameter snapshots.
fn three_steps(
    strategy: Strategy,
    head: HeadKind,
) -> (
    FineTuneModel<AB>,
    Vec<peterrec_model::io::paths::NamedTensor>,
    Vec<peterrec_model::io::paths::NamedTensor>,
) {
    let mut model = finetune_model(strategy, head);
    let before = collect_params(&model, |_| true);
    let mut optim = AdamConfig::new()
        .with_weight_decay(Some(burn::optim::decay::WeightDecayConfig::new(0.01)))
        .init::<AB, FineTuneModel<AB>>();
    let labels = Tensor::<AB, 1, Int>::from_data(
        TensorData::new(vec![1i64, 0, 1], [3]),
        &Default::default(),
    );
    for _ in 0..3 {
        let out = model.softmax_loss(tokens(&batch()), labels.clone());
        let grads = GradientsParams::from_grads(out.loss.backward(), &model);
        model = optim.step(1e-2, model, grads);
    }
    let after = collect_params(&model, |_| true);
    (model, before, after)
}

#[test]
fn frozen_parameters_stay_bitwise_equal_and_trainable_ones_change() {
    let mut strategies = Strategy::all();
    strategies.push(Strategy::PeterRec {
        insertion: Insertion::SerialOne,
    });
    strategies.push(Strategy::FineLast(2));
    for strategy in strategies {
        let (model, before, after) = three_steps(strategy, HeadKind::Classifier { outputs: 2 });
        assert_eq!(before.len(), after.len());
        let mut n_trainable = 0;
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(b.name, a.name);
            if model.is_trainable(&b.name) {
                n_trainable += 1;
                assert_ne!(
                    b.values, a.values,
                    "{strategy}: trainable `{}` did not change",
                    b.name
                );
            } else {
                let same = b
                    .values
                    .iter()
                    .zip(&a.values)
                    .all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "{strategy}: frozen `{}` changed", b.name);
            }
        }
        assert!(n_trainable > 0, "{strategy}");
        let report = ParamReport::of(&model);
        match strategy {
            Strategy::FineCls => assert_eq!(report.trainable, report.group(ParamGroup::Head).total),
            Strategy::FineAll | Strategy::Scratch => assert_eq!(report.trainable, report.total),
            Strategy::PeterRec { .. } => {
                let expect = report.group(ParamGroup::Patches).total
                    + report.group(ParamGroup::Ln2).total
                    + report.group(ParamGroup::Head).total;
                assert_eq!(report.trainable, expect);
                assert_eq!(report.group(ParamGroup::Embeddings).trainable, 0);
                assert_eq!(report.group(ParamGroup::Blocks).trainable, 0);
            }
            Strategy::FineLast(_) => {
                assert_eq!(report.group(ParamGroup::Embeddings).trainable, 0);
                assert!(report.group(ParamGroup::Blocks).trainable > 0);
                assert!(
                    report.group(ParamGroup::Blocks).trainable
                        < report.group(ParamGroup::Blocks).total
                );
            }
        }
    }
}

#[test]
fn frozen_parameters_get_no_gradient() {
    let model = finetune_model(
        Strategy::PeterRec {
            insertion: Insertion::Serial,
        },
        HeadKind::Classifier { outputs: 2 },
    );
    let labels = Tensor::<AB, 1, Int>::from_data(
        TensorData::new(vec![1i64, 0, 1], [3]),
        &Default::default(),
    );
    let grads = model.softmax_loss(tokens(&batch()), labels).loss.backward();
    let emb = &model.backbone.embedding.weight;
    assert!(emb.grad(&grads).is_none(), "embedding got a gradient");
    assert!(model.backbone.blocks[0]
        .conv1
        .linear
        .weight
        .grad(&grads)
        .is_none());
    assert!(model.backbone.blocks[0].ln2.gamma.grad(&grads).is_some());
}

#[test]
fn bce_loss_with_target_item_head_trains() {
    let mut model = finetune_model(
        Strategy::PeterRec {
            insertion: Insertion::Parallel,
        },
        HeadKind::TargetItems { outputs: 6 },
    );
    let d = Default::default();
    let pos = Tensor::<AB, 1, Int>::from_data(TensorData::new(vec![1i64, 2, 3], [3]), &d);
    let neg = Tensor::<AB, 2, Int>::from_data(
        TensorData::new(vec![0i64, 4, 5, 0, 4, 5, 0, 1, 5], [3, 3]),
        &d,
    );
    let mut optim = AdamConfig::new().init::<AB, FineTuneModel<AB>>();
    let mut losses = Vec::new();
    for _ in 0..20 {
        let out = model.bce_loss(tokens(&batch()), pos.clone(), neg.clone());
        losses.push(out.loss.clone().into_scalar());
        let grads = GradientsParams::from_grads(out.loss.backward(), &model);
        model = optim.step(1e-2, model, grads);
    }
    assert!(losses[19] < losses[0] * 0.9, "{losses:?}");
}

#[test]
fn pretraining_losses_decrease_and_sampled_loss_is_finite() {
    let device = Default::default();
    let mut lm = config().init_lm::<AB>(&device).unwrap();
    let inputs = tokens::<AB>(&[vec![0, 5, 6, 7, 8], vec![9, 10, 11, 12, 13]]);
    let targets = tokens::<AB>(&[vec![0, 6, 7, 8, 9], vec![10, 11, 12, 13, 14]]);
    let mask = tokens::<AB>(&[vec![0, 1, 1, 1, 1], vec![1, 1, 1, 1, 1]]);
    let sampler = NegativeSampler {
        num_negatives: 8,
        distribution: NegativeDistribution::Uniform,
        first_item: 4,
        num_tokens: 30,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let s = lm.sampled_loss(inputs.clone(), targets.clone(), &mask, &sampler, &mut rng);
    assert_eq!(s.count, 9);
    assert!(s.loss.into_scalar().is_finite());
    let mut optim = AdamConfig::new().init::<AB, peterrec_model::NextItNetLM<AB>>();
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..30 {
        let out = lm.loss(inputs.clone(), targets.clone(), &mask);
        assert_eq!(out.count, 9);
        last = out.loss.clone().into_scalar();
        first.get_or_insert(last);
        let grads = GradientsParams::from_grads(out.loss.backward(), &lm);
        lm = optim.step(1e-2, lm, grads);
    }
    assert!(last < first.unwrap() * 0.5, "{first:?} -> {last}");
    // The trained model ranks the seen continuation first.
    let logits = values(
        lm.valid()
            .next_item_logits(tokens::<B>(&[vec![0, 5, 6, 7]])),
    );
    let best = logits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    assert_eq!(best, 8);
}

#[test]
fn backbone_pretrained_and_task_files_round_trip_bitwise() {
    let dir = tmpdir("roundtrip");
    let device = Default::default();
    let cfg = config();
    let lm = cfg.init_lm::<B>(&device).unwrap();
    save_pretrained(&lm, dir.join("lm.safetensors")).unwrap();
    let lm2 = load_pretrained::<B>(dir.join("lm.safetensors"), &device).unwrap();
    let cfg2 = lm2.backbone.config().clone();
    assert_eq!(cfg2, cfg);
    assert_eq!(
        collect_params(&lm, |_| true),
        collect_params(&lm2, |_| true)
    );
    save_backbone(&lm.backbone, dir.join("bb.safetensors")).unwrap();
    let bb = load_backbone::<B>(dir.join("bb.safetensors"), &device).unwrap();
    assert_eq!(
        collect_params(&lm.backbone, |_| true),
        collect_params(&bb, |_| true)
    );

    // A fine-tuned PeterRec task: train a little so that every trained tensor is non-trivial.
    let (trained, _, _) = three_steps(
        Strategy::PeterRec {
            insertion: Insertion::Serial,
        },
        HeadKind::Classifier { outputs: 2 },
    );
    let trained = trained.valid();
    trained.save_task(dir.join("task.safetensors")).unwrap();
    let pretrained = config().init::<B>(&device);
    let loaded =
        FineTuneModel::load_task(pretrained, dir.join("task.safetensors"), &device).unwrap();
    assert_eq!(
        collect_params(&trained, |_| true),
        collect_params(&loaded, |_| true)
    );
    assert_eq!(
        values(trained.forward(tokens(&batch()))),
        values(loaded.forward(tokens(&batch())))
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| peterrec_data::fs::is_temp_name(n) || n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_task_loaded_onto_another_backbone_is_a_typed_error() {
    let dir = tmpdir("mismatch");
    let device = Default::default();
    let cfg = config();
    let model = FineTuneConfig::new(Strategy::FineCls, HeadKind::Classifier { outputs: 3 })
        .init(cfg.init::<B>(&device), &device)
        .unwrap();
    let path = dir.join("task.safetensors");
    model.save_task(&path).unwrap();
    // Same configuration, other weights.
    let mut other = cfg.init::<B>(&device);
    other.embedding = cfg.clone().with_seed(12).init::<B>(&device).embedding;
    match FineTuneModel::load_task(other, &path, &device) {
        Err(ModelError::BackboneMismatch { what, .. }) => assert_eq!(what, "content hash"),
        r => panic!("expected a backbone mismatch, got {:?}", r.map(|_| ())),
    }
    // Another configuration.
    let wide = NextItNetConfig::new(30, 12, vec![1, 2, 1]).with_seed(11);
    match FineTuneModel::load_task(wide.init::<B>(&device), &path, &device) {
        Err(ModelError::BackboneMismatch { what, .. }) => assert_eq!(what, "config"),
        r => panic!("expected a backbone mismatch, got {:?}", r.map(|_| ())),
    }
    // The right backbone loads.
    assert!(FineTuneModel::load_task(cfg.init::<B>(&device), &path, &device).is_ok());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn corrupt_files_are_typed_errors() {
    let dir = tmpdir("corrupt");
    let device = Default::default();
    let cfg = config();
    let path = dir.join("bb.safetensors");
    save_backbone(&cfg.init::<B>(&device), &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    // A flipped byte in the tensor data.
    let mut flipped = bytes.clone();
    let i = flipped.len() - 10;
    flipped[i] ^= 0x40;
    std::fs::write(&path, &flipped).unwrap();
    assert!(matches!(
        load_backbone::<B>(&path, &device),
        Err(ModelError::Checksum { .. })
    ));
    // A truncated file.
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        load_backbone::<B>(&path, &device),
        Err(ModelError::Format { .. })
    ));
    // Not a file of ours.
    std::fs::write(&path, b"hello").unwrap();
    assert!(matches!(
        load_backbone::<B>(&path, &device),
        Err(ModelError::Format { .. })
    ));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn paper_shape_task_file_is_under_five_percent_of_the_backbone_file() {
    let dir = tmpdir("paper");
    let device = Default::default();
    let cfg = NextItNetConfig::new(50_000, 256, vec![1, 4, 1, 4, 1, 4, 1, 4]);
    let backbone = cfg.init::<B>(&device);
    save_backbone(&backbone, dir.join("bb.safetensors")).unwrap();
    let model = FineTuneConfig::new(
        Strategy::PeterRec {
            insertion: Insertion::Serial,
        },
        HeadKind::Classifier { outputs: 2 },
    )
    .init(backbone, &device)
    .unwrap();
    model.save_task(dir.join("task.safetensors")).unwrap();
    let bb = std::fs::metadata(dir.join("bb.safetensors")).unwrap().len();
    let task = std::fs::metadata(dir.join("task.safetensors"))
        .unwrap()
        .len();
    assert!(task * 20 < bb, "task {task} bytes, backbone {bb} bytes");
    let report = ParamReport::of(&model);
    assert!(report.patch_share_of_backbone() < 0.05);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn strategy_names_round_trip() {
    for s in Strategy::all() {
        assert_eq!(s.to_string().parse::<Strategy>().unwrap(), s);
    }
    assert!("finelast-0".parse::<Strategy>().is_err());
    assert!("bogus".parse::<Strategy>().is_err());
}

#[test]
fn task_files_keep_the_port_parallel_convention() {
    let dir = tmpdir("parallel-flag");
    let device = Default::default();
    let cfg = config();
    let mut model = FineTuneConfig::new(
        Strategy::PeterRec {
            insertion: Insertion::Parallel,
        },
        HeadKind::Classifier { outputs: 2 },
    )
    .with_patch_init(PatchInit::TruncatedNormal { std: 0.3 })
    .init(cfg.init::<B>(&device), &device)
    .unwrap();
    let plain = values(model.forward(tokens(&batch())));
    for block in &mut model.backbone.blocks {
        block.parallel_adds_input = true;
    }
    let port = values(model.forward(tokens(&batch())));
    assert_ne!(plain, port);
    let path = dir.join("task.safetensors");
    model.save_task(&path).unwrap();
    let loaded = FineTuneModel::load_task(cfg.init::<B>(&device), &path, &device).unwrap();
    assert!(loaded.backbone.blocks.iter().all(|b| b.parallel_adds_input));
    assert_eq!(values(loaded.forward(tokens(&batch()))), port);
    std::fs::remove_dir_all(dir).ok();
}

/// Gradients of every parameter that gets one, by name.
fn named_grads(
    model: &FineTuneModel<AB>,
    grads: &<AB as burn::tensor::backend::AutodiffBackend>::Gradients,
) -> Vec<(String, Vec<f32>)> {
    use burn::module::{Module, ModuleVisitor, Param};
    struct Visit<'a> {
        grads: &'a <AB as burn::tensor::backend::AutodiffBackend>::Gradients,
        out: Vec<Option<Vec<f32>>>,
    }
    impl ModuleVisitor<AB> for Visit<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
            self.out.push(param.grad(self.grads).map(values));
        }
    }
    let mut visit = Visit {
        grads,
        out: Vec::new(),
    };
    model.visit(&mut visit);
    let names = collect_params(model, |_| true);
    assert_eq!(names.len(), visit.out.len());
    names
        .into_iter()
        .zip(visit.out)
        .filter_map(|(n, g)| g.map(|g| (n.name, g)))
        .collect()
}

#[test]
fn fused_softmax_train_loss_equals_the_op_by_op_loss_and_its_gradients() {
    let labels = || {
        Tensor::<AB, 1, Int>::from_data(TensorData::new(vec![1i64, 0, 4], [3]), &Default::default())
    };
    for head in [
        HeadKind::Classifier { outputs: 5 },
        HeadKind::TargetItems { outputs: 6 },
    ] {
        for strategy in [
            Strategy::PeterRec {
                insertion: Insertion::Serial,
            },
            Strategy::FineAll,
            Strategy::FineCls,
        ] {
            let mut model = finetune_model(strategy, head);
            // Non-zero patches, so that their gradients are not trivially equal.
            let mut optim = AdamConfig::new().init::<AB, FineTuneModel<AB>>();
            let out = model.softmax_loss(tokens(&batch()), labels());
            let grads = GradientsParams::from_grads(out.loss.backward(), &model);
            model = optim.step(5e-2, model, grads);

            let plain = model.softmax_loss(tokens(&batch()), labels());
            let fused = model.softmax_train_loss(tokens(&batch()), labels());
            assert_eq!(plain.count, fused.count);
            let (p, f) = (values(plain.loss.clone())[0], values(fused.loss.clone())[0]);
            assert!((p - f).abs() < 1e-5, "{strategy} {head:?}: loss {p} vs {f}");
            let gp = named_grads(&model, &plain.loss.backward());
            let gf = named_grads(&model, &fused.loss.backward());
            let names =
                |g: &[(String, Vec<f32>)]| g.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
            assert_eq!(names(&gp), names(&gf), "{strategy} {head:?}");
            assert_eq!(
                gp.len(),
                model.trainable_names().len(),
                "{strategy} {head:?}"
            );
            for ((name, a), (_, b)) in gp.iter().zip(&gf) {
                for (x, y) in a.iter().zip(b) {
                    assert!(
                        (x - y).abs() < 1e-5,
                        "{strategy} {head:?} `{name}`: {x} vs {y}"
                    );
                }
            }
        }
    }
}

#[test]
fn fused_softmax_train_loss_gradients_are_bitwise_reproducible() {
    // 160 users, 40 outputs: at this size the op-by-op loss's gradients differ between identical
    // passes in most runs.
    let model = finetune_model(Strategy::FineAll, HeadKind::Classifier { outputs: 40 });
    let rows: Vec<Vec<i64>> = (0..160)
        .map(|u| {
            let mut r: Vec<i64> = (0..7).map(|i| 4 + (u * 5 + i * 3) % 25).collect();
            r.push(CLS);
            r
        })
        .collect();
    let labels: Vec<i64> = (0..160).map(|u| (u * 7) % 40).collect();
    let labels =
        Tensor::<AB, 1, Int>::from_data(TensorData::new(labels, [160]), &Default::default());
    let run = || {
        let out = model.softmax_train_loss(tokens(&rows), labels.clone());
        named_grads(&model, &out.loss.backward())
    };
    let first = run();
    for _ in 0..8 {
        let again = run();
        for ((name, a), (_, b)) in first.iter().zip(&again) {
            let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(
                same,
                "gradient of `{name}` changed between identical passes"
            );
        }
    }
}
