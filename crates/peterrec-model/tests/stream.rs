//! Streaming inference equals the full forward pass, after every appended item.

use burn::backend::NdArray;
use burn::tensor::{Int, Tensor, TensorData};
use peterrec_model::{
    FineTuneConfig, FineTuneModel, HeadKind, Insertion, ModelError, NextItNetConfig, PatchInit,
    Strategy, StreamModel,
};

type B = NdArray<f32>;

const CLS: u32 = 2;
const STEPS: usize = 200;

fn config() -> NextItNetConfig {
    // Receptive field 1 + 2·3·(1 + 4 + 2) = 43, so 200 items go far past every cache.
    NextItNetConfig::new(60, 8, vec![1, 4, 2])
        .with_seed(5)
        .with_init_std(0.2)
}

/// Histories of `users` users, different per user, each of length `STEPS`.
fn histories(users: usize) -> Vec<Vec<i64>> {
    (0..users)
        .map(|u| {
            (0..STEPS)
                .map(|t| 4 + ((t * 7 + u * 13 + t * t % 11) % 56) as i64)
                .collect()
        })
        .collect()
}

fn rows(hist: &[Vec<i64>], t: usize, suffix: Option<i64>) -> Tensor<B, 2, Int> {
    let mut flat = Vec::new();
    for h in hist {
        flat.extend_from_slice(&h[..t]);
        flat.extend(suffix);
    }
    let len = t + usize::from(suffix.is_some());
    Tensor::from_data(
        TensorData::new(flat, [hist.len(), len]),
        &Default::default(),
    )
}

