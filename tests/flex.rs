//! The `Flex` CPU backend (`--features flex`, `--device flex`) trains the same model as the
//! default `NdArray` backend: the same seeded pretraining (full and sampled softmax) and PeterRec
//! fine-tuning runs on both end with the same losses, validation metrics and weights, up to
//! float rounding. On Flex the host routes of the convolution, of `relu(LayerNorm(·))` and of
//! the model patch also match Burn's tensor operations on Flex itself, values and gradients.
//!
//! `cargo test --release --features flex --test flex` (`.ci/run` runs it).
#![cfg(feature = "flex")]

use burn::backend::{Autodiff, Flex};
use burn::nn::LayerNormConfig;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{activation::relu, ops::PadMode, Distribution, Tensor};
use peterrec::data::batch::SeqObjective;
use peterrec::data::split::{leave_one_out, SplitConfig};
use peterrec::data::synthetic::{try_generate, SyntheticConfig, SyntheticData};
use peterrec::data::NUM_RESERVED;
use peterrec::model::io::paths::{collect_params, NamedTensor};
use peterrec::model::layer_norm_relu;
use peterrec::model::{DilatedConv1dConfig, NegativeDistribution, NegativeSampler};
use peterrec::model::{FineTuneConfig, HeadKind, Insertion, NextItNetConfig, Strategy};
use peterrec::train::{
    finetune, pretrain, with_backend, DeviceChoice, EpochRecord, FineTuneLoss, FineTuneTrainConfig,
    LrSchedule, PretrainConfig, RankingOptions, TrainConfig,
};

fn data() -> SyntheticData {
    try_generate(
        &SyntheticConfig::default()
            .with_users(160)
            .with_items(40)
            .with_types(2)
            .with_lengths(6, 12),
    )
    .unwrap()
}

fn train(epochs: usize) -> TrainConfig {
    TrainConfig::new()
        .with_epochs(epochs)
        .with_batch_size(16)
        .with_lr(5e-3)
        .with_lr_schedule(LrSchedule::Constant)
        .with_max_len(12)
        .with_patience(100)
        .with_quiet(true)
}

type Outcome = (Vec<EpochRecord>, Vec<EpochRecord>, Vec<NamedTensor>);

/// Histories and weights of a 3-epoch pretraining and a 2-epoch PeterRec fine-tuning.
fn runs<B: AutodiffBackend>(device: B::Device) -> Outcome {
    let d = data();
    let config = NextItNetConfig::new(d.vocab.len(), 16, vec![1, 2]).with_seed(5);
    let split = leave_one_out(&d.sequences);
    let cfg = PretrainConfig::new()
        .with_train(train(3))
        .with_objective(SeqObjective::NextItem)
        .with_ranking(RankingOptions::new())
        .with_windows(false)
        // Bitwise equality across backends: no random masks.
        .with_dropout(0.0);
    let lm = config.init_lm::<B>(&device).unwrap();
    let (lm, pre) = pretrain(lm, &split.train, &split.valid, &cfg, &device).unwrap();
    let task = d
        .classification_task(&SplitConfig::fractions(0.6, 0.2, 3))
        .unwrap();
    let model = FineTuneConfig::new(
        Strategy::PeterRec {
            insertion: Insertion::Serial,
        },
        HeadKind::Classifier { outputs: 2 },
    )
    .init(lm.backbone, &device)
    .unwrap();
    let ft_cfg = FineTuneTrainConfig::new()
        .with_train(train(2))
        .with_loss(FineTuneLoss::Softmax)
        .with_ranking(RankingOptions::new());
    let (model, ft) = finetune(model, &task, &ft_cfg, &device).unwrap();
    (pre.history, ft.history, collect_params(&model, |_| true))
}

fn assert_close_history(a: &[EpochRecord], b: &[EpochRecord], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().zip(b) {
        assert!(
            (x.train_loss - y.train_loss).abs() <= 1e-3 * x.train_loss.abs().max(1.0),
            "{what}: {x:?} vs {y:?}"
        );
        assert!(
            (x.valid_metric - y.valid_metric).abs() <= 1e-3,
            "{what}: {x:?} vs {y:?}"
        );
    }
}

#[test]
fn flex_trains_the_same_model_as_ndarray() {
    let (pre_nd, ft_nd, params_nd) =
        with_backend!(DeviceChoice::Cpu, |B, device| runs::<B>(device)).unwrap();
    let (pre_fx, ft_fx, params_fx) =
        with_backend!(DeviceChoice::Flex, |B, device| runs::<B>(device)).unwrap();
    assert_close_history(&pre_nd, &pre_fx, "pretraining");
    assert_close_history(&ft_nd, &ft_fx, "fine-tuning");
    // Training moved the weights (the comparison below is not between two initial states).
    assert!(pre_nd.last().unwrap().train_loss < pre_nd[0].train_loss);
    assert_eq!(params_nd.len(), params_fx.len());
    for (x, y) in params_nd.iter().zip(&params_fx) {
        assert_eq!(x.name, y.name);
        for (p, q) in x.values.iter().zip(&y.values) {
            assert!((p - q).abs() <= 1e-3, "`{}`: {p} vs {q}", x.name);
        }
    }
}

