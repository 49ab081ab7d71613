//! Tables against the engines users would pick instead: TPC-H Q1 and Q6, a group-by with
//! about as many groups as orders, and a lineitem-orders join, on generated files. This
//! binary runs dagger's side; `benches/tables/engines.py` runs polars and DataFusion on the
//! same files, and `benches/tables/run.sh` interleaves them and prints the table.
//!
//! `cargo bench --features table --bench tables -- gen DIR LINES FILES`
//! `cargo bench --features table --bench tables -- run DIR QUERY SOURCE` (QUERY: q1, q6,
//! groupby, join; SOURCE: parquet, memory): prints `QUERY SOURCE MILLISECONDS ROWS`.

#[path = "../../examples/tables/lineitem.rs"]
mod lineitem;

use std::path::{Path, PathBuf};
use std::time::Instant;

use dagger::table::{col, count, date, lit, mean, sum, DTable, JoinType, ParquetOptions};
use dagger::Error;

fn files(dir: &Path, table: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(table))
        .expect("generated files (run `gen` first)")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    files
}

fn day(y: i32, m: u32, d: u32) -> dagger::table::Literal {
    date(y, m, d).expect("a real day")
}

/// The columns each query reads: pushed into the Parquet reader, or selected first from
/// memory (what a user of `DTable` writes; polars and DataFusion find them themselves).
fn columns(query: &str, table: &str) -> &'static [&'static str] {
    match (query, table) {
        ("q1", _) => &[
            "l_quantity",
            "l_extendedprice",
            "l_discount",
            "l_tax",
            "l_returnflag",
            "l_linestatus",
            "l_shipdate",
            "l_orderkey",
        ],
        ("q6", _) => &["l_shipdate", "l_discount", "l_quantity", "l_extendedprice"],
        ("groupby", _) => &["l_orderkey", "l_quantity"],
        ("join", "orders") => &["o_orderkey", "o_orderpriority"],
        ("join", _) => &["l_orderkey", "l_extendedprice", "l_discount"],
        (other, _) => panic!("unknown query {other}; use q1, q6, groupby or join"),
    }
}

fn q1(lineitem: &DTable) -> Result<DTable, Error> {
    lineitem
        .filter(col("l_shipdate").lt_eq(lit(day(1998, 9, 2))))?
        .with_column(
            "disc_price",
            col("l_extendedprice") * (lit(1.0) - col("l_discount")),
        )?
        .with_column("charge", col("disc_price") * (lit(1.0) + col("l_tax")))?
        .group_by(&["l_returnflag", "l_linestatus"])?
        .agg([
            sum("l_quantity"),
            sum("l_extendedprice"),
            sum("disc_price"),
            sum("charge"),
            mean("l_quantity"),
            mean("l_extendedprice"),
            mean("l_discount"),
            count("l_orderkey"),
        ])?
        .sort(&[("l_returnflag", false), ("l_linestatus", false)])
}

fn q6(lineitem: &DTable) -> Result<DTable, Error> {
    lineitem
        .filter(
            col("l_shipdate")
                .gt_eq(lit(day(1994, 1, 1)))
                .and(col("l_shipdate").lt(lit(day(1995, 1, 1))))
                .and(col("l_discount").gt_eq(lit(0.05)))
                .and(col("l_discount").lt_eq(lit(0.07)))
                .and(col("l_quantity").lt(lit(24.0))),
        )?
        .with_column("revenue", col("l_extendedprice") * col("l_discount"))?
        .group_by(&[])?
        .agg([sum("revenue")])
}

fn groupby(lineitem: &DTable) -> Result<DTable, Error> {
    lineitem
        .group_by(&["l_orderkey"])?
        .agg([sum("l_quantity"), count("l_orderkey")])
}

fn join(lineitem: &DTable, orders: &DTable) -> Result<DTable, Error> {
    lineitem
        .join_on(orders, &["l_orderkey"], &["o_orderkey"], JoinType::Inner)?
        .with_column(
            "revenue",
            col("l_extendedprice") * (lit(1.0) - col("l_discount")),
        )?
        .group_by(&["o_orderpriority"])?
        .agg([sum("revenue"), count("l_orderkey")])
}

/// Runs `query` and waits for its result's row count.
fn query_rows(query: &str, lineitem: &DTable, orders: &DTable) -> Result<usize, Error> {
    let lineitem = &reads(lineitem, query, "lineitem")?;
    let orders = &match query {
        "join" => reads(orders, query, "orders")?,
        _ => orders.clone(),
    };
    let result = match query {
        "q1" => q1(lineitem)?,
        "q6" => q6(lineitem)?,
        "groupby" => groupby(lineitem)?,
        "join" => join(lineitem, orders)?,
        other => panic!("unknown query {other}; use q1, q6, groupby or join"),
    };
    result.num_rows()
}

/// The columns of `table` that `query` reads: from Parquet, or (for `memory`) from
/// every column read and collected first, outside the timing, then selected.
fn source(dir: &Path, table: &str, query: &str, source: &str) -> Result<DTable, Error> {
    let files = files(dir, table);
    let columns = columns(query, table);
    match source {
        "parquet" => {
            let options = ParquetOptions {
                columns: Some(columns.iter().map(|c| c.to_string()).collect()),
                ..ParquetOptions::default()
            };
            DTable::read_parquet_with(&files, options)
        }
        "memory" => {
            let all = DTable::read_parquet(&files)?;
            DTable::from_batches(all.schema(), all.collect()?)
        }
        other => panic!("unknown source {other}; use parquet or memory"),
    }
}

/// `table` as the query sees it: the columns it reads.
fn reads(table: &DTable, query: &str, name: &str) -> Result<DTable, Error> {
    table.select(columns(query, name))
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["gen", dir, lines, count] => {
            let start = Instant::now();
            let lines: u64 = lines.parse().expect("LINES is a number");
            let count: usize = count.parse().expect("FILES is a number");
            lineitem::write(Path::new(dir), 42, lines, count)?;
            println!(
                "generated {lines} lines in {:.1} s",
                start.elapsed().as_secs_f64()
            );
        }
        ["run", dir, query, from] => {
            let dir = Path::new(dir);
            let start = Instant::now();
            let lineitem = source(dir, "lineitem", query, from)?;
            let orders = match query {
                "join" => source(dir, "orders", query, from)?,
                _ => lineitem.clone(),
            };
            // From memory, the tables are read and collected before the query starts;
            // from Parquet, reading is part of the query.
            let start = if from == "memory" {
                Instant::now()
            } else {
                start
            };
            let rows = query_rows(query, &lineitem, &orders)?;
            let ms = start.elapsed().as_secs_f64() * 1e3;
            println!("{query} {from} {ms:.1} {rows}");
        }
        _ => {
            // `cargo bench` without arguments: a small smoke run of every query.
            let dir =
                std::env::temp_dir().join(format!("dagger-tables-bench-{}", std::process::id()));
            lineitem::write(&dir, 42, 200_000, 4)?;
            for from in ["parquet", "memory"] {
                for name in ["q1", "q6", "groupby", "join"] {
                    let start = Instant::now();
                    let lineitem = source(&dir, "lineitem", name, from)?;
                    let orders = source(&dir, "orders", name, from)?;
                    let rows = query_rows(name, &lineitem, &orders)?;
                    println!(
                        "{name:8} {from:8} {:8.1} ms {rows} rows",
                        start.elapsed().as_secs_f64() * 1e3
                    );
                }
            }
            std::fs::remove_dir_all(&dir).map_err(|e| Error::InvalidUse(e.to_string()))?;
        }
    }
    Ok(())
}
