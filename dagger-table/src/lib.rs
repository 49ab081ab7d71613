//! Partitioned tables (DTables.jl's `DTable`): a table split into partitions of Arrow
//! record batches, where every operation spawns a task per partition and returns at once.
//! arrow-rs supplies the kernels (filter, take, casts, comparisons, arithmetic, the row
//! format, the Parquet and CSV readers); dagger supplies the parallel plan, the hash
//! group-by, the hash join and the sort.
//!
//! There is no query planner: what a query reads is what you ask for. Pass the columns
//! and a filter to [`DTable::read_parquet_with`] ([`ParquetOptions`]) and the reader
//! decodes only those columns and skips row groups whose statistics rule the filter out;
//! `select` early on tables in memory. Group-bys split their groups by key hash into as
//! many result partitions as the input has, merged in parallel; joins broadcast the
//! right side when either side has one partition and hash-partition both otherwise.
//!
//! ```
//! use std::sync::Arc;
//! use dagger_table::arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
//! use dagger_table::arrow_schema::{DataType, Field, Schema};
//! use dagger_table::{col, lit, sum, count, DTable};
//!
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("city", DataType::Utf8, true),
//!     Field::new("sales", DataType::Float64, true),
//!     Field::new("units", DataType::Int64, true),
//! ]));
//! let part = |cities: Vec<&str>, sales: Vec<f64>, units: Vec<i64>| {
//!     RecordBatch::try_new(schema.clone(), vec![
//!         Arc::new(StringArray::from(cities)),
//!         Arc::new(Float64Array::from(sales)),
//!         Arc::new(Int64Array::from(units)),
//!     ]).unwrap()
//! };
//! let table = DTable::from_batches(schema.clone(), vec![
//!     part(vec!["Oslo", "Lima"], vec![10.0, 4.0], vec![1, 2]),
//!     part(vec!["Oslo", "Pune"], vec![6.0, 3.0], vec![3, 4]),
//! ])?;
//! let big = table.filter(col("units").gt(lit(1)))?;          // a task per partition
//! let totals = big.group_by(&["city"])?.agg([sum("sales"), count("units")])?;
//! let totals = totals.sort(&[("city", false)])?.collect_batch()?;
//! assert_eq!(totals.num_rows(), 3);                           // Lima, Oslo, Pune
//! # Ok::<(), dagger_core::Error>(())
//! ```

#![warn(missing_docs)]

mod aggregate;
mod expr;
mod group;
mod hash;
mod io;
mod join;
mod keys;
mod prune;
mod sort;
mod table;
mod text;

pub use expr::{col, date, lit, Expr, Literal, Op};
pub use group::{count, count_distinct, max, mean, min, sum, Agg, AggKind, GroupBy};
pub use io::{CsvOptions, ParquetOptions};
pub use join::{JoinStrategy, JoinType};
pub use table::DTable;
pub use text::to_text;

/// The Arrow array types tables hold (the same crate version dagger-table uses).
pub use arrow_array;
/// The Arrow schema types.
pub use arrow_schema;
