//! Learning curves: plots the validation metric per epoch of one or more training runs from their
//! JSON-lines metrics logs (`--log` of `nextitem`, `movielens`, ...) into a PNG file.
//!
//! ```text
//! cargo run --release --example nextitem -- --format ml-1m --path $PETERREC_DATA/ml-1m --log /tmp/a.jsonl
//! cargo run --release -p peterrec-experiments --bin plot_curve -- --log "run a=/tmp/a.jsonl" --out docs/curve.png
//! ```
//!
//! Each `--log` is `LABEL=PATH` (or just `PATH`, labelled by its file name; a path holding `=`
//! needs a label). The x axis is the run's wall time in seconds (`--x seconds`, default) or the
//! epoch (`--x epoch`); a resumed run restarts its clock, so plot resumed logs by epoch. Text is drawn
//! with a TrueType font read from `--font` (DejaVu Sans on Debian by default).
//!
//! Ends with one JSON line: the output path and, per run, its points and best value.

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use peterrec_train::log::read_json_lines;
use plotters::prelude::*;
use serde::Deserialize;
use serde_json::json;

type AnyError = Box<dyn Error>;

/// What the x axis shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum XAxis {
    /// Seconds since the run started.
    Seconds,
    /// Epoch number.
    Epoch,
}

/// Plot validation learning curves from metrics logs.
#[derive(Debug, Parser)]
#[command(about = "Plot validation learning curves from JSON-lines metrics logs into a PNG")]
struct Args {
    /// A run to plot: `LABEL=PATH` or `PATH` (repeat for several runs).
    #[arg(long = "log", required = true)]
    logs: Vec<String>,
    /// Output PNG file.
    #[arg(long)]
    out: PathBuf,
    /// x axis: wall time or epoch.
    #[arg(long, value_enum, default_value = "seconds")]
    x: XAxis,
    /// Plot title.
    #[arg(long, default_value = "Validation learning curve")]
    title: String,
    /// Image width in pixels.
    #[arg(long, default_value_t = 960, value_parser = clap::value_parser!(u32).range(64..))]
    width: u32,
    /// Image height in pixels.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u32).range(64..))]
    height: u32,
    /// TrueType font used for all text.
    #[arg(long, default_value = peterrec_experiments::plot::DEFAULT_FONT)]
    font: PathBuf,
}

/// The part of a metrics-log line this program reads.
#[derive(Debug, Deserialize)]
struct Line {
    record: Record,
}

/// One evaluation of a run (a subset of `peterrec_train::EpochRecord`).
#[derive(Debug, Deserialize)]
struct Record {
    epoch: usize,
    /// `null` where the metric was not finite (serde_json writes NaN as `null`).
    valid_metric: Option<f64>,
    metric: String,
    elapsed: f64,
}

/// One run's curve.
struct Series {
    label: String,
    metric: String,
    points: Vec<(f64, f64)>,
}

fn read_series(spec: &str, x: XAxis) -> Result<Series, AnyError> {
    let (label, path) = match spec.split_once('=') {
        Some((l, p)) => (l.to_string(), PathBuf::from(p)),
        None => {
            let p = PathBuf::from(spec);
            let label = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| spec.to_string());
            (label, p)
        }
    };
    let lines: Vec<Line> = read_json_lines(&path)?;
    if lines.is_empty() {
        return Err(format!("{}: no evaluation record in the log", path.display()).into());
    }
    // A resumed run appends to its log; keep the last record of each epoch.
    let mut by_epoch: Vec<Record> = Vec::new();
    for Line { record } in lines {
        by_epoch.retain(|r| r.epoch != record.epoch);
        by_epoch.push(record);
    }
    by_epoch.sort_by_key(|r| r.epoch);
    let metric = by_epoch[0].metric.clone();
    let points: Vec<(f64, f64)> = by_epoch
        .iter()
        .filter_map(|r| {
            let xv = match x {
                XAxis::Seconds => r.elapsed,
                XAxis::Epoch => r.epoch as f64,
            };
            r.valid_metric.filter(|v| v.is_finite()).map(|v| (xv, v))
        })
        .collect();
    if points.is_empty() {
        return Err(format!("{}: no finite validation metric in the log", path.display()).into());
    }
    Ok(Series {
        label,
        metric,
        points,
    })
}

fn plot(args: &Args, series: &[Series]) -> Result<(), AnyError> {
    peterrec_experiments::plot::register_sans_serif(&args.font)?;

    let all = series.iter().flat_map(|s| s.points.iter());
    let x_max = all.clone().map(|p| p.0).fold(0.0f64, f64::max);
    let y_max = all.map(|p| p.1).fold(0.0f64, f64::max);
    let x_max = if x_max > 0.0 { x_max * 1.05 } else { 1.0 };
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let metric = &series[0].metric;
    let x_desc = match args.x {
        XAxis::Seconds => "wall time (s)",
        XAxis::Epoch => "epoch",
    };

    let root = BitMapBackend::new(&args.out, (args.width, args.height)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&args.title, ("sans-serif", 26))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(format!("validation {metric}"))
        .x_label_formatter(&|v| match args.x {
            XAxis::Seconds => format!("{v:.0}"),
            XAxis::Epoch => format!("{v}"),
        })
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
        chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}

fn real_main() -> Result<(), AnyError> {
    let args = Args::parse();
    let series = args
        .logs
        .iter()
        .map(|s| read_series(s, args.x))
        .collect::<Result<Vec<_>, _>>()?;
    plot(&args, &series)?;
    println!("wrote {}", args.out.display());
    let runs: Vec<_> = series
        .iter()
        .map(|s| {
            let best = s.points.iter().map(|p| p.1).fold(f64::NAN, f64::max);
            json!({"label": s.label, "metric": s.metric, "points": s.points, "best": best})
        })
        .collect();
    println!("{}", json!({"out": args.out, "runs": runs}));
    Ok(())
}

fn main() -> ExitCode {
    peterrec_experiments::exit_code(real_main())
}
