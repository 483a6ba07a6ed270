//! Task builders on small hand-made data sets written to a temporary directory.

use std::collections::HashSet;
use std::path::PathBuf;

use peterrec_data::movielens::{MovieLens, ProfileAttribute};
use peterrec_data::split::{Part, SplitConfig};
use peterrec_data::task::cold_start::{cold_start_task, ColdStartConfig};
use peterrec_data::task::demo::{peterrec_task, DemoTaskConfig};
use peterrec_data::task::profile::{profile_bundle, profile_task, ProfileTaskConfig};
use peterrec_data::{DataError, TaskKind, UnseenPolicy, Vocab, UNK};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("peterrec-data-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// 20 users; movies 1..=6 are Drama (source), 7..=8 Animation (target). User u rates movies
/// 1..=6 at times 100, 100, 50, … (ties broken by file order) and, if u is even, movie 7 and 8.
fn tiny_ml1m(dir: &TempDir) {
    let mut ratings = String::new();
    let mut users = String::new();
    for u in 1..=20u32 {
        for (m, t) in [(1, 100), (2, 100), (3, 50), (4, 200), (5, 100), (6, 300)] {
            ratings += &format!("{u}::{m}::4::{t}\n");
        }
        if u.is_multiple_of(2) {
            ratings += &format!("{u}::8::5::150\n{u}::7::5::150\n{u}::8::3::400\n");
        }
        let g = if u.is_multiple_of(3) { "F" } else { "M" };
        users += &format!("{u}::{g}::25::{}::12345\n", u % 21);
    }
    let mut movies = String::new();
    for m in 1..=6 {
        movies += &format!("{m}::Movie {m} (1990)::Drama\n");
    }
    movies += "7::Cartoon (1995)::Animation|Comedy\n8::Kids (1996)::Children's\n9::Never rated (1997)::Drama\n";
    dir.write("ratings.dat", &ratings);
    dir.write("users.dat", &users);
    dir.write("movies.dat", &movies);
}

#[test]
fn histories_are_chronological_with_file_order_ties() {
    let dir = TempDir::new("hist");
    tiny_ml1m(&dir);
    let ml = MovieLens::load_1m(&dir.0).unwrap();
    let h = ml.histories();
    assert_eq!(h.len(), 20);
    assert_eq!(h[0], (1, vec![3, 1, 2, 5, 4, 6]));
    assert_eq!(h[1], (2, vec![3, 1, 2, 5, 8, 7, 4, 6, 8]));
    let (vocab, seqs) = ml.pretraining(1);
    assert_eq!(vocab.num_items(), 8);
    assert_eq!(vocab.external(seqs[0].items[0]), Some("3"));
}

#[test]
fn profile_tasks() {
    let dir = TempDir::new("profile");
    tiny_ml1m(&dir);
    let ml = MovieLens::load_1m(&dir.0).unwrap();
    let cfg = ProfileTaskConfig {
        split: SplitConfig::fractions(0.5, 0.1, 1),
        ..Default::default()
    };
    let b = profile_bundle(&ml, ProfileAttribute::Gender, &cfg).unwrap();
    assert_eq!(b.task.name, "ml-1m-gender");
    assert_eq!(b.task.num_outputs(), 2);
    assert_eq!(b.unseen, 0);
    assert_eq!(
        (b.task.train.len(), b.task.valid.len(), b.task.test.len()),
        (10, 2, 8)
    );
    for part in [Part::Train, Part::Valid, Part::Test] {
        for e in b.task.part(part) {
            let u: u32 = e.user.parse().unwrap();
            assert_eq!(e.label, u32::from(!u.is_multiple_of(3)), "user {u}");
            let ext: Vec<&str> = e
                .seq
                .iter()
                .map(|&i| b.vocab.external(i).unwrap())
                .collect();
            let expected: Vec<String> = ml.histories()[(u - 1) as usize]
                .1
                .iter()
                .map(u32::to_string)
                .collect();
            assert_eq!(ext, expected);
        }
    }
    let occ = profile_bundle(&ml, ProfileAttribute::Occupation, &cfg).unwrap();
    assert_eq!(occ.task.num_outputs(), 21);
    let age = profile_bundle(&ml, ProfileAttribute::Age, &cfg).unwrap();
    assert_eq!(age.task.label_counts(Part::Train)[2], age.task.train.len());

    // A vocabulary that lacks movies 7 and 8: the unseen policy decides, with a count.
    let small = Vocab::from_sequences([["1", "2", "3", "4", "5", "6"]]);
    let (t, unseen) = profile_task(&ml, ProfileAttribute::Gender, &small, &cfg).unwrap();
    assert_eq!(unseen, 30);
    let even = t
        .part(Part::Train)
        .iter()
        .chain(&t.test)
        .chain(&t.valid)
        .find(|e| e.user == "2")
        .unwrap();
    assert_eq!(even.seq.iter().filter(|&&i| i == UNK).count(), 3);
    let drop = ProfileTaskConfig {
        policy: UnseenPolicy::Drop,
        ..cfg
    };
    let (t, unseen) = profile_task(&ml, ProfileAttribute::Gender, &small, &drop).unwrap();
    assert_eq!(unseen, 30);
    assert!(t
        .train
        .iter()
        .all(|e| e.seq.len() == 6 && !e.seq.contains(&UNK)));
}

#[test]
fn cold_start_keeps_domains_and_users_apart() {
    let dir = TempDir::new("cold");
    tiny_ml1m(&dir);
    let ml = MovieLens::load_1m(&dir.0).unwrap();
    let cfg = ColdStartConfig {
        split: SplitConfig::fractions(0.6, 0.1, 3),
        ..Default::default()
    };
    let b = cold_start_task(&ml, &cfg).unwrap();
    // Pretraining holds source items only.
    assert_eq!(b.vocab.num_items(), 6);
    assert!(b.vocab.get("7").is_none() && b.vocab.get("8").is_none());
    assert_eq!(b.pretrain.len(), 20);
    let TaskKind::TargetItems {
        num_targets,
        target_names,
    } = &b.task.kind
    else {
        panic!("cold start is a target-item task")
    };
    assert_eq!(
        (*num_targets, target_names.as_slice()),
        (2, &["7".to_string(), "8".to_string()][..])
    );
    // One example per distinct target item rated: 10 even users × 2.
    assert_eq!(b.task.num_examples(), 20);
    let tr = b.task.users(Part::Train);
    let te = b.task.users(Part::Test);
    let va = b.task.users(Part::Valid);
    assert!(tr.is_disjoint(&te) && tr.is_disjoint(&va) && va.is_disjoint(&te));
    for e in b.task.train.iter().chain(&b.task.valid).chain(&b.task.test) {
        assert_eq!(e.seq.len(), 6, "whole source sequence");
        assert!(e.seq.iter().all(|&i| b.vocab.is_item(i)));
    }
    // Order of first rating: movie 8 (file order within the tie at t=150) then 7.
    let u2: Vec<u32> = b
        .task
        .train
        .iter()
        .chain(&b.task.valid)
        .chain(&b.task.test)
        .filter(|e| e.user == "2")
        .map(|e| e.label)
        .collect();
    assert_eq!(u2, vec![1, 0]);

    let typo = ColdStartConfig {
        target_genres: vec!["Childrens".into()],
        ..Default::default()
    };
    assert!(matches!(
        cold_start_task(&ml, &typo),
        Err(DataError::InvalidConfig(_))
    ));
}

#[test]
fn inconsistent_files_are_reported() {
    let dir = TempDir::new("inconsistent");
    tiny_ml1m(&dir);
    dir.write("users.dat", "1::F::1::10::48067\n");
    let err = MovieLens::load_1m(&dir.0).unwrap_err();
    assert!(matches!(err, DataError::Inconsistent(_)), "{err}");
    assert!(
        err.to_string()
            .contains("user 2 has ratings but no profile"),
        "{err}"
    );
    tiny_ml1m(&dir);
    dir.write("movies.dat", "1::A (1990)::Drama\n");
    assert!(MovieLens::load_1m(&dir.0).is_err());
}

#[test]
fn peterrec_files_task() {
    let dir = TempDir::new("demo");
    let pre = dir.write("pre.csv", "0,0,11,12,13\n14,15,11,12,16\n0,17,18,19,20\n");
    let ft = dir.write("ft.csv", "0,0,11,12,13,,900,901\n14,15,11,12,99,,901\n");
    let cfg = DemoTaskConfig {
        split: SplitConfig::fractions(0.5, 0.0, 0),
        policy: UnseenPolicy::Unk,
    };
    let b = peterrec_task("mini", &pre, &ft, &cfg).unwrap();
    assert_eq!(b.pretrain.len(), 3);
    assert_eq!(b.pretrain[0].items.len(), 3, "padding removed");
    assert_eq!(b.vocab.num_items(), 10);
    assert_eq!(b.task.num_examples(), 3);
    assert_eq!(b.unseen, 1, "token 99 is not in the pretraining data");
    assert_eq!(b.task.num_outputs(), 2);
    let all: Vec<_> = b.task.train.iter().chain(&b.task.test).collect();
    let line2 = all.iter().find(|e| e.user == "2").unwrap();
    assert_eq!(*line2.seq.last().unwrap(), UNK);
    let users: HashSet<_> = all.iter().map(|e| e.user.as_str()).collect();
    assert_eq!(users.len(), 2);
}
