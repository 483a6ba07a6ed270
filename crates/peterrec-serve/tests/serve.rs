//! One backbone, many tasks: batched answers equal each task's own model, shared work is shared,
//! task files reload onto the server, and bad requests are typed errors.

use burn::backend::NdArray;
use burn::tensor::{Int, Tensor, TensorData};
use peterrec_data::vocab::CLS;
use peterrec_model::{
    save_backbone, FineTuneConfig, FineTuneModel, HeadKind, Insertion, NextItNet, NextItNetConfig,
    PatchInit, Strategy,
};
use peterrec_serve::{Answer, Query, Request, ServeError, TaskServer};
use peterrec_train::eval::left_padded;

type B = NdArray<f32>;

const MAX_LEN: usize = 12;

fn config() -> NextItNetConfig {
    config_with(true)
}

/// The test backbone, causal or centred.
fn config_with(causal: bool) -> NextItNetConfig {
    NextItNetConfig::new(40, 8, vec![1, 2, 1])
        .with_seed(3)
        .with_init_std(0.2)
        .with_causal(causal)
}

/// A task whose trained parameters are far from their init: the head (and patches) random, and
/// for the strategies that train blocks, those blocks perturbed.
fn task(
    backbone: &NextItNet<B>,
    strategy: Strategy,
    head: HeadKind,
    seed: u64,
) -> FineTuneModel<B> {
    let device = Default::default();
    let cfg = config_with(backbone.causal());
    let mut m = FineTuneConfig::new(strategy, head)
        .with_patch_init(PatchInit::TruncatedNormal { std: 0.3 })
        .with_seed(seed)
        .init(backbone.clone(), &device)
        .unwrap();
    // Stand-in for training: blocks a strategy trains get other weights.
    let other = cfg.clone().with_seed(seed + 100).init::<B>(&device);
    let n = m.backbone.blocks.len();
    match strategy {
        Strategy::FineLast(k) => {
            for i in n - k..n {
                m.backbone.blocks[i] = other.blocks[i].clone();
            }
        }
        Strategy::FineAll => m.backbone = other,
        _ => {}
    }
    m
}

fn histories() -> Vec<Vec<u32>> {
    vec![
        vec![5, 6, 7],
        vec![9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23],
        vec![],
        vec![30, 31, 4, 4, 39],
    ]
}

/// What the task's own model gives for one history, built as in fine-tuning (`[CLS]` at both ends
/// when centred), from the full pass over every position.
fn direct(m: &FineTuneModel<B>, history: &[u32]) -> Vec<f32> {
    let mut row = left_padded(history, MAX_LEN, &[CLS]);
    if !m.backbone.causal() {
        row.insert(0, CLS as i64);
    }
    let length = row.len();
    let t: Tensor<B, 2, Int> =
        Tensor::from_data(TensorData::new(row, [1, length]), &Default::default());
    m.head
        .forward(m.pool_cls(m.backbone.forward(t)))
        .into_data()
        .to_vec()
        .unwrap()
}

fn softmax(s: &[f32]) -> Vec<f32> {
    let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = s.iter().map(|x| (x - max).exp()).collect();
    let z: f32 = e.iter().sum();
    e.iter().map(|x| x / z).collect()
}

