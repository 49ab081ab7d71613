//! The SVG Gantt chart: workers (and device streams) on the y axis, time on the x axis,
//! one bar per task coloured by task name; drawn with plotters.

use std::collections::HashMap;

use plotters::prelude::*;

use super::trace::Trace;
use crate::error::Error;

const WIDTH: u32 = 1100;
const ROW_HEIGHT: u32 = 34;
const MAX_LEGEND: usize = 12;

fn draw_error(e: impl std::fmt::Display) -> Error {
    Error::Trace(format!("cannot draw the Gantt chart: {e}"))
}

impl Trace {
    /// The trace as an SVG Gantt chart.
    pub fn to_svg_gantt(&self) -> Result<String, Error> {
        // Rows: one per worker thread, then one per device stream.
        let mut rows: Vec<String> = self.workers().iter().map(|w| w.to_string()).collect();
        let streams = self.streams();
        rows.extend(streams.iter().map(|(d, s)| format!("{d} stream {s}")));
        let row_of = |task: &super::TaskRecord| -> usize {
            match &task.device {
                Some(device) => {
                    self.workers().len() + streams.iter().position(|s| s == device).unwrap_or(0)
                }
                None => self
                    .workers()
                    .iter()
                    .position(|w| *w == task.worker)
                    .unwrap_or(0),
            }
        };
        let summary = self.summary();
        let colour_of: HashMap<&'static str, usize> = summary
            .by_name
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name, i.min(MAX_LEGEND)))
            .collect();

        let (t0, t1) = self.span_ns();
        let span_ms = ((t1.saturating_sub(t0)) as f64 / 1e6).max(1e-3);
        let row_count = rows.len().max(1);
        let legend_rows = summary.by_name.len().min(MAX_LEGEND + 1);
        let height = 90 + ROW_HEIGHT * row_count as u32 + 20 * legend_rows as u32;

        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
            root.fill(&WHITE).map_err(draw_error)?;
            let plural =
                |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
            let caption = format!(
                "dagger: {}, {}, parallelism {:.2}",
                plural(summary.tasks, "task"),
                plural(summary.runs, "run"),
                summary.parallelism
            );
            // Extra rows above the workers leave room for the legend.
            let top = row_count as f64 + legend_rows as f64 * 0.6;
            let mut chart = ChartBuilder::on(&root)
                .caption(caption, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(120)
                .build_cartesian_2d(0f64..span_ms * 1.02, -0.5f64..top)
                .map_err(draw_error)?;
            let labels = rows.clone();
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(row_count + legend_rows + 1)
                .y_label_formatter(&|y| {
                    let row = y.round();
                    if (y - row).abs() < 1e-6 && row >= 0.0 && (row as usize) < labels.len() {
                        labels[row as usize].clone()
                    } else {
                        String::new()
                    }
                })
                .x_desc("time (ms)")
                .draw()
                .map_err(draw_error)?;
            for stats in &summary.by_name {
                let index = colour_of[stats.name];
                let colour = Palette99::pick(index).to_rgba();
                let bars = self
                    .tasks()
                    .iter()
                    .filter(|t| t.name == stats.name)
                    .map(|t| {
                        let row = row_of(t) as f64;
                        let x0 = t.start_ns.saturating_sub(t0) as f64 / 1e6;
                        let x1 =
                            (t.end_ns.saturating_sub(t0) as f64 / 1e6).max(x0 + span_ms * 1e-4);
                        let style = if t.error.is_some() {
                            RED.filled()
                        } else {
                            colour.filled()
                        };
                        Rectangle::new([(x0, row - 0.38), (x1, row + 0.38)], style)
                    });
                let series = chart.draw_series(bars).map_err(draw_error)?;
                if index < MAX_LEGEND {
                    series
                        .label(format!(
                            "{} ({}x, {})",
                            stats.name,
                            stats.count,
                            super::duration_text(stats.total_ns)
                        ))
                        .legend(move |(x, y)| {
                            Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled())
                        });
                } else if stats.name == summary.by_name[MAX_LEGEND].name {
                    series.label("other tasks").legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled())
                    });
                }
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK.mix(0.4))
                .label_font(("sans-serif", 13))
                .draw()
                .map_err(draw_error)?;
            root.present().map_err(draw_error)?;
        }
        Ok(svg)
    }
}
