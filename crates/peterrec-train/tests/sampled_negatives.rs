//! Pins the exact negatives of the sampled ranking protocol for fixed seeds, in both of its
//! paths (rejection and partial shuffle), and the generator's next output after them (the
//! evaluation shares one generator across users, so the number of draws matters as well).

use peterrec_train::eval::sampled_negatives;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// FNV-1a over the values, so that a long draw is pinned whole.
fn fingerprint(v: &[usize]) -> u64 {
    v.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn pin(name: &str, n_items: usize, seed: u64, want: (&[usize], u64, u64)) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let negs = sampled_negatives(&mut rng, n_items, 42, &[0, 1, 2, 3], &[5, 6, 7, 70], 99);
    let next = rng.random::<u64>();
    let got = (&negs[..10], fingerprint(&negs), next);
    assert_eq!(negs.len(), 99, "{name}");
    assert_eq!(got, want, "{name}");
}

#[test]
fn rejection_path_is_pinned() {
    pin(
        "rejection",
        1000,
        7,
        (
            &[140, 157, 182, 167, 270, 704, 36, 726, 71, 601],
            3226758843509031586,
            10324042514821399134,
        ),
    );
}

#[test]
fn partial_shuffle_path_is_pinned() {
    pin(
        "shuffle",
        150,
        8,
        (
            &[122, 131, 91, 90, 20, 111, 68, 92, 114, 67],
            4142994709172211262,
            4816693042495992496,
        ),
    );
}