/// Histories and weights of a 3-epoch pretraining with the sampled softmax (8 negatives).
fn sampled_runs<B: AutodiffBackend>(device: B::Device) -> (Vec<EpochRecord>, Vec<NamedTensor>) {
    let d = data();
    let config = NextItNetConfig::new(d.vocab.len(), 16, vec![1, 2]).with_seed(5);
    let split = leave_one_out(&d.sequences);
    let cfg = PretrainConfig::new()
        .with_train(train(3))
        .with_objective(SeqObjective::NextItem)
        .with_sampled(Some(NegativeSampler {
            num_negatives: 8,
            distribution: NegativeDistribution::Uniform,
            first_item: NUM_RESERVED,
            num_tokens: d.vocab.len() as u32,
        }))
        .with_ranking(RankingOptions::new())
        .with_windows(false)
        // Bitwise equality across backends: no random masks.
        .with_dropout(0.0);
    let lm = config.init_lm::<B>(&device).unwrap();
    let (lm, pre) = pretrain(lm, &split.train, &split.valid, &cfg, &device).unwrap();
    (pre.history, collect_params(&lm, |_| true))
}

#[test]
fn flex_trains_the_same_model_as_ndarray_with_the_sampled_softmax() {
    let (pre_nd, params_nd) =
        with_backend!(DeviceChoice::Cpu, |B, device| sampled_runs::<B>(device)).unwrap();
    let (pre_fx, params_fx) =
        with_backend!(DeviceChoice::Flex, |B, device| sampled_runs::<B>(device)).unwrap();
    assert_close_history(&pre_nd, &pre_fx, "sampled pretraining");
    assert!(pre_nd.last().unwrap().train_loss < pre_nd[0].train_loss);
    assert_eq!(params_nd.len(), params_fx.len());
    for (x, y) in params_nd.iter().zip(&params_fx) {
        for (p, q) in x.values.iter().zip(&y.values) {
            assert!((p - q).abs() <= 1e-3, "`{}`: {p} vs {q}", x.name);
        }
    }
}

type A = Autodiff<Flex>;

fn max_diff<const D: usize>(a: Tensor<Flex, D>, b: Tensor<Flex, D>) -> f32 {
    (a - b).abs().max().into_scalar()
}

#[test]
fn flex_norm_relu_matches_burns_layer_norm_and_relu() {
    let device = Default::default();
    let mut ln = LayerNormConfig::new(37)
        .with_epsilon(1e-8)
        .init::<A>(&device);
    ln.gamma = ln
        .gamma
        .map(|_| Tensor::random([37], Distribution::Normal(1.0, 0.5), &device).require_grad());
    let x0 = Tensor::<Flex, 3>::random([3, 50, 37], Distribution::Normal(0.3, 2.0), &device);
    let w = Tensor::<Flex, 3>::random([3, 50, 37], Distribution::Normal(0.0, 1.0), &device);
    let run = |host: bool| {
        let x = Tensor::<A, 3>::from_inner(x0.clone()).require_grad();
        let y = if host {
            layer_norm_relu(&ln, 1e-8, x.clone())
        } else {
            relu(ln.forward(x.clone()))
        };
        let grads = (y.clone() * Tensor::from_inner(w.clone())).sum().backward();
        (
            y.inner(),
            x.grad(&grads).unwrap(),
            ln.gamma.val().grad(&grads).unwrap(),
        )
    };
    let ((y1, gx1, gg1), (y2, gx2, gg2)) = (run(true), run(false));
    assert!(max_diff(y1, y2) < 1e-5);
    assert!(max_diff(gx1, gx2) < 1e-4);
    assert!(max_diff(gg1, gg2) < 1e-3);
}

#[test]
fn flex_convolution_matches_padded_taps() {
    let device = Default::default();
    let (b, l, c) = (3, 11, 5);
    let x0 = Tensor::<Flex, 3>::random([b, l, c], Distribution::Normal(0.0, 1.0), &device);
    let up = Tensor::<Flex, 3>::random([b, l, 4], Distribution::Normal(0.0, 1.0), &device);
    for (causal, d) in [(true, 1), (true, 4), (false, 2)] {
        let conv = DilatedConv1dConfig::new(c, 4)
            .with_dilation(d)
            .with_causal(causal)
            .with_init_std(0.5)
            .init::<A>(&device);
        let run = |host: bool| {
            let x = Tensor::<A, 3>::from_inner(x0.clone()).require_grad();
            let y = if host {
                conv.forward(x.clone())
            } else {
                let total = conv.padding();
                let left = conv.left_padding();
                let padded = x
                    .clone()
                    .pad([(left, total - left), (0, 0)], PadMode::Constant(0.0));
                let taps: Vec<_> = (0..3).map(|j| padded.clone().narrow(1, j * d, l)).collect();
                conv.linear.forward(Tensor::cat(taps, 2))
            };
            let grads = (y.clone() * Tensor::from_inner(up.clone()))
                .sum()
                .backward();
            let bias = conv.linear.bias.as_ref().unwrap().val();
            (
                y.inner(),
                x.grad(&grads).unwrap(),
                conv.linear.weight.val().grad(&grads).unwrap(),
                bias.grad(&grads).unwrap(),
            )
        };
        let ((y1, gx1, gw1, gb1), (y2, gx2, gw2, gb2)) = (run(true), run(false));
        let case = format!("causal={causal} d={d}");
        assert!(max_diff(y1, y2) < 1e-5, "{case}");
        assert!(max_diff(gx1, gx2) < 1e-4, "{case}");
        assert!(max_diff(gw1, gw2) < 1e-4, "{case}");
        assert!(max_diff(gb1, gb2) < 1e-4, "{case}");
    }
}