fn host(t: Tensor<B, 2>) -> Vec<f32> {
    t.into_data().to_vec().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A fine-tuned model whose patches and head are far from their trivial init.
fn model(strategy: Strategy) -> FineTuneModel<B> {
    model_with(strategy, HeadKind::Classifier { outputs: 3 })
}

fn model_with(strategy: Strategy, head: HeadKind) -> FineTuneModel<B> {
    let device = Default::default();
    let cfg = config();
    FineTuneConfig::new(strategy, head)
        .with_patch_init(PatchInit::TruncatedNormal { std: 0.3 })
        .init(cfg.init::<B>(&device), &device)
        .unwrap()
}

#[test]
fn streamed_user_vectors_equal_full_recomputation_after_each_of_200_items() {
    let hist = histories(3);
    let classes = HeadKind::Classifier { outputs: 3 };
    for (strategy, head) in [
        (Strategy::FineCls, HeadKind::TargetItems { outputs: 17 }),
        (
            Strategy::PeterRec {
                insertion: Insertion::Serial,
            },
            classes,
        ),
        (
            Strategy::PeterRec {
                insertion: Insertion::Parallel,
            },
            classes,
        ),
        (
            Strategy::PeterRec {
                insertion: Insertion::SerialOne,
            },
            HeadKind::TargetItems { outputs: 17 },
        ),
    ] {
        let m = model_with(strategy, head);
        let stream = StreamModel::from_task(&m).unwrap();
        let mut states: Vec<_> = hist.iter().map(|_| stream.state()).collect();
        let mut worst = 0f32;
        for t in 0..STEPS {
            let full = m.backbone.forward(rows(&hist, t + 1, None));
            let [b, l, c] = full.dims();
            let full_last = host(full.narrow(1, l - 1, 1).reshape([b, c]));
            let recomputed = host(m.user_vectors(rows(&hist, t + 1, Some(CLS as i64))));
            let scores = host(m.forward(rows(&hist, t + 1, Some(CLS as i64))));
            let k = scores.len() / b;
            for (u, state) in states.iter_mut().enumerate() {
                // The hidden state at the new position equals the last row of the full pass.
                let hidden = stream.push(state, hist[u][t] as u32).unwrap().to_vec();
                assert_eq!(state.len(), t + 1);
                worst = worst.max(max_abs_diff(&hidden, &full_last[u * c..(u + 1) * c]));
                // The [CLS] user vector and the task scores equal those of history + [CLS].
                let streamed = stream.peek(state, CLS).unwrap();
                let d = max_abs_diff(&streamed, &recomputed[u * c..(u + 1) * c]);
                assert!(
                    d < 1e-5,
                    "{strategy}: user vector after {} items differs by {d}",
                    t + 1
                );
                let s = max_abs_diff(
                    &stream.scores(state, CLS).unwrap(),
                    &scores[u * k..(u + 1) * k],
                );
                assert!(
                    s < 1e-5,
                    "{strategy}: scores after {} items differ by {s}",
                    t + 1
                );
                worst = worst.max(d);
            }
        }
        assert!(worst < 1e-5, "{strategy}: {worst}");
        // Peeking never changed the history, and a state's size does not grow with it.
        assert!(states.iter().all(|s| s.len() == STEPS));
        assert_eq!(states[0].num_floats(), stream.state().num_floats());
    }
}

#[test]
fn a_padded_history_streams_like_its_padded_row() {
    // Training rows are left-padded with PAD (token 0, an ordinary embedding row): pushing the
    // PADs first reproduces such a row exactly.
    let device = Default::default();
    let m = model(Strategy::PeterRec {
        insertion: Insertion::Serial,
    });
    let row: Vec<i64> = vec![0, 0, 0, 9, 17, 33, 41];
    let stream = StreamModel::from_task(&m).unwrap();
    let mut state = stream.state();
    for &tok in &row {
        stream.push(&mut state, tok as u32).unwrap();
    }
    let mut with_cls = row.clone();
    with_cls.push(CLS as i64);
    let full = m.user_vectors(Tensor::from_data(
        TensorData::new(with_cls, [1, row.len() + 1]),
        &device,
    ));
    assert!(max_abs_diff(&stream.peek(&state, CLS).unwrap(), &host(full)) < 1e-5);
}

#[test]
fn bad_streaming_inputs_are_typed_errors() {
    let device = Default::default();
    let centred = config().with_causal(false);
    assert!(matches!(
        StreamModel::from_backbone(&centred.init::<B>(&device)),
        Err(ModelError::InvalidConfig(_))
    ));
    let backbone = config().init::<B>(&device);
    let stream = StreamModel::from_backbone(&backbone).unwrap();
    let mut state = stream.state();
    stream.push(&mut state, 7).unwrap();
    let before = state.clone();
    // A token past the embedding table: an error, and the state is unchanged.
    assert!(matches!(
        stream.push(&mut state, 60),
        Err(ModelError::InvalidConfig(_))
    ));
    assert_eq!(state, before);
    // No head: no scores.
    assert!(matches!(
        stream.scores(&state, CLS),
        Err(ModelError::InvalidConfig(_))
    ));
    // A state of another model.
    let other_cfg = NextItNetConfig::new(60, 8, vec![1]);
    let other = StreamModel::from_backbone(&other_cfg.init::<B>(&device)).unwrap();
    assert!(matches!(
        other.peek(&state, 5),
        Err(ModelError::InvalidConfig(_))
    ));
}

#[test]
fn a_kernel_of_one_streams_without_caches() {
    let device = Default::default();
    let cfg = NextItNetConfig::new(20, 4, vec![1, 2])
        .with_kernel_size(1)
        .with_init_std(0.3);
    let backbone = cfg.init::<B>(&device);
    let stream = StreamModel::from_backbone(&backbone).unwrap();
    let mut state = stream.state();
    let items = [5i64, 6, 7, 8];
    for &i in &items {
        stream.push(&mut state, i as u32).unwrap();
    }
    assert_eq!(state.num_floats(), 4, "only the last hidden state");
    let full = backbone.forward(Tensor::from_data(
        TensorData::new(items.to_vec(), [1, 4]),
        &device,
    ));
    let last = host(full.narrow(1, 3, 1).reshape([1, 4]));
    assert!(max_abs_diff(state.last().unwrap(), &last) < 1e-6);
}

#[test]
fn imported_parallel_patches_stream_with_their_convention() {
    // Parallel patches imported from the PyTorch port add the whole `MP(x) = x + delta(x)`
    // beside the convolution; the stream follows the flag as the forward pass does.
    let mut m = model(Strategy::PeterRec {
        insertion: Insertion::Parallel,
    });
    for b in &mut m.backbone.blocks {
        b.parallel_adds_input = true;
    }
    let stream = StreamModel::from_task(&m).unwrap();
    let hist = histories(1);
    let mut state = stream.state();
    for t in 0..30 {
        stream.push(&mut state, hist[0][t] as u32).unwrap();
        let want = host(m.forward(rows(&hist, t + 1, Some(CLS as i64))));
        let got = stream.scores(&state, CLS).unwrap();
        assert!(max_abs_diff(&got, &want) < 1e-5, "after {} items", t + 1);
    }
}
