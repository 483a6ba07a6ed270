//! The study's PNGs: one label-budget plot per task (log-scale share of labelled users, test
//! metric with sd bands) and one convergence plot per task and budget (validation metric and
//! training loss by epoch).

use plotters::prelude::*;

use crate::report::{grid, series_of};
use crate::study::{CurveRun, Outcome};
use crate::{AnyError, Args};

/// Draws every PNG of the study into `--out-dir`.
pub fn draw(args: &Args, out: &Outcome) -> Result<(), AnyError> {
    if out.budget.is_empty() && out.curves.is_empty() {
        return Ok(());
    }
    peterrec_experiments::plot::register_sans_serif(&args.font)?;
    for task in &args.tasks {
        budget_plot(args, out, task.name())?;
    }
    let mut cases: Vec<(String, u64)> = out
        .curves
        .iter()
        .map(|c| (c.task.clone(), (c.budget * 1e6).round() as u64))
        .collect();
    cases.dedup();
    for (task, b) in cases {
        let runs: Vec<&CurveRun> = out
            .curves
            .iter()
            .filter(|c| c.task == task && (c.budget * 1e6).round() as u64 == b)
            .collect();
        curve_plot(args, &task, b as f64 / 1e6, &runs)?;
    }
    Ok(())
}

fn budget_plot(args: &Args, out: &Outcome, task: &str) -> Result<(), AnyError> {
    let series = series_of(args, &grid(out), task);
    if series.is_empty() {
        return Ok(());
    }
    let metric = out
        .budget
        .iter()
        .find(|r| r.task == task)
        .map_or("metric".to_string(), |r| r.metric.clone());
    let cells = series.iter().flat_map(|(_, c)| c.iter());
    let mut budgets: Vec<f64> = cells.clone().map(|(&b, _)| b as f64 / 1e6).collect();
    budgets.sort_by(f64::total_cmp);
    budgets.dedup();
    let x_min = budgets.first().copied().unwrap_or(1.0);
    let lo = cells
        .clone()
        .map(|(_, c)| c.mean - c.sd)
        .fold(f64::INFINITY, f64::min);
    let hi = cells
        .map(|(_, c)| c.mean + c.sd)
        .fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let path = args.out_dir.join(format!("budget-{task}.png"));
    let root = BitMapBackend::new(&path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{task}: test {metric} by share of labelled training users"),
            ("sans-serif", 24),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(
            (x_min * 0.8..1.25f64).log_scale().with_key_points(budgets),
            (lo - pad)..(hi + pad),
        )?;
    chart
        .configure_mesh()
        .x_desc("share of training users with labels (log scale)")
        .y_desc(format!("test {metric} (mean ± sd over seeds)"))
        .x_label_formatter(&|v| format!("{}%", (v * 100.0 * 100.0).round() / 100.0))
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()?;
    for (i, (name, cells)) in series.iter().enumerate() {
        let baseline = name == "majority" || name == "popularity";
        let color = if baseline {
            BLACK.to_rgba()
        } else {
            Palette99::pick(i).to_rgba()
        };
        let points: Vec<(f64, f64)> = cells
            .iter()
            .map(|(&b, c)| (b as f64 / 1e6, c.mean))
            .collect();
        if cells.values().any(|c| c.n > 1) && !baseline {
            let mut band: Vec<(f64, f64)> = cells
                .iter()
                .map(|(&b, c)| (b as f64 / 1e6, c.mean + c.sd))
                .collect();
            band.extend(
                cells
                    .iter()
                    .rev()
                    .map(|(&b, c)| (b as f64 / 1e6, c.mean - c.sd)),
            );
            chart.draw_series(std::iter::once(Polygon::new(
                band,
                color.mix(0.12).filled(),
            )))?;
        }
        let style = color.stroke_width(if baseline { 1 } else { 2 });
        chart
            .draw_series(LineSeries::new(points.clone(), style))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}

fn curve_plot(args: &Args, task: &str, budget: f64, runs: &[&CurveRun]) -> Result<(), AnyError> {
    let path = args.out_dir.join(format!(
        "curve-{task}-{}.png",
        (budget * 100.0 * 100.0).round() / 100.0
    ));
    let root = BitMapBackend::new(&path, (1280, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!(
            "{task}, {}% of the training users: every epoch, early stopping off",
            (budget * 100.0 * 100.0).round() / 100.0
        ),
        ("sans-serif", 24),
    )?;
    let panels = root.split_evenly((1, 2));
    let epochs = runs
        .iter()
        .map(|r| r.history.len())
        .max()
        .unwrap_or(1)
        .max(2) as f64;
    let metric = runs.first().map_or("metric", |r| r.metric.as_str());
    for (panel, (label, pick)) in panels.iter().zip([
        (format!("validation {metric}"), 2usize),
        ("training loss".to_string(), 1usize),
    ]) {
        let value = |h: &(usize, f64, f64)| if pick == 2 { h.2 } else { h.1 };
        let all = runs
            .iter()
            .flat_map(|r| r.history.iter().map(value))
            .filter(|v| v.is_finite());
        let lo = all.clone().fold(f64::INFINITY, f64::min);
        let hi = all.fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let pad = ((hi - lo) * 0.08).max(1e-3);
        let mut chart = ChartBuilder::on(panel)
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(1.0..epochs, (lo - pad)..(hi + pad))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_desc(label.clone())
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 17))
            .draw()?;
        for (i, r) in runs.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let points: Vec<(f64, f64)> = r
                .history
                .iter()
                .map(|h| (h.0 as f64, value(h)))
                .filter(|p| p.1.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(r.strategy.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
                });
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(if pick == 2 {
                SeriesLabelPosition::LowerRight
            } else {
                SeriesLabelPosition::UpperRight
            })
            .draw()?;
    }
    root.present()?;
    Ok(())
}
