//! Pins the exact draws of the negative samplers for fixed seeds: the values, and the
//! generator's next output after them (so the number of draws is pinned too). A change to
//! how a sampler consumes its generator changes every seeded experiment, so it must fail here.

use std::collections::HashSet;

use peterrec_data::sampler::{NegativeSampler, PopularitySampler, UniformSampler};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The draws and the generator's next `u64` after them.
fn draws(seed: u64, f: impl FnOnce(&mut ChaCha8Rng) -> Vec<u32>) -> (Vec<u32>, u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v = f(&mut rng);
    (v, rng.random::<u64>())
}

fn pin(name: &str, got: (Vec<u32>, u64), want: (&[u32], u64)) {
    assert_eq!((got.0.as_slice(), got.1), want, "{name}");
}

#[test]
fn uniform_draws_are_pinned() {
    let s = UniformSampler::new(4..104).unwrap();
    pin(
        "uniform",
        draws(11, |r| s.sample(16, r)),
        (
            &[
                36, 39, 98, 13, 56, 43, 93, 59, 54, 24, 101, 90, 82, 25, 102, 40,
            ],
            18097842467828232765,
        ),
    );
    let few: HashSet<u32> = [4, 5, 6, 50].into_iter().collect();
    pin(
        "uniform rejection",
        draws(12, |r| s.sample_excluding(16, &few, r)),
        (
            &[
                9, 103, 81, 65, 72, 95, 29, 100, 64, 15, 88, 45, 63, 52, 46, 91,
            ],
            361319707577638951,
        ),
    );
    let most: HashSet<u32> = (4..90).collect();
    pin(
        "uniform allowed list",
        draws(13, |r| s.sample_excluding(16, &most, r)),
        (
            &[
                93, 94, 99, 91, 93, 94, 101, 93, 92, 100, 92, 100, 100, 93, 97, 100,
            ],
            12091659007139516606,
        ),
    );
}

#[test]
fn popularity_draws_are_pinned() {
    let counts: Vec<u64> = (0..40u64).map(|i| (i * 7) % 11).collect();
    let s = PopularitySampler::with_power(&counts, 4..40, 0.75).unwrap();
    pin(
        "popularity",
        draws(21, |r| s.sample(16, r)),
        (
            &[20, 26, 6, 9, 18, 35, 26, 36, 39, 21, 28, 21, 29, 25, 12, 14],
            1940548641556472313,
        ),
    );
    let few: HashSet<u32> = [5, 9, 30].into_iter().collect();
    pin(
        "popularity rejection",
        draws(22, |r| NegativeSampler::sample_excluding(&s, 16, &few, r)),
        (
            &[29, 29, 4, 4, 37, 20, 10, 15, 25, 6, 14, 37, 12, 35, 26, 17],
            10879255090135473922,
        ),
    );
    let most: HashSet<u32> = (4..34).collect();
    pin(
        "popularity reduced",
        draws(23, |r| NegativeSampler::sample_excluding(&s, 16, &most, r)),
        (
            &[
                37, 35, 36, 39, 37, 34, 34, 37, 34, 39, 34, 37, 34, 37, 36, 39,
            ],
            4461883667490155278,
        ),
    );
}
