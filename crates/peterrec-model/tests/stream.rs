//! Streaming inference equals the full forward pass, after every appended item.

use burn::backend::NdArray;
use burn::tensor::{Int, Tensor, TensorData};
use peterrec_model::{
    FineTuneConfig, FineTuneModel, HeadKind, Insertion, ModelError, NextItNetConfig, PatchInit,
    Strategy, StreamState,
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

fn column(hist: &[Vec<i64>], t: usize) -> Tensor<B, 1, Int> {
    let col: Vec<i64> = hist.iter().map(|h| h[t]).collect();
    Tensor::from_data(TensorData::new(col, [hist.len()]), &Default::default())
}

fn max_abs_diff(a: Tensor<B, 2>, b: Tensor<B, 2>) -> f32 {
    let a: Vec<f32> = a.into_data().to_vec().unwrap();
    let b: Vec<f32> = b.into_data().to_vec().unwrap();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A fine-tuned model whose patches and head are far from their trivial init.
fn model(strategy: Strategy) -> FineTuneModel<B> {
    let device = Default::default();
    let cfg = config();
    FineTuneConfig::new(strategy, HeadKind::Classifier { outputs: 3 })
        .with_patch_init(PatchInit::TruncatedNormal { std: 0.3 })
        .init(cfg.init::<B>(&device), &cfg, &device)
        .unwrap()
}

#[test]
fn streamed_user_vectors_equal_full_recomputation_after_each_of_200_items() {
    let device = Default::default();
    let hist = histories(3);
    for strategy in [
        Strategy::FineCls,
        Strategy::PeterRec {
            insertion: Insertion::Serial,
        },
        Strategy::PeterRec {
            insertion: Insertion::Parallel,
        },
        Strategy::PeterRec {
            insertion: Insertion::SerialOne,
        },
    ] {
        let m = model(strategy);
        let mut state = m.stream_state(hist.len(), &device).unwrap();
        let mut worst = 0f32;
        for t in 0..STEPS {
            let hidden = state.push(&m.backbone, column(&hist, t));
            assert_eq!(state.len(), t + 1);
            // The hidden state at the new position equals the last row of the full pass.
            let full = m.backbone.forward(rows(&hist, t + 1, None));
            let [b, l, c] = full.dims();
            let full_last = full.narrow(1, l - 1, 1).reshape([b, c]);
            worst = worst.max(max_abs_diff(hidden, full_last));
            // The [CLS] user vector and the task scores equal those of history + [CLS].
            let streamed = m.stream_user_vectors(&state, CLS);
            let recomputed = m.user_vectors(rows(&hist, t + 1, Some(CLS as i64)));
            let d = max_abs_diff(streamed, recomputed);
            assert!(
                d < 1e-5,
                "{strategy}: user vector after {} items differs by {d}",
                t + 1
            );
            let scores = max_abs_diff(
                m.stream_scores(&state, CLS),
                m.forward(rows(&hist, t + 1, Some(CLS as i64))),
            );
            assert!(
                scores < 1e-5,
                "{strategy}: scores after {} items differ by {scores}",
                t + 1
            );
            worst = worst.max(d);
        }
        assert!(worst < 1e-5, "{strategy}: {worst}");
        // Peeking never changed the history.
        assert_eq!(state.len(), STEPS);
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
    let mut state = m.stream_state(1, &device).unwrap();
    for &tok in &row {
        state.push(&m.backbone, Tensor::from_ints([tok], &device));
    }
    let mut with_cls = row.clone();
    with_cls.push(CLS as i64);
    let full = m.user_vectors(Tensor::from_data(
        TensorData::new(with_cls, [1, row.len() + 1]),
        &device,
    ));
    assert!(max_abs_diff(m.stream_user_vectors(&state, CLS), full) < 1e-5);
}

#[test]
fn streaming_a_centred_backbone_or_no_user_is_a_typed_error() {
    let device = Default::default();
    let centred = config().with_causal(false).init::<B>(&device);
    assert!(matches!(
        StreamState::new(&centred, 1, &device),
        Err(ModelError::InvalidConfig(_))
    ));
    let causal = config().init::<B>(&device);
    assert!(matches!(
        StreamState::new(&causal, 0, &device),
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
    let mut state = StreamState::new(&backbone, 1, &device).unwrap();
    let items = [5i64, 6, 7, 8];
    for &i in &items {
        state.push(&backbone, Tensor::from_ints([i], &device));
    }
    let full = backbone.forward(Tensor::from_data(
        TensorData::new(items.to_vec(), [1, 4]),
        &device,
    ));
    let last = full.narrow(1, 3, 1).reshape([1, 4]);
    assert!(max_abs_diff(state.last().unwrap().clone(), last) < 1e-6);
}
