//! Many tasks, one backbone: pretrain NextItNet on MovieLens, fine-tune three user-profile tasks,
//! save them, then reload everything in a fresh process and answer queries.
//!
//! ```text
//! cargo run --release --example serve_tasks -- --path $PETERREC_DATA/ml-1m
//! cargo run --release --example serve_tasks -- --memory-paper-shape
//! ```
//!
//! The first command pretrains a backbone (or loads `--backbone FILE`), fine-tunes gender and
//! age with PeterRec (serial patches) and occupation with FineCLS, writes the backbone, the
//! three task files and held-out test queries to `--dir`, and starts this program again with
//! `--serve`: that fresh process opens a `TaskServer` on the files alone and answers the queries
//! one at a time and as one mixed batch. It ends with one JSON line: per task its strategy,
//! task-file size, median latency and test accuracy; the mixed batch's latency and sharing; and
//! the resident memory before and after loading the tasks.
//!
//! `--memory-paper-shape` measures memory at the paper's shape instead (V = 50,000, C = 256,
//! blocks [1,4]×4): a fresh process opens the backbone file, then loads ten PeterRec task files
//! onto it, and reports its resident memory after each (`docs/serving.md`).

use std::path::{Path, PathBuf};

use clap::Parser;
use peterrec::data::movielens::{MovieLens, ProfileAttribute, Variant};
use peterrec::data::task::profile::{profile_task, ProfileTaskConfig};
use peterrec::model::{load_pretrained, save_backbone};
use peterrec::prelude::*;
use peterrec_experiments::serving::{self, AnyError, Manifest, TaskEntry};

/// Fine-tune three ML tasks on one backbone, reload them in a fresh process, serve.
#[derive(Parser, Debug)]
struct Args {
    /// MovieLens directory (ml-1m or ml-100k); defaults to $PETERREC_DATA/ml-1m.
    #[arg(long)]
    path: Option<PathBuf>,
    /// Where the backbone, task files and queries go (default: a directory under the temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Load this pretrained file (`save_pretrained`) instead of pretraining.
    #[arg(long)]
    backbone: Option<PathBuf>,
    /// Pretraining epochs.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Fine-tuning epochs per task.
    #[arg(long, default_value_t = 3)]
    finetune_epochs: usize,
    /// Channels C.
    #[arg(long, default_value_t = 64)]
    channels: usize,
    /// Block dilations.
    #[arg(long, default_value = "1,4,1,4", value_delimiter = ',')]
    dilations: Vec<usize>,
    /// Most recent items per user, in pretraining, fine-tuning and serving.
    #[arg(long, default_value_t = 50)]
    max_len: usize,
    /// Test queries per task.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    /// (Internal) serve the files in `--dir`: what the fresh process runs.
    #[arg(long)]
    serve: bool,
    /// Measure the memory of one backbone and ten tasks at the paper's shape.
    #[arg(long)]
    memory_paper_shape: bool,
    /// (Internal) the fresh process of `--memory-paper-shape`.
    #[arg(long)]
    memory_child: bool,
}

fn train(args: &Args, dir: &Path) -> Result<(), AnyError> {
    let path = match &args.path {
        Some(p) => p.clone(),
        None => std::env::var_os("PETERREC_DATA")
            .map(|d| PathBuf::from(d).join("ml-1m"))
            .ok_or("give --path to a MovieLens directory, or set PETERREC_DATA")?,
    };
    let variant = match path.join("ratings.dat").is_file() {
        true => Variant::Ml1m,
        false => Variant::Ml100k,
    };
    let ml = MovieLens::load(variant, &path)?;
    let (vocab, sequences) = ml.pretraining(1);
    let device = Default::default();
    // Each loop's recipe, with this run's epochs, seed and row length.
    let train = |recipe: TrainConfig, epochs| {
        let cfg = recipe.with_epochs(epochs).with_seed(args.seed);
        cfg.with_max_len(args.max_len).with_quiet(args.quiet)
    };
    let (pre, fine) = (PretrainConfig::new(), FineTuneTrainConfig::new());

    // 1. The backbone: loaded, or pretrained on every user's sequence.
    let backbone = match &args.backbone {
        Some(file) => load_pretrained::<DefaultAutodiffBackend>(file, &device)?.backbone,
        None => {
            let config = NextItNetConfig::new(vocab.len(), args.channels, args.dilations.clone());
            let pretrainer = Pretrainer::new(config.with_seed(args.seed))
                .with_config(pre.clone().with_train(train(pre.train, args.epochs)));
            let pretrained = pretrainer.fit::<DefaultAutodiffBackend>(&sequences, &device)?;
            let valid = pretrained.report.valid.full.ndcg_at(10).unwrap_or(0.0);
            println!("pretrained: validation NDCG@10 {valid:.4}");
            pretrained.model.backbone
        }
    };
    let tokens = backbone.config().num_tokens;
    if tokens != vocab.len() {
        let from = (args.backbone.as_ref()).map_or("the pretrained backbone".into(), |f| {
            f.display().to_string()
        });
        let n = vocab.len();
        return Err(
            format!("{from}: {tokens} tokens, but this data set's vocabulary has {n}").into(),
        );
    }
    save_backbone(&backbone, dir.join(serving::BACKBONE))?;

    // 2. Three tasks on it, each saved as a task file with its test queries.
    let serial = Strategy::PeterRec {
        insertion: Insertion::Serial,
    };
    let mut manifest = Manifest {
        max_len: args.max_len,
        tasks: Vec::new(),
    };
    for (attribute, strategy) in [
        (ProfileAttribute::Gender, serial),
        (ProfileAttribute::Age, serial),
        (ProfileAttribute::Occupation, Strategy::FineCls),
    ] {
        let split = SplitConfig::fractions(0.7, 0.1, args.seed);
        let (task, _) = profile_task(
            &ml,
            attribute,
            &vocab,
            &ProfileTaskConfig::new().with_split(split),
        )?;
        let tuned = FineTuner::new(strategy)
            .with_config(
                fine.clone()
                    .with_train(train(fine.train.clone(), args.finetune_epochs)),
            )
            .fit(backbone.clone(), &task, &device)?;
        let (name, file) = (
            attribute.name(),
            format!("{}.safetensors", attribute.name()),
        );
        tuned.model.save_task(dir.join(&file))?;
        let test = &tuned.report.test;
        println!(
            "{name} with {strategy}: test {} {:.4}",
            test.headline_name(),
            test.headline()
        );
        let queries = task.test.iter().take(args.queries);
        manifest.tasks.push(TaskEntry {
            name: name.to_string(),
            strategy: strategy.to_string(),
            file,
            queries: queries.map(|e| (e.seq.clone(), e.label)).collect(),
        });
    }
    manifest.save(dir)?;
    println!("saved to {}; serving from a fresh process", dir.display());
    serving::fresh_process(&["--serve", "--dir", &dir.to_string_lossy()])
}

fn main() -> Result<(), AnyError> {
    let args = Args::parse();
    let pid = std::process::id();
    let dir = (args.dir.clone())
        .unwrap_or_else(|| std::env::temp_dir().join(format!("peterrec-serve-tasks-{pid}")));
    std::fs::create_dir_all(&dir)?;
    if args.serve {
        println!("{}", serving::serve_dir(&dir)?);
    } else if args.memory_child {
        println!("{}", serving::measure_paper_shape(&dir)?);
    } else if args.memory_paper_shape {
        serving::write_paper_shape(&dir)?;
        serving::fresh_process(&["--memory-child", "--dir", &dir.to_string_lossy()])?;
    } else {
        train(&args, &dir)?;
    }
    Ok(())
}
