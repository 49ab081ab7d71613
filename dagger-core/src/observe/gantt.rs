//! The SVG Gantt chart: workers (and device streams) on the y axis, time on the x axis,
//! one bar per task coloured by task name; drawn with plotters.

use std::collections::HashMap;

use plotters::prelude::*;

use super::trace::Trace;
use crate::error::Error;

const WIDTH: u32 = 1100;
const ROW_HEIGHT: u32 = 34;
const MAX_LEGEND: usize = 12;
const LEGEND_ROW: u32 = 20;

fn draw_error(e: impl std::fmt::Display) -> Error {
    Error::Trace(format!("cannot draw the Gantt chart: {e}"))
}

impl Trace {
    /// What the chart shows: the `dag!` it ran (by the first statement's location), or
    /// how many runs.
    fn run_label(&self) -> String {
        match self.runs() {
            [run] => match run.graph.and_then(|g| g.nodes().first()) {
                Some(node) => format!("dag! at {}", node.location()),
                None => "spawned tasks".to_owned(),
            },
            runs => format!("{} runs", runs.len()),
        }
    }

    /// The trace as an SVG Gantt chart: one row per worker thread (and device stream),
    /// the run named in the caption, the legend below.
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
        // The chart has exactly one row per worker or stream; the legend goes below it.
        let chart_height = 90 + ROW_HEIGHT * row_count as u32;
        let height = chart_height + 16 + LEGEND_ROW * legend_rows as u32;

        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
            root.fill(&WHITE).map_err(draw_error)?;
            let (upper, lower) = root.split_vertically(chart_height);
            let plural =
                |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
            let caption = format!(
                "{}: {}, parallelism {:.2}",
                self.run_label(),
                plural(summary.tasks, "task"),
                summary.parallelism
            );
            let mut chart = ChartBuilder::on(&upper)
                .caption(caption, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(120)
                .build_cartesian_2d(0f64..span_ms * 1.02, -0.5f64..row_count as f64 - 0.5)
                .map_err(draw_error)?;
            let labels = rows.clone();
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(row_count)
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
            let mut legend = Vec::new();
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
                chart.draw_series(bars).map_err(draw_error)?;
                if index < MAX_LEGEND {
                    legend.push((
                        colour,
                        format!(
                            "{} ({}x, {})",
                            stats.name,
                            stats.count,
                            super::duration_text(stats.total_ns)
                        ),
                    ));
                } else if stats.name == summary.by_name[MAX_LEGEND].name {
                    legend.push((colour, "other tasks".to_owned()));
                }
            }
            let font = ("sans-serif", 13).into_font().color(&BLACK);
            for (i, (colour, text)) in legend.into_iter().enumerate() {
                let y = 8 + (LEGEND_ROW * i as u32) as i32;
                lower
                    .draw(&Rectangle::new([(132, y), (146, y + 10)], colour.filled()))
                    .map_err(draw_error)?;
                lower
                    .draw(&Text::new(text, (154, y - 1), font.clone()))
                    .map_err(draw_error)?;
            }
            root.present().map_err(draw_error)?;
        }
        Ok(svg)
    }
}
