//! Distributed sort: each partition is sorted and sampled by a task, splitters are picked
//! from the samples, each sorted partition is cut at the splitters, and range `i` of every
//! partition is merged into result partition `i`. Keys are compared in arrow's row
//! format, so one byte comparison orders any mix of key columns and directions.

use std::sync::Arc;

use arrow_array::{RecordBatch, UInt32Array};
use arrow_row::Rows;
use arrow_schema::{SchemaRef, SortOptions};
use dagger_core::{spawn_with, try_spawn_with, Error, Handle};

use crate::expr::arrow;
use crate::keys::Keys;
use crate::table::DTable;

/// Rows sampled from each partition to pick splitters.
const SAMPLES_PER_PARTITION: usize = 64;

/// A sorted partition and a sample of its keys.
#[derive(Clone)]
struct Sorted {
    batch: RecordBatch,
    /// Keys of evenly spaced rows, in row format.
    sample: Vec<Box<[u8]>>,
}

impl DTable {
    /// The rows ordered by `by` (column name, descending?) pairs: nulls sort after every
    /// value in ascending order and before them in descending order; floats in IEEE total
    /// order. The result has as many partitions as the table, each a range of the order;
    /// rows with equal keys keep no particular order.
    pub fn sort(&self, by: &[(&str, bool)]) -> Result<DTable, Error> {
        if by.is_empty() {
            return Err(Error::InvalidUse(
                "a sort needs at least one key column".into(),
            ));
        }
        let (mut columns, mut types, mut options) = (vec![], vec![], vec![]);
        for &(name, descending) in by {
            types.push(self.column_type(name)?);
            columns.push(self.schema.index_of(name).expect("checked"));
            options.push(SortOptions {
                descending,
                nulls_first: descending,
            });
        }
        let keys = Arc::new(Keys::ordered(columns, &types, options));
        keys.converter()?;
        let sorted: Vec<Handle<Sorted>> = self
            .parts
            .iter()
            .map(|part| {
                let keys = keys.clone();
                try_spawn_with(part, move |batch: &RecordBatch| {
                    sort_and_sample(batch, &keys)
                })
            })
            .collect();
        let n = self.parts.len();
        let splitters = spawn_with(&sorted, move |sorted: Vec<&Sorted>| splitters(&sorted, n));
        let pieces: Vec<Handle<Vec<RecordBatch>>> = sorted
            .iter()
            .map(|s| {
                let keys = keys.clone();
                try_spawn_with(
                    (s, &splitters),
                    move |s: &Sorted, splitters: &Vec<Box<[u8]>>| cut(&s.batch, splitters, &keys),
                )
            })
            .collect();
        let parts = (0..n)
            .map(|range| {
                let (keys, schema) = (keys.clone(), self.schema.clone());
                try_spawn_with(&pieces, move |pieces: Vec<&Vec<RecordBatch>>| {
                    merge_range(&schema, pieces.iter().map(|p| &p[range]), &keys)
                })
            })
            .collect();
        Ok(DTable {
            schema: self.schema.clone(),
            parts,
        })
    }
}

/// The row order that sorts `batch` by its keys, and the keys.
fn order(batch: &RecordBatch, keys: &Keys) -> Result<(Vec<u32>, Rows), Error> {
    let rows = keys.rows(batch)?;
    let n = u32::try_from(batch.num_rows()).map_err(|_| {
        Error::InvalidUse("a partition of more than 2^32 rows cannot be sorted".into())
    })?;
    let mut order: Vec<u32> = (0..n).collect();
    order.sort_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
    Ok((order, rows))
}

fn take(batch: &RecordBatch, order: Vec<u32>) -> Result<RecordBatch, Error> {
    arrow_select::take::take_record_batch(batch, &UInt32Array::from(order)).map_err(arrow)
}

fn sort_and_sample(batch: &RecordBatch, keys: &Keys) -> Result<Sorted, Error> {
    let (order, rows) = order(batch, keys)?;
    let n = order.len();
    let count = n.min(SAMPLES_PER_PARTITION);
    let sample = (0..count)
        .map(|i| rows.row(order[i * n / count] as usize).as_ref().into())
        .collect();
    Ok(Sorted {
        batch: take(batch, order)?,
        sample,
    })
}

/// `n - 1` keys that cut the pooled samples into `n` ranges of about equal size.
fn splitters(sorted: &[&Sorted], n: usize) -> Vec<Box<[u8]>> {
    let mut all: Vec<&Box<[u8]>> = sorted.iter().flat_map(|s| &s.sample).collect();
    all.sort();
    if all.is_empty() {
        // Every partition is empty: any splitters will do (an empty key sorts first).
        return vec![Box::from([]); n.saturating_sub(1)];
    }
    (1..n).map(|i| all[i * all.len() / n].clone()).collect()
}

/// Cuts a sorted batch into `splitters.len() + 1` ranges: range `i` holds the rows whose
/// key is below splitter `i` and not below splitter `i - 1`.
fn cut(
    batch: &RecordBatch,
    splitters: &[Box<[u8]>],
    keys: &Keys,
) -> Result<Vec<RecordBatch>, Error> {
    let rows = keys.rows(batch)?;
    let n = batch.num_rows();
    let mut bounds = Vec::with_capacity(splitters.len() + 2);
    bounds.push(0);
    for splitter in splitters {
        let from = *bounds.last().expect("starts with 0");
        // The first row at or after the splitter (rows are sorted).
        let (mut lo, mut hi) = (from, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if rows.row(mid).as_ref() < &splitter[..] {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        bounds.push(lo);
    }
    bounds.push(n);
    Ok(bounds
        .windows(2)
        .map(|w| batch.slice(w[0], w[1] - w[0]))
        .collect())
}

/// Concatenates the pieces of one range and sorts them.
fn merge_range<'a>(
    schema: &SchemaRef,
    pieces: impl Iterator<Item = &'a RecordBatch>,
    keys: &Keys,
) -> Result<RecordBatch, Error> {
    let pieces: Vec<&RecordBatch> = pieces.collect();
    let batch = arrow_select::concat::concat_batches(schema, pieces).map_err(arrow)?;
    let (order, _) = order(&batch, keys)?;
    take(&batch, order)
}
