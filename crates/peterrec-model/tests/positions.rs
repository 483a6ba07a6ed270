//! Receptive-field pruning: the backbone run on the positions a request depends on equals the
//! full pass at the requested positions, in value and in every parameter's gradient, causal and
//! centred, kernel 2 and 3, with every kind of patch. In `f64`, so that the tolerances are far
//! below any mistake (in `f32` the LayerNorm backward leaves relative differences near 1e-4).

use burn::backend::{Autodiff, NdArray};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use peterrec_model::{Insertion, ModelPatchConfig, NextItNet, NextItNetConfig, PatchInit};

type B = NdArray<f64>;
type AB = Autodiff<B>;

const LENGTH: usize = 11;

fn tokens() -> Tensor<AB, 2, Int> {
    let rows: Vec<i64> = (0..3 * LENGTH as i64).map(|i| (i * 7) % 29 + 1).collect();
    Tensor::from_data(TensorData::new(rows, [3, LENGTH]), &Default::default())
}

/// Every patch mode, or none; the last flag is the port's `parallel_adds_input` convention.
fn patch_modes() -> Vec<Option<(Insertion, bool)>> {
    vec![
        None,
        Some((Insertion::Serial, false)),
        Some((Insertion::SerialOne, false)),
        Some((Insertion::Parallel, false)),
        Some((Insertion::Parallel, true)),
    ]
}

fn backbone(causal: bool, kernel: usize, patches: Option<(Insertion, bool)>) -> NextItNet<AB> {
    let device = Default::default();
    // Block dilation 4 (convolutions 4 and 8) reaches 16 positions back at k = 3 (8 at k = 2):
    // beyond the 11 positions.
    let config = NextItNetConfig::new(30, 8, vec![1, 2, 4])
        .with_kernel_size(kernel)
        .with_causal(causal)
        .with_init_std(0.3)
        .with_seed(5);
    let mut net = config.init::<AB>(&device);
    if let Some((insertion, adds_input)) = patches {
        net = net.attach_patches(
            insertion,
            &ModelPatchConfig::new(8).with_init(PatchInit::TruncatedNormal { std: 0.5 }),
            &device,
        );
        for block in &mut net.blocks {
            block.parallel_adds_input = adds_input;
        }
    }
    net
}

