//! Tests on the real data sets (never bundled with the crate).
//!
//! The data directory is read from the environment variable `PETERREC_DATA` (absolute, or
//! relative to the current directory or to the workspace root); without it, the fallback folder
//! beside the workspace named in `data_dir` is used if it exists. If neither is found the tests
//! FAIL, saying what to set: they are never skipped silently.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use peterrec_data::movielens::{MovieLens, ProfileAttribute, Variant};
use peterrec_data::readers::movielens::read_ml100k_ratings;
use peterrec_data::readers::peterrec::{read_finetune_file, read_pretrain_file};
use peterrec_data::readers::sequences::read_sequence_file;
use peterrec_data::sequence::{build_vocab_and_encode, SequenceStats};
use peterrec_data::split::{leave_one_out, Part};
use peterrec_data::task::cold_start::{cold_start_task, is_target, ColdStartConfig};
use peterrec_data::task::demo::{
    peterrec_demo, DemoTaskConfig, DEMO_FINETUNE_FILE, DEMO_PRETRAIN_FILE,
};
use peterrec_data::task::profile::{profile_bundle, profile_task, ProfileTaskConfig};
use peterrec_data::{TaskKind, Vocab};

fn data_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if let Some(value) = std::env::var_os("PETERREC_DATA") {
        let p = PathBuf::from(&value);
        for candidate in [p.clone(), workspace.join(&p)] {
            if candidate.is_dir() {
                return candidate;
            }
        }
        panic!(
            "PETERREC_DATA={} is not a directory (tried it relative to the current directory and to the workspace root {}); set PETERREC_DATA to the folder holding ml-1m/, ml-100k/, amazon/ and peterrec-demo/",
            p.display(),
            workspace.display()
        );
    }
    panic!(
        "real-data tests need the data sets: set PETERREC_DATA to the folder holding ml-1m/, ml-100k/, amazon/ and peterrec-demo/ (`.ci/run` sets it)"
    );
}

fn distinct_labels(task: &peterrec_data::Task) -> usize {
    [Part::Train, Part::Valid, Part::Test]
        .iter()
        .flat_map(|&p| task.part(p).iter().map(|e| e.label))
        .collect::<HashSet<_>>()
        .len()
}

