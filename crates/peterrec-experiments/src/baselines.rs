//! Baselines of the transfer table that need no model, and the per-user cap of cold-start
//! examples.
//!
//! The majority-class baseline of the profile tasks is computed with the task
//! (`peterrec_data::MajorityClass`) and reported by the fine-tuning evaluation.

use std::collections::BTreeMap;

use peterrec_data::{FineTuneExample, Task};
use peterrec_train::eval::{full_rank, RankingMetrics};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Test HR@10 and NDCG@10 of ranking a target-item task's targets by their count in the training
/// examples, the same for every user. Ties count against the positive, as in every ranking of
/// `peterrec_train::eval`, so a target never seen in training ranks below all others.
pub fn popularity(task: &Task) -> (f64, f64) {
    let mut counts = vec![0f32; task.num_outputs()];
    for e in &task.train {
        counts[e.label as usize] += 1.0;
    }
    let mut m = RankingMetrics::new(&[10]);
    for e in &task.test {
        m.add_rank(full_rank(&counts, e.label as usize, &[], None).unwrap_or(0));
    }
    let m = m.mean();
    (m.hr_at(10).unwrap_or(0.0), m.ndcg_at(10).unwrap_or(0.0))
}

/// Keeps at most `k` examples per user (a subset drawn with `seed`); 0 keeps all.
///
/// Every cold-start example repeats the user's whole source sequence, so this bounds the cost of
/// a fine-tuning epoch. The kept examples come grouped by user, users in id order.
pub fn cap_per_user(examples: &mut Vec<FineTuneExample>, k: usize, seed: u64) {
    if k == 0 {
        return;
    }
    let mut by_user: BTreeMap<String, Vec<FineTuneExample>> = BTreeMap::new();
    for e in examples.drain(..) {
        by_user.entry(e.user.clone()).or_default().push(e);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc01d);
    for (_, mut mine) in by_user {
        mine.shuffle(&mut rng);
        mine.truncate(k);
        examples.extend(mine);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peterrec_data::TaskKind;

    fn ex(user: &str, label: u32) -> FineTuneExample {
        FineTuneExample {
            user: user.into(),
            seq: vec![4, 5],
            label,
        }
    }

    fn task(targets: usize, train: &[u32], test: &[u32]) -> Task {
        Task {
            name: "t".into(),
            kind: TaskKind::TargetItems {
                num_targets: targets,
                target_names: (0..targets).map(|i| i.to_string()).collect(),
            },
            train: train.iter().map(|&l| ex("u", l)).collect(),
            valid: Vec::new(),
            test: test.iter().map(|&l| ex("v", l)).collect(),
        }
    }

    #[test]
    fn popularity_ranks_targets_by_training_count() {
        // 12 targets; counts: target 5 three times, target 0 once, the rest never.
        // Test 5: rank 1. Test 0: rank 2 (only 5 is above). Test 7: its 0 ties with the ten
        // other unseen targets, which all count against it: rank 12, a miss at 10.
        let (hr, ndcg) = popularity(&task(12, &[5, 0, 5, 5], &[5, 0, 7]));
        assert!((hr - 2.0 / 3.0).abs() < 1e-12, "{hr}");
        let want = (1.0 + 1.0 / 3f64.log2()) / 3.0;
        assert!((ndcg - want).abs() < 1e-12, "{ndcg} vs {want}");
    }

    #[test]
    fn popularity_with_every_test_target_the_most_popular() {
        let (hr, ndcg) = popularity(&task(3, &[1, 1, 2], &[1, 1]));
        assert_eq!((hr, ndcg), (1.0, 1.0));
    }

    #[test]
    fn popularity_without_test_examples_is_zero() {
        assert_eq!(popularity(&task(3, &[1], &[])), (0.0, 0.0));
    }

    fn users(v: &[FineTuneExample]) -> Vec<&str> {
        v.iter().map(|e| e.user.as_str()).collect()
    }

    fn sample() -> Vec<FineTuneExample> {
        vec![
            ex("b", 0),
            ex("a", 1),
            ex("b", 2),
            ex("c", 3),
            ex("b", 4),
            ex("a", 5),
        ]
    }

    #[test]
    fn cap_zero_keeps_everything_in_place() {
        let mut v = sample();
        cap_per_user(&mut v, 0, 1);
        assert_eq!(v, sample());
    }

    #[test]
    fn cap_keeps_at_most_k_per_user_grouped_by_user() {
        let mut v = sample();
        cap_per_user(&mut v, 2, 1);
        assert_eq!(users(&v), ["a", "a", "b", "b", "c"]);
        // a's two examples are both kept; b keeps two of its three; c its only one.
        let mut a: Vec<u32> = v[..2].iter().map(|e| e.label).collect();
        a.sort_unstable();
        assert_eq!(a, [1, 5]);
        assert!(v[2..4].iter().all(|e| [0, 2, 4].contains(&e.label)));
        assert_ne!(v[2].label, v[3].label);
        assert_eq!(v[4].label, 3);

        let mut one = sample();
        cap_per_user(&mut one, 1, 1);
        assert_eq!(users(&one), ["a", "b", "c"]);
    }

    #[test]
    fn cap_is_deterministic_per_seed() {
        let (mut x, mut y) = (sample(), sample());
        cap_per_user(&mut x, 1, 9);
        cap_per_user(&mut y, 1, 9);
        assert_eq!(x, y);
        // Some seed draws a different subset of b's three examples.
        let b = |seed| {
            let mut v = sample();
            cap_per_user(&mut v, 1, seed);
            v[1].label
        };
        assert!((0..16).any(|s| b(s) != b(0)));
    }
}