/// The gradient of every parameter, in visiting order (`None` where a parameter gets none).
fn gradients(net: &NextItNet<AB>, grads: &<AB as AutodiffBackend>::Gradients) -> Vec<Vec<f64>> {
    struct Visit<'a> {
        grads: &'a <AB as AutodiffBackend>::Gradients,
        out: Vec<Vec<f64>>,
    }
    impl ModuleVisitor<AB> for Visit<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
            let g = param
                .grad(self.grads)
                .expect("every parameter gets a gradient");
            self.out
                .push(g.into_data().convert::<f64>().to_vec().unwrap());
        }
    }
    let mut visit = Visit {
        grads,
        out: Vec::new(),
    };
    net.visit(&mut visit);
    visit.out
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn forward_at_equals_the_full_pass_in_value_and_gradient() {
    let device = Default::default();
    let sets: [&[usize]; 4] = [&[LENGTH - 1], &[0, LENGTH - 1], &[3, 4, 8], &[5]];
    let mut cases = 0;
    for causal in [true, false] {
        // Centred convolutions need an odd kernel.
        for kernel in if causal { vec![2, 3] } else { vec![3] } {
            for patches in patch_modes() {
                let net = backbone(causal, kernel, patches);
                for positions in sets {
                    let case = format!("causal={causal} k={kernel} {patches:?} {positions:?}");
                    let weights = Tensor::<AB, 3>::random(
                        [3, positions.len(), 8],
                        Distribution::Normal(0.0, 1.0),
                        &device,
                    );
                    let index = Tensor::<AB, 1, Int>::from_data(
                        TensorData::new(
                            positions.iter().map(|&p| p as i64).collect::<Vec<_>>(),
                            [positions.len()],
                        ),
                        &device,
                    );
                    let full = net.forward(tokens()).select(1, index);
                    let pruned = net.forward_at(tokens(), positions);
                    let (full_v, pruned_v): (Vec<f64>, Vec<f64>) = (
                        full.clone().into_data().convert::<f64>().to_vec().unwrap(),
                        pruned
                            .clone()
                            .into_data()
                            .convert::<f64>()
                            .to_vec()
                            .unwrap(),
                    );
                    assert!(max_diff(&full_v, &pruned_v) < 1e-9, "{case}: values");
                    let full_g = gradients(&net, &(full * weights.clone()).sum().backward());
                    let pruned_g = gradients(&net, &(pruned * weights).sum().backward());
                    assert_eq!(full_g.len(), pruned_g.len());
                    for (i, (f, p)) in full_g.iter().zip(&pruned_g).enumerate() {
                        let d = max_diff(f, p);
                        let scale = f.iter().fold(1.0f64, |m, x| m.max(x.abs()));
                        assert!(
                            d < 1e-9 * scale,
                            "{case}: gradient of parameter {i} off by {d} (largest {scale})"
                        );
                    }
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 3 * 5 * 4);
}

/// A causal position needs only its prefix, and not all of it: the plan of position 4 under
/// dilations 1, 2, 4 (worked out by hand) embeds positions 0..=4 and computes 12 convolution
/// rows; the result equals the full pass over the five-token prefix.
#[test]
fn a_causal_position_needs_only_part_of_its_prefix() {
    let net = backbone(true, 3, Some((Insertion::Serial, false)));
    let plan = net.plan(LENGTH, &[4]);
    assert_eq!(plan.input, (0..5).collect::<Vec<_>>());
    assert_eq!(plan.blocks[0].output, vec![0, 2, 4]);
    assert_eq!(plan.blocks[1].output, vec![0, 4]);
    assert_eq!(plan.blocks[2].middle, vec![4]);
    assert_eq!(plan.conv_rows(), 3 + 3 + 2 + 2 + 1 + 1);
    let pruned: Vec<f64> = net
        .forward_at(tokens(), &[4])
        .into_data()
        .convert::<f64>()
        .to_vec()
        .unwrap();
    let prefix = tokens().narrow(1, 0, 5);
    let full: Vec<f64> = net
        .forward(prefix)
        .narrow(1, 4, 1)
        .into_data()
        .convert::<f64>()
        .to_vec()
        .unwrap();
    assert!(max_diff(&pruned, &full) < 1e-9);
}

/// `[CLS]` user vectors read from the pruned pass equal those read from the full hidden states,
/// causal and centred (first and last positions), down to rows of one token.
#[test]
fn user_vectors_equal_pooling_the_full_pass() {
    use peterrec_model::{FineTuneConfig, HeadKind, Strategy};
    let device = Default::default();
    for causal in [true, false] {
        let config = NextItNetConfig::new(30, 8, vec![1, 2, 4])
            .with_causal(causal)
            .with_init_std(0.3)
            .with_seed(9);
        let model = FineTuneConfig::new(
            Strategy::PeterRec {
                insertion: Insertion::Parallel,
            },
            HeadKind::Classifier { outputs: 3 },
        )
        .with_patch_init(PatchInit::TruncatedNormal { std: 0.5 })
        .init(config.init::<AB>(&device), &device)
        .unwrap();
        for length in [1, 2, LENGTH] {
            let t = tokens().narrow(1, LENGTH - length, length);
            let want: Vec<f64> = model
                .pool_cls(model.backbone.forward(t.clone()))
                .into_data()
                .convert::<f64>()
                .to_vec()
                .unwrap();
            let got: Vec<f64> = model
                .user_vectors(t)
                .into_data()
                .convert::<f64>()
                .to_vec()
                .unwrap();
            assert!(
                max_diff(&got, &want) < 1e-9,
                "causal={causal} length={length}"
            );
        }
    }
}