fn server_with_tasks(causal: bool) -> (TaskServer<B>, Vec<(&'static str, FineTuneModel<B>)>) {
    let device = Default::default();
    let backbone = config_with(causal).init::<B>(&device);
    let cls2 = HeadKind::Classifier { outputs: 2 };
    let items = HeadKind::TargetItems { outputs: 25 };
    let tasks = vec![
        (
            "gender-peterrec",
            task(
                &backbone,
                Strategy::PeterRec {
                    insertion: Insertion::Serial,
                },
                cls2,
                1,
            ),
        ),
        (
            "age-parallel",
            task(
                &backbone,
                Strategy::PeterRec {
                    insertion: Insertion::Parallel,
                },
                HeadKind::Classifier { outputs: 7 },
                2,
            ),
        ),
        ("gender-cls", task(&backbone, Strategy::FineCls, cls2, 3)),
        ("items-cls", task(&backbone, Strategy::FineCls, items, 4)),
        (
            "items-last1",
            task(&backbone, Strategy::FineLast(1), items, 5),
        ),
        (
            "items-last2",
            task(&backbone, Strategy::FineLast(2), items, 6),
        ),
        ("items-all", task(&backbone, Strategy::FineAll, items, 7)),
    ];
    let mut server = TaskServer::new(backbone, MAX_LEN, device).unwrap();
    for (name, m) in &tasks {
        server.add_task(*name, m.clone()).unwrap();
    }
    (server, tasks)
}

fn requests(tasks: &[(&'static str, FineTuneModel<B>)]) -> Vec<Request> {
    let mut out = Vec::new();
    for (u, h) in histories().into_iter().enumerate() {
        for (t, (name, m)) in tasks.iter().enumerate() {
            // Interleave tasks and users so that grouping has to put rows back in order.
            if (u + t) % 3 == 2 {
                continue;
            }
            let query = match m.head.kind() {
                HeadKind::Classifier { .. } => Query::Classify,
                HeadKind::TargetItems { .. } => Query::Recommend { k: 5 },
            };
            out.push(Request {
                task: name.to_string(),
                history: h.clone(),
                query,
            });
        }
    }
    out
}

fn assert_matches_direct(answer: &Answer, m: &FineTuneModel<B>, r: &Request) {
    let want = direct(m, &r.history);
    match (answer, r.query) {
        (Answer::Classes(p), Query::Classify) => {
            let q = softmax(&want);
            assert_eq!(p.len(), q.len());
            for (a, b) in p.iter().zip(&q) {
                assert!((a - b).abs() < 1e-5, "{}: {p:?} vs {q:?}", r.task);
            }
        }
        (Answer::Items(items), Query::Recommend { k }) => {
            assert_eq!(items.len(), k);
            let mut order: Vec<usize> = (0..want.len()).collect();
            order.sort_by(|&a, &b| want[b].total_cmp(&want[a]).then(a.cmp(&b)));
            for (rank, &(i, s)) in items.iter().enumerate() {
                assert!(
                    (s - want[i as usize]).abs() < 1e-5,
                    "{}: score of {i}",
                    r.task
                );
                assert!(
                    (want[order[rank]] - s).abs() < 1e-5,
                    "{}: rank {rank} is {i} ({s}), expected {} ({})",
                    r.task,
                    order[rank],
                    want[order[rank]]
                );
            }
            for w in items.windows(2) {
                assert!(w[0].1 >= w[1].1);
            }
        }
        other => panic!("answer of the wrong kind: {other:?}"),
    }
}

/// Causal and centred backbones (the server computes only the positions `[CLS]` depends on; the
/// task's own answer here comes from the full pass).
#[test]
fn a_mixed_batch_equals_each_tasks_own_model_and_shares_the_frozen_blocks() {
    for causal in [true, false] {
        mixed_batch(causal);
    }
}

fn mixed_batch(causal: bool) {
    let (server, tasks) = server_with_tasks(causal);
    let reqs = requests(&tasks);
    let (answers, stats) = server.answer_with_stats(&reqs).unwrap();
    assert_eq!(answers.len(), reqs.len());
    for (a, r) in answers.iter().zip(&reqs) {
        let m = &tasks.iter().find(|(n, _)| *n == r.task).unwrap().1;
        assert_matches_direct(a, m, r);
    }
    // FineCLS (2 tasks) and FineLast (2 tasks) rows share one pass through the first blocks,
    // as deep as FineCLS needs (all 3); every task then runs once on its own.
    let shared_tasks = ["gender-cls", "items-cls", "items-last1", "items-last2"];
    let shared_rows = reqs
        .iter()
        .filter(|r| shared_tasks.contains(&r.task.as_str()))
        .count();
    assert_eq!(stats.shared_rows, shared_rows);
    assert_eq!(stats.shared_blocks, 3);
    assert_eq!(stats.task_runs, tasks.len());
    // One request at a time gives the same answers as the batch.
    for (a, r) in answers.iter().zip(&reqs) {
        let single = server.answer(std::slice::from_ref(r)).unwrap();
        match (&single[0], a) {
            (Answer::Classes(x), Answer::Classes(y)) => {
                for (p, q) in x.iter().zip(y) {
                    assert!((p - q).abs() < 1e-5);
                }
            }
            (Answer::Items(x), Answer::Items(y)) => {
                assert_eq!(
                    x.iter().map(|p| p.0).collect::<Vec<_>>(),
                    y.iter().map(|p| p.0).collect::<Vec<_>>()
                );
            }
            _ => panic!("kinds differ"),
        }
    }
}

#[test]
fn task_files_reload_onto_a_server_opened_from_the_backbone_file() {
    let device = Default::default();
    let dir = std::env::temp_dir().join(format!("peterrec-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (server, tasks) = server_with_tasks(true);
    let backbone_path = dir.join("backbone.safetensors");
    save_backbone(server.backbone(), &backbone_path).unwrap();
    let mut reloaded = TaskServer::<B>::open(&backbone_path, MAX_LEN, device).unwrap();
    for (name, m) in &tasks {
        let p = dir.join(format!("{name}.safetensors"));
        m.save_task(&p).unwrap();
        reloaded.load_task(*name, &p).unwrap();
    }
    assert_eq!(reloaded.tasks().count(), tasks.len());
    let h = [5u32, 9, 13, 17];
    for (name, m) in &tasks {
        match m.head.kind() {
            HeadKind::Classifier { .. } => {
                let p = reloaded.classify(&h, name).unwrap();
                let q = softmax(&direct(m, &h));
                for (a, b) in p.iter().zip(&q) {
                    assert!((a - b).abs() < 1e-5, "{name}");
                }
                assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
            HeadKind::TargetItems { outputs } => {
                let all = reloaded.recommend(&h, name, outputs + 10).unwrap();
                assert_eq!(all.len(), outputs, "k is capped at the number of targets");
                let want = direct(m, &h);
                for (i, s) in all {
                    assert!((s - want[i as usize]).abs() < 1e-5, "{name}: {i}");
                }
            }
        }
    }
    // A task trained on another backbone does not load.
    let other = config().with_seed(99).init::<B>(&Default::default());
    let foreign = task(
        &other,
        Strategy::FineCls,
        HeadKind::Classifier { outputs: 2 },
        1,
    );
    let p = dir.join("foreign.safetensors");
    foreign.save_task(&p).unwrap();
    assert!(matches!(
        reloaded.load_task("foreign", &p),
        Err(ServeError::Model(
            peterrec_model::ModelError::BackboneMismatch { .. }
        ))
    ));
    assert!(matches!(
        reloaded.add_task("foreign", foreign),
        Err(ServeError::Config(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_requests_are_typed_errors() {
    let (server, _) = server_with_tasks(true);
    let cases = [
        ("nope", vec![5], Query::Classify),
        ("gender-cls", vec![5], Query::Recommend { k: 3 }),
        ("items-cls", vec![5], Query::Classify),
        ("items-cls", vec![5], Query::Recommend { k: 0 }),
        ("gender-cls", vec![5, 40], Query::Classify),
        ("gender-peterrec", vec![u32::MAX], Query::Classify),
    ];
    for (task, history, query) in cases {
        let r = Request {
            task: task.into(),
            history,
            query,
        };
        match server.answer(std::slice::from_ref(&r)) {
            Err(ServeError::Request(m)) => assert!(m.starts_with("request 0"), "{m}"),
            other => panic!("{r:?}: {other:?}"),
        }
    }
}
