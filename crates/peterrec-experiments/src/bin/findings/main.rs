//! The PeterRec paper's findings on MovieLens, as figures: every fine-tuning strategy at label
//! budgets from 1% to 100% of the training users, and convergence curves with early stopping
//! off.
//!
//! ```text
//! # the whole study (docs/results.md records its wall time):
//! cargo run --release -p peterrec-experiments --bin findings -- --path $PETERREC_DATA/ml-1m --out-dir docs/findings
//! # a smoke run on ML-100K (one task, two budgets, one seed, one epoch; what CI runs):
//! cargo run --release -p peterrec-experiments --bin findings -- --path $PETERREC_DATA/ml-100k --out-dir /tmp/f --quick
//! ```
//!
//! - **Backbones.** As `movielens`: the profile tasks fine-tune a backbone pretrained on every
//!   user's sequence, cold start one pretrained on the source-domain sequences. Both are
//!   pretrained with the library's recipe (`PretrainConfig::new`, C = 128), or loaded from
//!   `--backbone-dir` (`all-items.safetensors`, `source-domain.safetensors`, the names the
//!   `movielens` binary saves there), and their next-item test figures are printed.
//! - **Label budget.** For every seed the users are split 70/10/20 once; each budget keeps the
//!   first `ceil(share · n)` of the `n` training users in a seeded order (so the budgets are
//!   nested) and the same validation and test users. Every strategy is fine-tuned with the
//!   library's fine-tuning recipe (`FineTuneTrainConfig::new`), the same at every budget, and
//!   the epoch best on validation is kept. The majority class (profiles) and popularity (cold
//!   start) are computed from the same training users.
//! - **Convergence.** For `--curve-tasks` at `--curve-budgets`, every strategy runs
//!   `--curve-epochs` epochs with early stopping off; the validation metric and the training
//!   loss of every epoch are recorded.
//!
//! Writes to `--out-dir`: `budget.jsonl` (one line per run), `baselines.jsonl`, `curves.jsonl`,
//! `budget-<task>.png`, `curve-<task>-<percent>.png` and `summary.md` (the tables). The last
//! stdout line is one JSON object: the budget table's means and sds, by task, strategy and
//! budget.

mod plots;
mod report;
mod study;

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use peterrec_data::movielens::{MovieLens, Variant};
use peterrec_experiments::alloc;
use peterrec_experiments::cli::RunArgs;
pub use peterrec_experiments::tasks::TaskName;
use peterrec_model::Strategy;
use peterrec_train::{check_device, with_backend, FineTuneTrainConfig, PretrainConfig};

// mimalloc, keeping freed memory (faster steps; see the module).
peterrec_experiments::global_mimalloc!();

type AnyError = Box<dyn Error>;

/// Every fine-tuning strategy at label budgets, and convergence curves.
#[derive(Debug, Parser)]
#[command(
    about = "The PeterRec paper's findings on MovieLens: label budgets and convergence curves"
)]
pub struct Args {
    /// MovieLens directory: ML-1M (ratings.dat, users.dat, movies.dat) or ML-100K (u.data, ...).
    #[arg(long)]
    pub path: PathBuf,
    /// Where the JSON lines, PNGs and `summary.md` go (created if missing).
    #[arg(long)]
    pub out_dir: PathBuf,
    /// Tasks of the label-budget study.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = peterrec_experiments::tasks::ALL_TASKS
    )]
    pub tasks: Vec<TaskName>,
    /// Strategies, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = peterrec_experiments::tasks::ALL_STRATEGIES
    )]
    pub strategies: Vec<Strategy>,
    /// Shares of the training users (0 < share ≤ 1).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.01,0.02,0.05,0.1,0.25,0.5,1"
    )]
    pub budgets: Vec<f64>,
    /// Seeds of the label-budget study (each: its own user split, order of users, init and
    /// shuffling).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pub seeds: Vec<u64>,
    /// Tasks of the convergence curves.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "gender,cold-start"
    )]
    pub curve_tasks: Vec<TaskName>,
    /// Budgets of the convergence curves.
    #[arg(long, value_delimiter = ',', default_value = "0.05,1")]
    pub curve_budgets: Vec<f64>,
    /// Epochs of a convergence run (early stopping off).
    #[arg(long, default_value_t = 30)]
    pub curve_epochs: usize,
    /// Seeds of the convergence curves.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub curve_seeds: Vec<u64>,
    /// Skip the convergence curves.
    #[arg(long)]
    pub no_curves: bool,
    /// Skip the label-budget study.
    #[arg(long)]
    pub no_budgets: bool,
    /// Maximum fine-tuning epochs of the budget study (default: the fine-tuning recipe's).
    #[arg(long, default_value_t = FineTuneTrainConfig::new().train.epochs)]
    pub finetune_epochs: usize,
    /// Pretraining epochs of a backbone that is not cached (default: the recipe's).
    #[arg(long, default_value_t = PretrainConfig::new().train.epochs)]
    pub pretrain_epochs: usize,
    /// Channels C of a backbone that is not cached.
    #[arg(long, default_value_t = 128)]
    pub channels: usize,
    /// Cold start: training and validation examples kept per user (the test keeps all).
    #[arg(long, default_value_t = 2)]
    pub cold_start_per_user: usize,
    /// Cache of pretrained backbones (`<name>.safetensors`): loaded when present, saved when
    /// pretrained.
    #[arg(long)]
    pub backbone_dir: Option<PathBuf>,
    /// TrueType font of the plots.
    #[arg(
        long,
        default_value = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    )]
    pub font: PathBuf,
    /// Smoke run: the gender task only, budgets 50% and 100%, seed 0, one fine-tuning epoch,
    /// curves of 2 epochs, a 1-epoch C = 32 backbone (unless cached). Minutes on ML-100K.
    #[arg(long)]
    pub quick: bool,
    // --seed (pretraining), --device and --quiet.
    #[command(flatten)]
    pub run: RunArgs,
}