#[test]
fn flex_patch_matches_its_tensor_composition() {
    use peterrec::model::nn::conv::linear_rows;
    use peterrec::model::nn::patch::gelu_tanh;
    use peterrec::model::{ModelPatchConfig, PatchInit};
    let device = Default::default();
    let patch = ModelPatchConfig::new(24)
        .with_init(PatchInit::TruncatedNormal { std: 0.3 })
        .with_init_std(0.3)
        .init::<A>(&device);
    let x0 = Tensor::<Flex, 3>::random([3, 40, 24], Distribution::Normal(0.0, 1.5), &device);
    let w = Tensor::<Flex, 3>::random([3, 40, 24], Distribution::Normal(0.0, 1.0), &device);
    let run = |host: bool| {
        let x = Tensor::<A, 3>::from_inner(x0.clone()).require_grad();
        let y = if host {
            patch.delta(x.clone())
        } else {
            linear_rows(&patch.up, gelu_tanh(linear_rows(&patch.down, x.clone())))
        };
        let grads = (y.clone() * Tensor::from_inner(w.clone())).sum().backward();
        (
            y.inner(),
            x.grad(&grads).unwrap(),
            patch.down.weight.val().grad(&grads).unwrap(),
            patch.up.weight.val().grad(&grads).unwrap(),
        )
    };
    let ((y1, gx1, gd1, gu1), (y2, gx2, gd2, gu2)) = (run(true), run(false));
    assert!(max_diff(y1, y2) < 1e-5);
    assert!(max_diff(gx1, gx2) < 1e-4);
    assert!(max_diff(gd1, gd2) < 1e-3);
    assert!(max_diff(gu1, gu2) < 1e-3);
}

/// The fused Adam on Flex gives bitwise Burn's Adam (the same `f32` operations in the same
/// order), over steps with and without weight decay, on a parameter of several Rayon tasks; a
/// clone of the parameter taken before a step keeps its values (the update is in place only
/// where nothing else holds the buffer).
#[test]
fn flex_fused_adam_is_burns_adam_bitwise() {
    use burn::optim::SimpleOptimizer;
    use peterrec::model::FusedAdamConfig;
    let device = Default::default();
    let bits = |t: &Tensor<Flex, 2>| -> Vec<u32> {
        let values = t.to_data().into_vec::<f32>().unwrap();
        values.iter().map(|v| v.to_bits()).collect()
    };
    for config in [
        FusedAdamConfig::new(),
        FusedAdamConfig::new().with_weight_decay(Some(0.01)),
    ] {
        let (fused, burn) = (config.build(), config.burn().build());
        let mut theta_f = Tensor::<Flex, 2>::random([300, 257], Distribution::Default, &device);
        // Shared with `theta_f` at first: the fused step must copy, not write Burn's input.
        let mut theta_b = theta_f.clone();
        let (mut state_f, mut state_b) = (None, None);
        for step in 0..3 {
            let grad =
                Tensor::<Flex, 2>::random([300, 257], Distribution::Normal(0.0, 0.1), &device);
            // Step 1 holds a clone of the parameter (copied before the update), the others not
            // (updated in place).
            let kept = (step == 1).then(|| (theta_f.clone(), bits(&theta_f)));
            let address =
                |t: &Tensor<Flex, 2>| t.clone().into_primitive().tensor().bytes().as_ptr();
            let before = address(&theta_f);
            (theta_f, state_f) =
                SimpleOptimizer::<Flex>::step(&fused, 1e-2, theta_f, grad.clone(), state_f);
            (theta_b, state_b) = SimpleOptimizer::<Flex>::step(&burn, 1e-2, theta_b, grad, state_b);
            if let Some((kept, values)) = kept {
                assert_eq!(bits(&kept), values, "a shared parameter was written");
            }
            if step == 2 {
                assert_eq!(
                    address(&theta_f),
                    before,
                    "an unshared parameter was copied"
                );
            }
            assert_eq!(bits(&theta_f), bits(&theta_b), "step {step}");
            let (f, b) = (
                &state_f.as_ref().unwrap().momentum,
                &state_b.as_ref().unwrap().momentum,
            );
            assert_eq!(bits(&f.moment_1), bits(&b.moment_1));
            assert_eq!(bits(&f.moment_2), bits(&b.moment_2));
        }
    }
}
