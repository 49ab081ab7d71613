//! Record batches as an aligned text table, for printing results.

use arrow_array::RecordBatch;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use dagger_core::Error;

use crate::expr::arrow;

/// `batches` (of one schema) as a text table: a header, a rule, one line per row,
/// columns right-aligned; nulls print as `null`.
pub fn to_text(batches: &[RecordBatch]) -> Result<String, Error> {
    let Some(first) = batches.first() else {
        return Ok(String::new());
    };
    let options = FormatOptions::default().with_null("null");
    let mut cells: Vec<Vec<String>> = vec![first
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()];
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).map_err(arrow))
            .collect::<Result<Vec<_>, Error>>()?;
        for row in 0..batch.num_rows() {
            cells.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect(),
            );
        }
    }
    let columns = cells[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            cells
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, row) in cells.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &w)| format!("{cell:>w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
            out.push_str(&rule.join("  "));
            out.push('\n');
        }
    }
    Ok(out)
}
