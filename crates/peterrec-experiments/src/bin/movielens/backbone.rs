//! The pretrained backbones: one on every user's sequence (profile tasks), one on the
//! source-domain sequences (cold start); pretrained here or loaded from `--backbone-dir`.

use std::collections::BTreeMap;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use peterrec_data::batch::SeqObjective;
use peterrec_data::split::{leave_one_out, LeaveOneOut};
use peterrec_data::{UserSequence, Vocab, NUM_RESERVED};
use peterrec_model::{
    load_pretrained, save_pretrained, NegativeDistribution, NegativeSampler, NextItNetConfig,
    NextItNetLM, ParamReport,
};
use peterrec_train::{
    evaluate_next_item, pretrain, PretrainConfig, PretrainReport, RankingOptions, RankingReport,
    TrainConfig,
};
use serde::Serialize;

use crate::args::Args;
use crate::AnyError;

/// Next-item figures of one pretrained backbone.
#[derive(Debug, Clone, Serialize)]
pub struct BackboneSummary {
    pub name: String,
    pub users: usize,
    pub items: usize,
    /// Loaded from `--backbone-dir` instead of pretrained in this run.
    pub loaded: bool,
    pub epochs: usize,
    pub best_epoch: usize,
    pub seconds: f64,
    pub params: usize,
    pub valid_ndcg_at_10: Option<f64>,
    /// Leave-last-out test metrics of the kept model (`sampled_*`: the sampled protocol).
    pub test: BTreeMap<String, f64>,
    /// Per-epoch pretraining history: (epoch, train loss, validation NDCG@10, seconds elapsed).
    pub history: Vec<(usize, f64, f64, f64)>,
}

/// The ranking cut-offs and protocols of every evaluation of the table.
pub fn ranking(seed: u64) -> RankingOptions {
    RankingOptions {
        ks: vec![1, 5, 10, 20],
        seed,
        ..RankingOptions::default()
    }
}

/// Pretrains a fresh backbone on `split` (leave-last-out, early stopping on validation NDCG@10).
fn pretrain_lm<B: AutodiffBackend>(
    name: &str,
    vocab: &Vocab,
    split: &LeaveOneOut,
    config: &NextItNetConfig,
    args: &Args,
    device: &B::Device,
) -> Result<(NextItNetLM<B>, PretrainReport), AnyError> {
    let cfg = PretrainConfig {
        train: TrainConfig {
            epochs: args.epochs,
            batch_size: args.batch_size,
            lr: args.lr,
            lr_schedule: args.lr_schedule,
            max_len: args.pretrain_max_len,
            patience: args.patience,
            seed: args.run.seed,
            quiet: args.run.quiet,
            log_path: args
                .log_dir
                .as_ref()
                .map(|d| d.join(format!("{name}.jsonl"))),
            ..PretrainConfig::new().train
        },
        objective: SeqObjective::NextItem,
        sampled: args.sampled_negatives.map(|n| NegativeSampler {
            num_negatives: n,
            distribution: NegativeDistribution::Uniform,
            first_item: NUM_RESERVED,
            num_tokens: vocab.len() as u32,
        }),
        ranking: RankingOptions {
            sampled: false,
            ..ranking(args.run.seed)
        },
        windows: args.windows,
        dropout: args.dropout,
        tied_output: args.tied_output,
    };
    let lm = cfg.init_lm::<B>(config, device)?;
    println!(
        "\n== pretraining the {name} backbone: {} users, {} items, C={} dilations={:?}, {} parameters, max length {}, up to {} epochs",
        split.train.len(),
        vocab.num_items(),
        config.channels,
        config.dilations,
        ParamReport::of_module(&lm, |_| true).total,
        args.pretrain_max_len,
        args.epochs
    );
    let (lm, report) = pretrain(lm, &split.train, &split.valid, &cfg, device)?;
    for r in &report.history {
        println!(
            "  epoch {:>3}: loss {:.4}, valid NDCG@10 {:.4}, {:.0} seq/s, {:.1}s elapsed{}",
            r.epoch,
            r.train_loss,
            r.valid_metric,
            r.seqs_per_sec,
            r.elapsed,
            if r.best { "  *" } else { "" }
        );
    }
    Ok((lm, report))
}

