//! Label budgets: training a task on a share of its labelled training users, with the same
//! validation and test users at every share.

use std::collections::BTreeSet;

use peterrec_data::FineTuneExample;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// How many of `users` training users a budget of `share` keeps: `ceil(share · users)`, at least
/// one (when there is any), at most all. A product a rounding error above an integer (0.07 · 100)
/// counts as that integer.
pub fn users_at(share: f64, users: usize) -> usize {
    if users == 0 {
        return 0;
    }
    ((share * users as f64 - 1e-9).ceil() as usize).clamp(1, users)
}

/// The examples of the first [`users_at`]`(share, n)` of the `n` distinct users of `examples`,
/// in an order drawn with `seed`.
///
/// The order depends on the seed and the set of users only, so for one seed a smaller share keeps
/// a subset of the users of a larger one (the budgets are nested), and every example of a kept
/// user is kept. Examples stay in their original order.
pub fn keep_share_of_users(
    examples: &[FineTuneExample],
    share: f64,
    seed: u64,
) -> Vec<FineTuneExample> {
    let users: BTreeSet<&str> = examples.iter().map(|e| e.user.as_str()).collect();
    let mut order: Vec<&str> = users.into_iter().collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0xb0d9e7));
    let kept: BTreeSet<&str> = order[..users_at(share, order.len())]
        .iter()
        .copied()
        .collect();
    examples
        .iter()
        .filter(|e| kept.contains(e.user.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples() -> Vec<FineTuneExample> {
        // 20 users, user u has (u % 3) + 1 examples.
        (0..20u32)
            .flat_map(|u| {
                (0..=u % 3).map(move |k| FineTuneExample {
                    user: format!("u{u:02}"),
                    seq: vec![4 + k],
                    label: u % 2,
                })
            })
            .collect()
    }

    fn users(ex: &[FineTuneExample]) -> BTreeSet<String> {
        ex.iter().map(|e| e.user.clone()).collect()
    }

    #[test]
    fn users_at_rounds_up_and_keeps_at_least_one() {
        assert_eq!(users_at(0.01, 4228), 43);
        assert_eq!(users_at(0.25, 4228), 1057);
        assert_eq!(users_at(1.0, 4228), 4228);
        assert_eq!(users_at(0.001, 20), 1);
        assert_eq!(users_at(0.5, 0), 0);
        assert_eq!(users_at(2.0, 7), 7);
        assert_eq!(users_at(0.07, 100), 7);
    }

    #[test]
    fn shares_keep_whole_users_nested_and_seeded() {
        let ex = examples();
        let all = keep_share_of_users(&ex, 1.0, 3);
        assert_eq!(all, ex);
        let mut previous: Option<BTreeSet<String>> = None;
        for share in [0.05, 0.1, 0.25, 0.5, 1.0] {
            let kept = keep_share_of_users(&ex, share, 3);
            let u = users(&kept);
            assert_eq!(u.len(), users_at(share, 20), "{share}");
            // Every example of a kept user is kept.
            let expected = ex.iter().filter(|e| u.contains(&e.user)).count();
            assert_eq!(kept.len(), expected);
            if let Some(p) = &previous {
                assert!(p.is_subset(&u), "{share}: budgets are not nested");
            }
            previous = Some(u);
        }
        // Same seed, same users; another seed, (here) other users.
        assert_eq!(
            keep_share_of_users(&ex, 0.25, 3),
            keep_share_of_users(&ex, 0.25, 3)
        );
        assert_ne!(
            users(&keep_share_of_users(&ex, 0.25, 3)),
            users(&keep_share_of_users(&ex, 0.25, 4))
        );
    }
}