/// ML-1M is parsed once and checked for everything (parsing 1M lines is the slow part).
#[test]
fn ml1m_figures_tasks_and_splits() {
    let dir = data_dir().join("ml-1m");
    let ml = MovieLens::load_1m(&dir).unwrap();
    assert_eq!(ml.ratings().len(), 1_000_209);
    assert_eq!(ml.users().len(), 6_040);
    assert_eq!(ml.movies().len(), 3_883);
    let r0 = ml.ratings()[0];
    assert_eq!(
        (r0.user, r0.item, r0.rating, r0.timestamp),
        (1, 1193, 5, 978300760)
    );
    let users: HashSet<u32> = ml.ratings().iter().map(|r| r.user).collect();
    let items: HashSet<u32> = ml.ratings().iter().map(|r| r.item).collect();
    assert_eq!(users.len(), 6_040);
    assert_eq!(items.len(), 3_706);

    // Chronological sequences with the (timestamp, file position) tie-break.
    let (vocab, seqs) = ml.pretraining(1);
    assert_eq!(vocab.num_items(), 3_706);
    assert_eq!(vocab.len(), 3_710);
    let stats = SequenceStats::compute(&seqs);
    assert_eq!(
        (stats.users, stats.items, stats.interactions),
        (6_040, 3_706, 1_000_209)
    );
    assert_eq!((stats.min_len, stats.max_len), (20, 2_314));
    let mut by_user: std::collections::HashMap<u32, Vec<(u64, usize, u32)>> = Default::default();
    for (pos, r) in ml.ratings().iter().enumerate() {
        by_user
            .entry(r.user)
            .or_default()
            .push((r.timestamp, pos, r.item));
    }
    for s in seqs.iter().step_by(97) {
        let mut ev = by_user[&s.user.parse::<u32>().unwrap()].clone();
        ev.sort_unstable();
        let expected: Vec<u32> = ev
            .iter()
            .map(|e| vocab.get(&e.2.to_string()).unwrap())
            .collect();
        assert_eq!(s.items, expected, "user {}", s.user);
    }
    // User 1: 3186 at 978300019, then 1270, 1721, 1022 all at 978300055, in file order.
    let first: Vec<&str> = seqs[0].items[..4]
        .iter()
        .map(|&i| vocab.external(i).unwrap())
        .collect();
    assert_eq!(first, ["3186", "1270", "1721", "1022"]);

    // Leave-one-out.
    let loo = leave_one_out(&seqs);
    assert_eq!(
        (loo.train.len(), loo.valid.len(), loo.test.len()),
        (6_040, 6_040, 6_040)
    );
    let train_items: usize = loo.train.iter().map(|s| s.items.len()).sum();
    assert_eq!(train_items + 2 * 6_040, 1_000_209);

    // Vocabulary round trip.
    let path =
        std::env::temp_dir().join(format!("peterrec-ml1m-vocab-{}.json", std::process::id()));
    vocab.save_json(&path).unwrap();
    let loaded = Vocab::load_json(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(loaded.fingerprint(), vocab.fingerprint());
    assert_eq!(loaded, vocab);

    // Profile tasks: 2 / 7 / 21 classes, 70/3/27 user split.
    let cfg = ProfileTaskConfig::default();
    for (attr, classes) in [
        (ProfileAttribute::Gender, 2),
        (ProfileAttribute::Age, 7),
        (ProfileAttribute::Occupation, 21),
    ] {
        let (task, unseen) = profile_task(&ml, attr, &vocab, &cfg).unwrap();
        assert_eq!(unseen, 0);
        assert_eq!(task.num_outputs(), classes);
        assert_eq!(distinct_labels(&task), classes, "{attr:?}");
        assert_eq!(
            (task.train.len(), task.valid.len(), task.test.len()),
            (4_228, 181, 1_631)
        );
        task.validate().unwrap();
        let all = task
            .label_counts(Part::Train)
            .iter()
            .zip(task.label_counts(Part::Valid))
            .zip(task.label_counts(Part::Test))
            .map(|((a, b), c)| a + b + c)
            .max()
            .unwrap();
        let overall = all as f64 / 6_040.0;
        let expected = match attr {
            ProfileAttribute::Gender => 0.717,
            ProfileAttribute::Age => 0.347,
            ProfileAttribute::Occupation => 0.126,
        };
        assert!(
            (overall - expected).abs() < 0.001,
            "{attr:?}: majority share {overall}"
        );
    }

    // Cold start: source-only pretraining, target items never in the vocabulary, user-disjoint.
    let cs = cold_start_task(&ml, &ColdStartConfig::default()).unwrap();
    let movies = ml.movie_index();
    let cfg = ColdStartConfig::default();
    for ext in cs.vocab.items() {
        let m = movies[&ext.parse::<u32>().unwrap()];
        assert!(
            !is_target(m, &cfg.target_genres),
            "{} is a target movie",
            m.title
        );
    }
    let TaskKind::TargetItems { num_targets, .. } = cs.task.kind else {
        panic!("target items")
    };
    assert_eq!(num_targets, 271);
    assert_eq!(cs.task.num_examples(), 81_898);
    assert_eq!(cs.pretrain.len(), 6_038);
    let tr = cs.task.users(Part::Train);
    let te = cs.task.users(Part::Test);
    assert_eq!(
        tr.len() + cs.task.users(Part::Valid).len() + te.len(),
        5_413
    );
    assert!(tr.is_disjoint(&te));
    assert!(cs.task.users(Part::Valid).is_disjoint(&tr));
}

#[test]
fn ml100k_figures_and_profile_classes() {
    let dir = data_dir().join("ml-100k");
    let ml = MovieLens::load_100k(&dir).unwrap();
    assert_eq!(ml.variant(), Variant::Ml100k);
    assert_eq!(ml.ratings().len(), 100_000);
    assert_eq!(ml.users().len(), 943);
    assert_eq!(ml.movies().len(), 1_682);
    let users: HashSet<u32> = ml.ratings().iter().map(|r| r.user).collect();
    let items: HashSet<u32> = ml.ratings().iter().map(|r| r.item).collect();
    assert_eq!((users.len(), items.len()), (943, 1_682));
    for (attr, classes) in [
        (ProfileAttribute::Gender, 2),
        (ProfileAttribute::Age, 7),
        (ProfileAttribute::Occupation, 21),
    ] {
        let b = profile_bundle(&ml, attr, &ProfileTaskConfig::default()).unwrap();
        assert_eq!(b.task.num_outputs(), classes);
        assert_eq!(distinct_labels(&b.task), classes, "{attr:?}");
        assert_eq!(b.task.num_examples(), 943);
        assert_eq!(b.vocab.num_items(), 1_682);
    }
    // u.data directly, streaming.
    assert_eq!(
        read_ml100k_ratings(dir.join("u.data")).unwrap().len(),
        100_000
    );
}

#[test]
fn peterrec_demo_counts() {
    let dir = data_dir().join("peterrec-demo");
    let pre = read_pretrain_file(dir.join(DEMO_PRETRAIN_FILE)).unwrap();
    assert_eq!(pre.len(), 30);
    assert!(pre.iter().all(|s| !s.items.iter().any(|t| t == "0")));
    let ft = read_finetune_file(dir.join(DEMO_FINETUNE_FILE)).unwrap();
    assert_eq!(ft.len(), 30);
    assert_eq!(ft.iter().map(|l| l.targets.len()).sum::<usize>(), 47);
    let b = peterrec_demo(&dir, &DemoTaskConfig::default()).unwrap();
    assert_eq!(b.pretrain.len(), 30);
    assert_eq!(b.task.num_examples(), 47);
    assert_eq!(b.unseen, 0);
    assert_eq!(b.pretrain.iter().map(|s| s.items.len()).sum::<usize>(), 247);
    assert_eq!(b.task.users(Part::Train).len(), 21);
    b.task.validate().unwrap();
}

#[test]
fn amazon_sequence_files() {
    let dir = data_dir().join("amazon");
    for (file, users, interactions) in [
        ("Beauty.txt", 22_363, 198_502),
        ("Sports_and_Outdoors.txt", 35_598, 296_337),
        ("Toys_and_Games.txt", 19_412, 167_597),
        ("Yelp.txt", 30_431, 316_354),
        ("LastFM.txt", 1_090, 52_551),
    ] {
        let raw = read_sequence_file(dir.join(file)).unwrap();
        let (vocab, seqs) =
            build_vocab_and_encode(raw.iter().map(|s| (s.user.clone(), s.items.as_slice())));
        let st = SequenceStats::compute(&seqs);
        assert_eq!((st.users, st.interactions), (users, interactions), "{file}");
        assert_eq!(st.items, vocab.num_items());
    }
}
