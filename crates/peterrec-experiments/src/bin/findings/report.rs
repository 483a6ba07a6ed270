//! What the study writes: JSON lines as the runs end, then `summary.md` and the final JSON line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use peterrec_experiments::stats::{mean, sd};
use peterrec_train::checkpoint::write_atomic;
use peterrec_train::MetricsLog;
use serde_json::{json, Value};

use crate::study::{BaselineRow, BudgetRun, CurveRun, Outcome};
use crate::{AnyError, Args};

/// The three JSON-lines files of `--out-dir`, each line written (and flushed) when its run ends.
pub struct Logs {
    budget: MetricsLog,
    baselines: MetricsLog,
    curves: MetricsLog,
}

impl Logs {
    /// Creates (truncates) `budget.jsonl`, `baselines.jsonl` and `curves.jsonl` in `dir`.
    pub fn create(dir: &Path) -> Result<Self, AnyError> {
        Ok(Self {
            budget: MetricsLog::create(dir.join("budget.jsonl"))?,
            baselines: MetricsLog::create(dir.join("baselines.jsonl"))?,
            curves: MetricsLog::create(dir.join("curves.jsonl"))?,
        })
    }

    pub fn budget(&mut self, run: &BudgetRun) -> Result<(), AnyError> {
        Ok(self.budget.log(run)?)
    }

    pub fn baseline(&mut self, row: &BaselineRow) -> Result<(), AnyError> {
        Ok(self.baselines.log(row)?)
    }

    pub fn curve(&mut self, run: &CurveRun) -> Result<(), AnyError> {
        Ok(self.curves.log(run)?)
    }
}

/// Mean and sd over seeds of one (task, strategy or baseline, budget) cell.
#[derive(Debug, Clone, Copy)]
pub struct Cell {
    pub mean: f64,
    pub sd: f64,
    pub n: usize,
}

impl Cell {
    fn of(values: &[f64]) -> Self {
        Cell {
            mean: mean(values),
            sd: sd(values),
            n: values.len(),
        }
    }
}

/// Budget as a key that sorts: parts per million.
fn key(budget: f64) -> u64 {
    (budget * 1e6).round() as u64
}

/// `(task, series) → budget → values over seeds`; the series are the strategies and the
/// baseline (named by `baseline`).
pub type Grid = BTreeMap<(String, String), BTreeMap<u64, Vec<f64>>>;

/// The budget runs and baselines gathered by task, series and budget.
pub fn grid(out: &Outcome) -> Grid {
    let mut g: Grid = BTreeMap::new();
    for r in &out.budget {
        g.entry((r.task.clone(), r.strategy.clone()))
            .or_default()
            .entry(key(r.budget))
            .or_default()
            .push(r.value);
    }
    for b in &out.baselines {
        g.entry((b.task.clone(), b.baseline.clone()))
            .or_default()
            .entry(key(b.budget))
            .or_default()
            .push(b.value);
    }
    g
}

/// The series of one task, in the order of `--strategies`, the baseline last.
pub fn series_of(args: &Args, g: &Grid, task: &str) -> Vec<(String, BTreeMap<u64, Cell>)> {
    let mut names: Vec<String> = args.strategies.iter().map(|s| s.to_string()).collect();
    names.extend(["majority".to_string(), "popularity".to_string()]);
    names
        .into_iter()
        .filter_map(|n| {
            g.get(&(task.to_string(), n.clone())).map(|by_budget| {
                let cells = by_budget.iter().map(|(&b, v)| (b, Cell::of(v))).collect();
                (n, cells)
            })
        })
        .collect()
}

fn percent(b: u64) -> String {
    let p = b as f64 / 1e4;
    if p.fract() == 0.0 {
        format!("{p:.0}%")
    } else {
        format!("{p}%")
    }
}