impl Args {
    /// `--quick` applied, and the values checked.
    fn resolved(mut self) -> Result<Self, AnyError> {
        if self.quick {
            self.tasks = vec![TaskName::Gender];
            self.budgets = vec![0.5, 1.0];
            self.seeds = vec![0];
            self.finetune_epochs = 1;
            self.curve_tasks = vec![TaskName::Gender];
            self.curve_budgets = vec![1.0];
            self.curve_epochs = 2;
            self.curve_seeds = vec![0];
            self.pretrain_epochs = 1;
            self.channels = 32;
        }
        let bad = |b: &f64| !(*b > 0.0 && *b <= 1.0);
        if let Some(b) = self
            .budgets
            .iter()
            .chain(&self.curve_budgets)
            .find(|b| bad(b))
        {
            return Err(format!("budget {b} is not a share in (0, 1]").into());
        }
        if self.seeds.is_empty() || self.strategies.is_empty() {
            return Err("at least one seed and one strategy are needed".into());
        }
        if self.finetune_epochs == 0 || self.curve_epochs == 0 || self.pretrain_epochs == 0 {
            return Err("epochs must be positive".into());
        }
        self.budgets.sort_by(f64::total_cmp);
        self.budgets.dedup();
        if self.no_curves {
            self.curve_tasks.clear();
        }
        if self.no_budgets {
            self.tasks.clear();
        }
        Ok(self)
    }
}

fn real_main() -> Result<(), AnyError> {
    let start = Instant::now();
    let args = Args::parse().resolved()?;
    let device = args.run.device;
    check_device(device)?;
    let variant = if args.path.join("ratings.dat").is_file() {
        Variant::Ml1m
    } else if args.path.join("u.data").is_file() {
        Variant::Ml100k
    } else {
        return Err(format!(
            "{} holds neither ratings.dat (ML-1M) nor u.data (ML-100K)",
            args.path.display()
        )
        .into());
    };
    let ml = MovieLens::load(variant, &args.path)?;
    std::fs::create_dir_all(&args.out_dir)?;
    println!(
        "{}: {} users, {} movies; device {device}; writing to {}",
        ml.name(),
        ml.users().len(),
        ml.movies().len(),
        args.out_dir.display()
    );
    let outcome = with_backend!(device, |B, device| study::run::<B>(&args, &ml, device))??;
    let seconds = start.elapsed().as_secs_f64();
    let summary = report::write(&args, ml.name(), &outcome, seconds)?;
    plots::draw(&args, &outcome)?;
    println!("\n{}", report::budget_markdown(&args, &outcome));
    println!("total wall time {seconds:.0}s");
    println!("{summary}");
    Ok(())
}

fn main() -> ExitCode {
    alloc::keep_freed_memory();
    peterrec_experiments::exit_code(real_main())
}