/// Pretrains one backbone on `sequences` (or loads it from `--backbone-dir`) and evaluates it
/// on the held-out last items.
pub fn pretrain_backbone<B: AutodiffBackend>(
    name: &str,
    vocab: &Vocab,
    sequences: &[UserSequence],
    args: &Args,
    device: &B::Device,
) -> Result<(NextItNetLM<B>, NextItNetConfig, BackboneSummary), AnyError> {
    let split = leave_one_out(sequences);
    let cached = args
        .backbone_dir
        .as_ref()
        .map(|d| d.join(format!("{name}.safetensors")));
    let (lm, config, report) = match cached.as_ref().filter(|p| p.is_file()) {
        Some(path) => {
            let lm = load_pretrained::<B>(path, device)?;
            let config = lm.backbone.config().clone();
            if config.num_tokens != vocab.len() {
                return Err(format!(
                    "{}: {} tokens, but the {name} vocabulary has {}",
                    path.display(),
                    config.num_tokens,
                    vocab.len()
                )
                .into());
            }
            println!(
                "\n== loaded the {name} backbone from {} (C={} dilations={:?}); not pretrained in this run",
                path.display(),
                config.channels,
                config.dilations
            );
            (lm, config, None)
        }
        None => {
            let config = NextItNetConfig::new(vocab.len(), args.channels, args.dilations.clone())
                .with_seed(args.run.seed);
            let (lm, report) = pretrain_lm::<B>(name, vocab, &split, &config, args, device)?;
            if let Some(path) = &cached {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                save_pretrained(&lm.valid(), path)?;
                println!("  saved to {}", path.display());
            }
            (lm, config, Some(report))
        }
    };
    let params = ParamReport::of_module(&lm, |_| true).total;
    let test: RankingReport = evaluate_next_item(
        &lm.valid(),
        &split.test,
        args.pretrain_max_len,
        &ranking(args.run.seed),
        device,
    );
    let at = |k| test.full.hr_at(k).unwrap_or(0.0);
    let nd = |k| test.full.ndcg_at(k).unwrap_or(0.0);
    let sampled = test.sampled.as_ref();
    let (epochs, best_epoch, seconds) = report
        .as_ref()
        .map_or((0, 0, 0.0), |r| (r.epochs, r.best_epoch, r.seconds));
    let kept = if report.is_some() {
        format!("kept epoch {best_epoch} of {epochs} ({seconds:.0}s)")
    } else {
        "loaded".to_string()
    };
    println!(
        "  {kept}. Test (leave-last-out, full ranking, history excluded, {} users): HR@10 {:.4}, NDCG@10 {:.4}, MRR@10 {:.4}, HR@20 {:.4}; sampled protocol (100 uniform negatives): HR@10 {:.4}, NDCG@10 {:.4}",
        test.full.count,
        at(10),
        nd(10),
        test.full.mrr_at(10).unwrap_or(0.0),
        at(20),
        sampled.and_then(|s| s.hr_at(10)).unwrap_or(0.0),
        sampled.and_then(|s| s.ndcg_at(10)).unwrap_or(0.0),
    );
    let summary = BackboneSummary {
        name: name.to_string(),
        users: sequences.len(),
        items: vocab.num_items(),
        loaded: report.is_none(),
        epochs,
        best_epoch,
        seconds,
        params,
        valid_ndcg_at_10: report.as_ref().and_then(|r| r.valid.full.ndcg_at(10)),
        test: test.flat(),
        history: report
            .iter()
            .flat_map(|r| &r.history)
            .map(|r| (r.epoch, r.train_loss, r.valid_metric, r.elapsed))
            .collect(),
    };
    Ok((lm, config, summary))
}