/// The label-budget tables, one per task: strategies by rows, budgets by columns, mean ± sd.
pub fn budget_markdown(args: &Args, out: &Outcome) -> String {
    let g = grid(out);
    let mut s = String::new();
    for task in &args.tasks {
        let task = task.name();
        let series = series_of(args, &g, task);
        let Some((_, first)) = series.first() else {
            continue;
        };
        let budgets: Vec<u64> = first.keys().copied().collect();
        let users: BTreeMap<u64, usize> = out
            .budget
            .iter()
            .filter(|r| r.task == task)
            .map(|r| (key(r.budget), r.train_users))
            .collect();
        let metric = out
            .budget
            .iter()
            .find(|r| r.task == task)
            .map_or("", |r| r.metric.as_str());
        let _ = writeln!(s, "**{task}** (test {metric}, mean ± sd over seeds)\n");
        let _ = write!(s, "| strategy |");
        for b in &budgets {
            let _ = write!(
                s,
                " {} ({} users) |",
                percent(*b),
                users.get(b).copied().unwrap_or(0)
            );
        }
        let _ = write!(s, "\n|---|");
        for _ in &budgets {
            let _ = write!(s, "---:|");
        }
        s.push('\n');
        for (name, cells) in &series {
            let _ = write!(s, "| {name} |");
            for b in &budgets {
                match cells.get(b) {
                    Some(c) if c.n > 1 => {
                        let _ = write!(s, " {:.4} ± {:.4} |", c.mean, c.sd);
                    }
                    Some(c) => {
                        let _ = write!(s, " {:.4} |", c.mean);
                    }
                    None => s.push_str(" |"),
                }
            }
            s.push('\n');
        }
        s.push('\n');
    }
    s
}

/// The convergence table: per run, the best epoch, the validation metric there and at the last
/// epoch, and the training loss at the first and last epochs.
pub fn curves_markdown(out: &Outcome) -> String {
    let mut s = String::new();
    if out.curves.is_empty() {
        return s;
    }
    s.push_str(
        "| task | budget | seed | strategy | best epoch | valid at best | valid at last | drop | loss first → last | test at best |\n|---|---:|---:|---|---:|---:|---:|---:|---|---:|\n",
    );
    for c in &out.curves {
        let best = c.history.iter().map(|h| h.2).fold(f64::NAN, f64::max);
        let (first, last) = (c.history.first(), c.history.last());
        let last_valid = last.map_or(f64::NAN, |h| h.2);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.4} | {:.4} | {:.4} | {:.3} → {:.3} | {:.4} |",
            c.task,
            percent(key(c.budget)),
            c.seed,
            c.strategy,
            c.best_epoch,
            best,
            last_valid,
            best - last_valid,
            first.map_or(f64::NAN, |h| h.1),
            last.map_or(f64::NAN, |h| h.1),
            c.test_at_best
        );
    }
    s
}

/// Writes `summary.md` and returns the final JSON line.
pub fn write(args: &Args, data: &str, out: &Outcome, seconds: f64) -> Result<Value, AnyError> {
    let mut md = format!("# Findings on {data}\n\n");
    let _ = writeln!(md, "Wall time {seconds:.0} s.\n");
    md.push_str("| backbone | C | loaded | next-item test HR@10 | NDCG@10 | pretraining s |\n|---|---:|---|---:|---:|---:|\n");
    for b in &out.backbones {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.4} | {:.4} | {:.0} |",
            b.name, b.channels, b.loaded, b.hr_at_10, b.ndcg_at_10, b.pretrain_seconds
        );
    }
    md.push_str("\n## Label budget\n\n");
    md.push_str(&budget_markdown(args, out));
    md.push_str("## Convergence (early stopping off)\n\n");
    md.push_str(&curves_markdown(out));
    write_atomic(args.out_dir.join("summary.md"), md.as_bytes())?;

    let g = grid(out);
    let mut table = serde_json::Map::new();
    for ((task, series), by_budget) in &g {
        let cells: serde_json::Map<String, Value> = by_budget
            .iter()
            .map(|(&b, v)| {
                let c = Cell::of(v);
                (
                    format!("{}", b as f64 / 1e6),
                    json!({"mean": c.mean, "sd": c.sd, "n": c.n}),
                )
            })
            .collect();
        table.insert(format!("{task}/{series}"), Value::Object(cells));
    }
    Ok(json!({
        "data": data,
        "seconds": seconds,
        "backbones": out.backbones,
        "budget": table,
        "curves": out.curves.len(),
    }))
}
