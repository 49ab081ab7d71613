//! Tables: generates TPC-H-like `lineitem` and `orders` Parquet files (seeded, one task per
//! file), then runs a Q1-style aggregation and a join of the two, printing each result
//! and its time. Every operation is a graph of partition tasks.
//!
//! `cargo run --release --features table --example tables` (env: `LINES`, default
//! 1,000,000 lineitem rows; `DAGGER_TRACE=dir/` to see the partition tasks)

mod lineitem;

use std::time::Instant;

use dagger::table::{col, count, date, lit, mean, sum, to_text, DTable, JoinType};

fn main() -> Result<(), dagger::Error> {
    let lines: u64 = std::env::var("LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("dagger-tables-{}", std::process::id()));
    let start = Instant::now();
    let (lineitem_files, orders_files) = lineitem::write(&dir, 42, lines, 8)?;
    println!(
        "generated {} lineitem and {} orders files in {:.2} s",
        lineitem_files.len(),
        orders_files.len(),
        start.elapsed().as_secs_f64()
    );

    // TPC-H Q1: pricing summary of the lines shipped by 1998-09-02.
    let start = Instant::now();
    let lineitem = DTable::read_parquet(&lineitem_files)?;
    let cutoff = date(1998, 9, 2).expect("a real day");
    let q1 = lineitem
        .filter(col("l_shipdate").lt_eq(lit(cutoff)))?
        .with_column(
            "disc_price",
            col("l_extendedprice") * (lit(1.0) - col("l_discount")),
        )?
        .with_column("charge", col("disc_price") * (lit(1.0) + col("l_tax")))?
        .group_by(&["l_returnflag", "l_linestatus"])?
        .agg([
            sum("l_quantity").alias("sum_qty"),
            sum("l_extendedprice").alias("sum_base_price"),
            sum("disc_price").alias("sum_disc_price"),
            sum("charge").alias("sum_charge"),
            mean("l_quantity").alias("avg_qty"),
            mean("l_extendedprice").alias("avg_price"),
            mean("l_discount").alias("avg_disc"),
            count("l_orderkey").alias("count_order"),
        ])?
        .sort(&[("l_returnflag", false), ("l_linestatus", false)])?
        .collect()?;
    println!(
        "\nQ1 ({:.3} s)\n{}",
        start.elapsed().as_secs_f64(),
        to_text(&q1)?
    );

    // A join: revenue of 1995's urgent and high-priority orders, by priority.
    let start = Instant::now();
    let orders = DTable::read_parquet(&orders_files)?.filter(
        col("o_orderdate")
            .gt_eq(lit(date(1995, 1, 1).expect("a real day")))
            .and(col("o_orderdate").lt(lit(date(1996, 1, 1).expect("a real day"))))
            .and(col("o_orderpriority").lt(lit("3"))),
    )?;
    let revenue = lineitem
        .join_on(&orders, &["l_orderkey"], &["o_orderkey"], JoinType::Inner)?
        .with_column(
            "revenue",
            col("l_extendedprice") * (lit(1.0) - col("l_discount")),
        )?
        .group_by(&["o_orderpriority"])?
        .agg([sum("revenue"), count("l_orderkey").alias("lines")])?
        .sort(&[("o_orderpriority", false)])?
        .collect()?;
    println!(
        "join ({:.3} s)\n{}",
        start.elapsed().as_secs_f64(),
        to_text(&revenue)?
    );

    std::fs::remove_dir_all(&dir).map_err(|e| dagger::Error::InvalidUse(e.to_string()))?;
    Ok(())
}
