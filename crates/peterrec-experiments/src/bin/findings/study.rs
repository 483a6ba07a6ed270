//! The runs: backbones, the tasks of every seed, the label-budget grid and the convergence runs.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use peterrec_data::movielens::MovieLens;
use peterrec_data::split::{leave_one_out, SplitConfig};
use peterrec_data::task::cold_start::{cold_start_task, ColdStartConfig};
use peterrec_data::task::profile::{profile_task, ProfileTaskConfig};
use peterrec_data::{Task, TaskKind, UserSequence, Vocab};
use peterrec_experiments::baselines::{cap_per_user, popularity};
use peterrec_experiments::budget::keep_share_of_users;
use peterrec_experiments::tasks::fine_tune_strategy;
use peterrec_model::{load_pretrained, save_pretrained, NextItNetConfig, NextItNetLM, Strategy};
use peterrec_train::progress::progress_visible;
use peterrec_train::{
    evaluate_next_item, pretrain, FineTuneReport, FineTuneTrainConfig, PretrainConfig,
    RankingOptions,
};
use serde::Serialize;

use crate::{AnyError, Args, TaskName};

/// A backbone's next-item test figures (leave-last-out, full ranking, history excluded).
#[derive(Debug, Clone, Serialize)]
pub struct BackboneRow {
    pub name: String,
    pub loaded: bool,
    pub channels: usize,
    pub hr_at_10: f64,
    pub ndcg_at_10: f64,
    pub pretrain_seconds: f64,
}

/// One fine-tuning run of the label-budget study.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetRun {
    pub task: String,
    pub strategy: String,
    pub budget: f64,
    pub seed: u64,
    pub train_users: usize,
    pub train_examples: usize,
    /// Test accuracy (profiles) or NDCG@10 (cold start).
    pub value: f64,
    pub metric: String,
    pub valid: f64,
    pub best_epoch: usize,
    pub epochs: usize,
    pub trainable_params: usize,
    pub seconds: f64,
}

/// The model-free baseline of one task, seed and budget, from the same training users.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineRow {
    pub task: String,
    pub budget: f64,
    pub seed: u64,
    pub train_users: usize,
    /// `majority` (test accuracy of the most frequent training class) or `popularity` (test
    /// NDCG@10 of the targets ranked by training count).
    pub baseline: String,
    pub value: f64,
}

/// One convergence run: every epoch's training loss and validation metric.
#[derive(Debug, Clone, Serialize)]
pub struct CurveRun {
    pub task: String,
    pub strategy: String,
    pub budget: f64,
    pub seed: u64,
    pub train_users: usize,
    pub metric: String,
    /// `(epoch, training loss, validation metric)`.
    pub history: Vec<(usize, f64, f64)>,
    pub best_epoch: usize,
    pub test_at_best: f64,
    pub seconds: f64,
}

/// Everything the study measured.
#[derive(Debug, Default)]
pub struct Outcome {
    pub backbones: Vec<BackboneRow>,
    pub budget: Vec<BudgetRun>,
    pub baselines: Vec<BaselineRow>,
    pub curves: Vec<CurveRun>,
}

/// Loads `<backbone_dir>/<name>.safetensors` or pretrains with the recipe (and saves it there).
fn backbone<B: AutodiffBackend>(
    name: &str,
    vocab: &Vocab,
    sequences: &[UserSequence],
    args: &Args,
    device: &B::Device,
) -> Result<(NextItNetLM<B>, BackboneRow), AnyError> {
    let split = leave_one_out(sequences);
    let cached = args
        .backbone_dir
        .as_ref()
        .map(|d| d.join(format!("{name}.safetensors")));
    let recipe = PretrainConfig::new();
    let (lm, loaded, seconds) = match cached.as_ref().filter(|p| p.is_file()) {
        Some(path) => {
            let lm = load_pretrained::<B>(path, device)?;
            let tokens = lm.backbone.config().num_tokens;
            if tokens != vocab.len() {
                return Err(format!(
                    "{}: {tokens} tokens, but the {name} vocabulary has {}",
                    path.display(),
                    vocab.len()
                )
                .into());
            }
            println!("== {name} backbone loaded from {}", path.display());
            (lm, true, 0.0)
        }
        None => {
            let config = NextItNetConfig::new(vocab.len(), args.channels, vec![1, 4, 1, 4])
                .with_seed(args.run.seed);
            println!(
                "== pretraining the {name} backbone: {} users, {} items, C = {}, {} epochs",
                split.train.len(),
                vocab.num_items(),
                args.channels,
                args.pretrain_epochs
            );
            let cfg = recipe.clone().with_train(
                recipe
                    .train
                    .clone()
                    .with_epochs(args.pretrain_epochs)
                    .with_seed(args.run.seed)
                    .with_quiet(args.run.quiet),
            );
            let (lm, report) = pretrain(
                cfg.init_lm::<B>(&config, device)?,
                &split.train,
                &split.valid,
                &cfg,
                device,
            )?;
            if let Some(path) = &cached {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                save_pretrained(&lm.valid(), path)?;
            }
            (lm, false, report.seconds)
        }
    };
    let test = evaluate_next_item(
        &lm.valid(),
        &split.test,
        recipe.train.max_len,
        &RankingOptions::new().with_sampled(false),
        device,
    );
    let row = BackboneRow {
        name: name.into(),
        loaded,
        channels: lm.backbone.config().channels,
        hr_at_10: test.full.hr_at(10).unwrap_or(0.0),
        ndcg_at_10: test.full.ndcg_at(10).unwrap_or(0.0),
        pretrain_seconds: seconds,
    };
    println!(
        "   next-item test (full ranking): HR@10 {:.4}, NDCG@10 {:.4}",
        row.hr_at_10, row.ndcg_at_10
    );
    Ok((lm, row))
}

