//! Pins the exact negatives and `log Q` values of the sampled-softmax sampler for fixed seeds
//! (and the generator's next output after the draws, so the number of draws is pinned too).

use peterrec_model::{NegativeDistribution, NegativeSampler};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn sampler(distribution: NegativeDistribution) -> NegativeSampler {
    NegativeSampler {
        num_negatives: 16,
        distribution,
        first_item: 4,
        num_tokens: 1004,
    }
}

fn pin(name: &str, s: &NegativeSampler, seed: u64, want: (&[u32], u64, &[u32])) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let got = s.sample(&mut rng);
    let next = rng.random::<u64>();
    let log_q: Vec<u32> = [0u32, 3, 4, 5, 100, 1003]
        .iter()
        .map(|&i| s.log_q(i).to_bits())
        .collect();
    assert_eq!((got.as_slice(), next, log_q.as_slice()), want, "{name}");
}

#[test]
fn uniform_negatives_are_pinned() {
    pin(
        "uniform",
        &sampler(NegativeDistribution::Uniform),
        5,
        (
            &[
                212, 205, 281, 719, 499, 820, 261, 871, 835, 430, 295, 290, 11, 991, 886, 710,
            ],
            10722159800012814895,
            &[3229897545; 6],
        ),
    );
}

#[test]
fn log_uniform_negatives_are_pinned() {
    pin(
        "log-uniform",
        &sampler(NegativeDistribution::LogUniform),
        6,
        (
            &[
                21, 31, 11, 204, 62, 112, 4, 5, 926, 7, 12, 410, 482, 4, 16, 6,
            ],
            14184360717508087255,
            &[
                1056068248, 1056068248, 1056068248, 3179338958, 3228523747, 3233951946,
            ],
        ),
    );
}
