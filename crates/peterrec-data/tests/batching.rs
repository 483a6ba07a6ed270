//! Tensor batches: shapes, values and bit-for-bit reproducibility from a seed.

use burn::backend::NdArray;
use burn::tensor::{Int, Tensor, TensorData};
use peterrec_data::batch::{
    cloze_batch, cloze_rows, finetune_batch, masked_next_item_batch, next_item_batch, SeqObjective,
};
use peterrec_data::sampler::{item_counts, PopularitySampler, UniformSampler};
use peterrec_data::split::SplitConfig;
use peterrec_data::synthetic::{generate, SyntheticConfig};
use peterrec_data::{CLS, MASK, NUM_RESERVED, PAD};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

type B = NdArray;

fn values<const D: usize>(t: &Tensor<B, D, Int>) -> Vec<i64> {
    t.to_data().convert::<i64>().to_vec::<i64>().unwrap()
}

fn data<const D: usize>(t: &Tensor<B, D, Int>) -> TensorData {
    t.to_data()
}

#[test]
fn tensors_match_rows() {
    let device = Default::default();
    let a = [10u32, 11, 12, 13];
    let b = [20u32, 21];
    let batch = next_item_batch::<B>(&[&a, &b], 4, &device);
    assert_eq!(batch.inputs.dims(), [2, 4]);
    assert_eq!(values(&batch.inputs), vec![0, 10, 11, 12, 0, 0, 0, 20]);
    assert_eq!(values(&batch.targets), vec![0, 11, 12, 13, 0, 0, 0, 21]);
    assert_eq!(values(&batch.mask), vec![0, 1, 1, 1, 0, 0, 0, 1]);
}

#[test]
fn same_seed_same_batches_bit_for_bit() {
    let device = Default::default();
    let d = generate(&SyntheticConfig::default().with_users(64));
    let seqs: Vec<&[u32]> = d.sequences.iter().map(|s| s.items.as_slice()).collect();
    let run = |seed: u64| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::new();
        for chunk in seqs.chunks(16) {
            let m = masked_next_item_batch::<B>(chunk, 20, 0.3, &mut rng, &device);
            let c = cloze_batch::<B>(chunk, 20, d.vocab.len(), &mut rng, &device);
            for t in [m.inputs, m.targets, m.mask, c.inputs, c.targets, c.mask] {
                out.push(data(&t));
            }
        }
        out
    };
    let (x, y, z) = (run(7), run(7), run(8));
    assert_eq!(x.len(), 24);
    for (p, q) in x.iter().zip(&y) {
        assert_eq!(p.as_bytes(), q.as_bytes());
        assert_eq!(p.shape, q.shape);
    }
    assert!(x.iter().zip(&z).any(|(p, q)| p.as_bytes() != q.as_bytes()));
}

#[test]
fn masked_and_cloze_invariants() {
    let device = Default::default();
    let d = generate(&SyntheticConfig::default().with_users(32));
    let seqs: Vec<&[u32]> = d.sequences.iter().map(|s| s.items.as_slice()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let m = masked_next_item_batch::<B>(&seqs, 40, 0.5, &mut rng, &device);
    let plain = next_item_batch::<B>(&seqs, 40, &device);
    let (mi, pi) = (values(&m.inputs), values(&plain.inputs));
    assert_eq!(values(&m.targets), values(&plain.targets));
    assert_eq!(values(&m.mask), values(&plain.mask));
    for (x, y) in mi.iter().zip(&pi) {
        assert!(x == y || (*x == i64::from(MASK) && *y != i64::from(PAD)));
    }
    let masked = mi.iter().filter(|&&x| x == i64::from(MASK)).count() as f64;
    let real = pi.iter().filter(|&&x| x != i64::from(PAD)).count() as f64;
    assert!((masked / real - 0.5).abs() < 0.06, "{masked}/{real}");

    let c = cloze_rows(&seqs, 40, d.vocab.len(), &mut rng);
    for (r, seq) in seqs.iter().enumerate() {
        let n = seq.len().min(40);
        let k = c.mask[r * 40..(r + 1) * 40].iter().sum::<u32>() as usize;
        assert_eq!(k, ((0.3 * n as f64).round() as usize).clamp(1, 30.min(n)));
    }
    assert!(c
        .inputs
        .iter()
        .all(|&x| x == MASK || x == PAD || x >= NUM_RESERVED));
}

#[test]
fn finetune_tensors_and_objective_value() {
    let device = Default::default();
    let d = generate(&SyntheticConfig::default().with_users(50));
    let task = d.classification_task(&SplitConfig::default()).unwrap();
    let ex: Vec<_> = task.train.iter().take(5).collect();
    let causal = finetune_batch::<B>(&ex, 8, true, &device);
    assert_eq!(causal.inputs.dims(), [5, 9]);
    let v = values(&causal.inputs);
    for r in 0..5 {
        assert_eq!(v[r * 9 + 8], i64::from(CLS));
        let tail: Vec<i64> = ex[r].seq[ex[r].seq.len() - 8..]
            .iter()
            .map(|&x| i64::from(x))
            .collect();
        assert_eq!(&v[r * 9..r * 9 + 8], tail.as_slice());
    }
    assert_eq!(
        values(&causal.labels),
        ex.iter().map(|e| i64::from(e.label)).collect::<Vec<_>>()
    );
    let bi = finetune_batch::<B>(&ex, 8, false, &device);
    assert_eq!(bi.inputs.dims(), [5, 10]);

    let seqs: Vec<&[u32]> = d
        .sequences
        .iter()
        .take(4)
        .map(|s| s.items.as_slice())
        .collect();
    let mut r1 = ChaCha8Rng::seed_from_u64(3);
    let mut r2 = ChaCha8Rng::seed_from_u64(3);
    let obj = SeqObjective::Cloze {
        num_tokens: d.vocab.len(),
    };
    let a = obj.batch::<B>(&seqs, 12, &mut r1, &device);
    let b = cloze_batch::<B>(&seqs, 12, d.vocab.len(), &mut r2, &device);
    assert_eq!(data(&a.inputs).as_bytes(), data(&b.inputs).as_bytes());
}

#[test]
fn samplers_from_sequences() {
    let d = generate(&SyntheticConfig::default().with_users(100));
    let counts = item_counts(
        d.sequences.iter().map(|s| s.items.as_slice()),
        d.vocab.len(),
    );
    assert_eq!(counts[..NUM_RESERVED as usize], [0, 0, 0, 0]);
    let pop = PopularitySampler::from_counts(&counts, NUM_RESERVED..d.vocab.len() as u32).unwrap();
    let uni = UniformSampler::for_vocab(&d.vocab).unwrap();
    let mut r1 = ChaCha8Rng::seed_from_u64(11);
    let mut r2 = ChaCha8Rng::seed_from_u64(11);
    assert_eq!(pop.sample(100, &mut r1), pop.sample(100, &mut r2));
    assert_eq!(uni.sample(100, &mut r1), uni.sample(100, &mut r2));
    assert!(pop
        .sample(500, &mut r1)
        .iter()
        .all(|&i| counts[i as usize] > 0));
}