/// The task of `name` with the user split of `seed` (70/10/20).
fn task_for(ml: &MovieLens, name: TaskName, vocab: &Vocab, seed: u64) -> Result<Task, AnyError> {
    let split = SplitConfig::fractions(0.7, 0.1, seed);
    let Some(attribute) = name.attribute() else {
        let cfg = ColdStartConfig::new().with_split(split);
        return Ok(cold_start_task(ml, &cfg)?.task);
    };
    let cfg = ProfileTaskConfig::new().with_split(split);
    Ok(profile_task(ml, attribute, vocab, &cfg)?.0)
}

/// `task` with the training examples of `budget` of its training users; cold start also keeps
/// at most `--cold-start-per-user` training and validation examples per user.
fn at_budget(task: &Task, budget: f64, seed: u64, args: &Args) -> (Task, usize) {
    let mut t = task.clone();
    t.train = keep_share_of_users(&task.train, budget, seed);
    if matches!(task.kind, TaskKind::TargetItems { .. }) {
        cap_per_user(&mut t.train, args.cold_start_per_user, seed);
        cap_per_user(&mut t.valid, args.cold_start_per_user, seed + 1);
    }
    let users = t
        .train
        .iter()
        .map(|e| e.user.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    (t, users)
}

/// One fine-tuning run from a clone of `lm`'s backbone.
fn fine_tune<B: AutodiffBackend>(
    lm: &NextItNetLM<B>,
    task: &Task,
    strategy: Strategy,
    seed: u64,
    epochs: usize,
    early_stopping: bool,
    device: &B::Device,
) -> Result<(FineTuneReport, usize, f64), AnyError> {
    let start = Instant::now();
    let recipe = FineTuneTrainConfig::new();
    let patience = if early_stopping {
        recipe.train.patience
    } else {
        epochs
    };
    let cfg = recipe.clone().with_train(
        recipe
            .train
            .clone()
            .with_epochs(epochs)
            .with_patience(patience)
            .with_seed(seed)
            .with_quiet(true),
    );
    let (_, report, params) = fine_tune_strategy(lm, task, strategy, &cfg, device)?;
    Ok((report, params.trainable, start.elapsed().as_secs_f64()))
}

/// Runs the study and writes every run's JSON line to `--out-dir` as it ends.
pub fn run<B: AutodiffBackend>(
    args: &Args,
    ml: &MovieLens,
    device: B::Device,
) -> Result<Outcome, AnyError> {
    let mut out = Outcome::default();
    let needs = |pred: fn(&TaskName) -> bool| {
        args.tasks.iter().any(pred) || args.curve_tasks.iter().any(pred)
    };
    let mut profile = None;
    if needs(|t| *t != TaskName::ColdStart) {
        let (vocab, sequences) = ml.pretraining(1);
        let (lm, row) = backbone::<B>("all-items", &vocab, &sequences, args, &device)?;
        out.backbones.push(row);
        profile = Some((vocab, lm));
    }
    let mut cold = None;
    if needs(|t| *t == TaskName::ColdStart) {
        let bundle = cold_start_task(ml, &ColdStartConfig::new())?;
        let (lm, row) = backbone::<B>(
            "source-domain",
            &bundle.vocab,
            &bundle.pretrain,
            args,
            &device,
        )?;
        out.backbones.push(row);
        cold = Some((bundle.vocab, lm));
    }
    let group = |t: TaskName| {
        if t == TaskName::ColdStart {
            cold.as_ref().expect("pretrained above")
        } else {
            profile.as_ref().expect("pretrained above")
        }
    };

    let budget_runs = args.tasks.len() * args.seeds.len() * args.budgets.len();
    let curve_runs = args.curve_tasks.len() * args.curve_seeds.len() * args.curve_budgets.len();
    let total = ((budget_runs + curve_runs) * args.strategies.len()) as u64;
    let target = if progress_visible(args.run.quiet) {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    bar.set_style(
        ProgressStyle::with_template(
            "runs [{bar:30}] {pos}/{len} · {msg} · {elapsed_precise}<{eta_precise}",
        )?
        .progress_chars("=> "),
    );
    let mut logs = crate::report::Logs::create(&args.out_dir)?;
    // A hidden bar prints nothing, so the per-run lines then go to stdout directly.
    let say = |line: String| {
        if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(line);
        }
    };

    for &name in &args.tasks {
        let (vocab, lm) = group(name);
        for &seed in &args.seeds {
            let task = task_for(ml, name, vocab, seed)?;
            for &budget in &args.budgets {
                let (t, users) = at_budget(&task, budget, seed, args);
                let baseline = match t.kind {
                    TaskKind::Classification { .. } => BaselineRow {
                        task: name.name().into(),
                        budget,
                        seed,
                        train_users: users,
                        baseline: "majority".into(),
                        value: t.majority_class().map_or(0.0, |m| m.test_accuracy),
                    },
                    TaskKind::TargetItems { .. } => BaselineRow {
                        task: name.name().into(),
                        budget,
                        seed,
                        train_users: users,
                        baseline: "popularity".into(),
                        value: popularity(&t).1,
                    },
                };
                logs.baseline(&baseline)?;
                out.baselines.push(baseline);
                for &strategy in &args.strategies {
                    bar.set_message(format!(
                        "{} {:.0}% seed {seed} {strategy}",
                        name.name(),
                        budget * 100.0
                    ));
                    let (report, trainable, seconds) = fine_tune::<B>(
                        lm,
                        &t,
                        strategy,
                        seed,
                        args.finetune_epochs,
                        true,
                        &device,
                    )?;
                    let run = BudgetRun {
                        task: name.name().into(),
                        strategy: strategy.to_string(),
                        budget,
                        seed,
                        train_users: users,
                        train_examples: t.train.len(),
                        value: report.test.headline(),
                        metric: report.test.headline_name().into(),
                        valid: report.valid.headline(),
                        best_epoch: report.best_epoch,
                        epochs: report.epochs,
                        trainable_params: trainable,
                        seconds,
                    };
                    say(format!(
                        "{:<10} {:>5.1}% ({:>4} users) seed {seed} {:<18} test {:.4}, valid {:.4}, epoch {}/{}, {:.1}s",
                        run.task,
                        budget * 100.0,
                        users,
                        run.strategy,
                        run.value,
                        run.valid,
                        run.best_epoch,
                        run.epochs,
                        seconds
                    ));
                    logs.budget(&run)?;
                    out.budget.push(run);
                    bar.inc(1);
                }
            }
        }
    }

    for &name in &args.curve_tasks {
        let (vocab, lm) = group(name);
        for &seed in &args.curve_seeds {
            let task = task_for(ml, name, vocab, seed)?;
            for &budget in &args.curve_budgets {
                let (t, users) = at_budget(&task, budget, seed, args);
                for &strategy in &args.strategies {
                    bar.set_message(format!(
                        "curve {} {:.0}% seed {seed} {strategy}",
                        name.name(),
                        budget * 100.0
                    ));
                    let (report, _, seconds) =
                        fine_tune::<B>(lm, &t, strategy, seed, args.curve_epochs, false, &device)?;
                    let run = CurveRun {
                        task: name.name().into(),
                        strategy: strategy.to_string(),
                        budget,
                        seed,
                        train_users: users,
                        metric: report.test.headline_name().into(),
                        history: report
                            .history
                            .iter()
                            .map(|r| (r.epoch, r.train_loss, r.valid_metric))
                            .collect(),
                        best_epoch: report.best_epoch,
                        test_at_best: report.test.headline(),
                        seconds,
                    };
                    say(format!(
                        "curve {:<10} {:>5.1}% seed {seed} {:<18} best epoch {} of {}, test {:.4}, {:.1}s",
                        run.task,
                        budget * 100.0,
                        run.strategy,
                        run.best_epoch,
                        run.history.len(),
                        run.test_at_best,
                        seconds
                    ));
                    logs.curve(&run)?;
                    out.curves.push(run);
                    bar.inc(1);
                }
            }
        }
    }
    bar.finish_and_clear();
    Ok(out)
}
