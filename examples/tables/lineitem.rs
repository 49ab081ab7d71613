//! A seeded generator of TPC-H-like `lineitem` and `orders` tables (the columns that Q1,
//! Q6 and an orders join read), written as Parquet files. Values follow TPC-H's ranges:
//! ship dates from 1992 to 1998, quantities 1 to 50, discounts 0 to 10%, taxes 0 to 8%,
//! about four lines per order. The same seed gives the same files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dagger::table::arrow_array::{Date32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use dagger::table::arrow_schema::{DataType, Field, Schema, SchemaRef};
use dagger::table::DTable;

/// splitmix64: small, fast and good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

/// 1992-01-01 and 1998-08-02 in days since 1970-01-01.
const FIRST_DAY: i64 = 8035;
const LAST_ORDER_DAY: i64 = 10_440;

pub fn lineitem_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("l_orderkey", DataType::Int64, false),
        Field::new("l_quantity", DataType::Float64, false),
        Field::new("l_extendedprice", DataType::Float64, false),
        Field::new("l_discount", DataType::Float64, false),
        Field::new("l_tax", DataType::Float64, false),
        Field::new("l_returnflag", DataType::Utf8, false),
        Field::new("l_linestatus", DataType::Utf8, false),
        Field::new("l_shipdate", DataType::Date32, false),
    ]))
}

pub fn orders_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("o_orderkey", DataType::Int64, false),
        Field::new("o_custkey", DataType::Int64, false),
        Field::new("o_orderdate", DataType::Date32, false),
        Field::new("o_orderpriority", DataType::Utf8, false),
    ]))
}

const PRIORITIES: [&str; 5] = ["1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED", "5-LOW"];

/// The orders `first..first + count` and their lines (1 to 7 each).
fn generate(seed: u64, first: i64, count: i64) -> (RecordBatch, RecordBatch) {
    let mut rng = Rng(seed ^ (first as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let (mut okey, mut cust, mut odate, mut prio) = (vec![], vec![], vec![], vec![]);
    let (mut lkey, mut qty, mut price, mut disc, mut tax) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut flag, mut status, mut ship) = (vec![], vec![], vec![]);
    for key in first..first + count {
        let order_day = rng.range(FIRST_DAY, LAST_ORDER_DAY);
        okey.push(key);
        cust.push(rng.range(1, 150_000));
        odate.push(order_day as i32);
        prio.push(PRIORITIES[rng.range(0, 4) as usize]);
        for _ in 0..rng.range(1, 7) {
            let q = rng.range(1, 50);
            let ship_day = order_day + rng.range(1, 121);
            lkey.push(key);
            qty.push(q as f64);
            price.push(q as f64 * rng.range(90_000, 200_000) as f64 / 100.0);
            disc.push(rng.range(0, 10) as f64 / 100.0);
            tax.push(rng.range(0, 8) as f64 / 100.0);
            // 1995-06-17: lines shipped before are filled (F), later ones open (O).
            let shipped = ship_day <= 9298;
            flag.push(if shipped {
                ["R", "A"][rng.range(0, 1) as usize]
            } else {
                "N"
            });
            status.push(if shipped { "F" } else { "O" });
            ship.push(ship_day as i32);
        }
    }
    let orders = RecordBatch::try_new(
        orders_schema(),
        vec![
            Arc::new(Int64Array::from(okey)),
            Arc::new(Int64Array::from(cust)),
            Arc::new(Date32Array::from(odate)),
            Arc::new(StringArray::from(prio)),
        ],
    )
    .expect("columns match the schema");
    let lines = RecordBatch::try_new(
        lineitem_schema(),
        vec![
            Arc::new(Int64Array::from(lkey)),
            Arc::new(Float64Array::from(qty)),
            Arc::new(Float64Array::from(price)),
            Arc::new(Float64Array::from(disc)),
            Arc::new(Float64Array::from(tax)),
            Arc::new(StringArray::from(flag)),
            Arc::new(StringArray::from(status)),
            Arc::new(Date32Array::from(ship)),
        ],
    )
    .expect("columns match the schema");
    (lines, orders)
}

/// Writes about `lines` lineitem rows (and a quarter as many orders) into `files` Parquet
/// files each under `dir/lineitem` and `dir/orders`, generated in parallel, one task per
/// file. Returns the two lists of paths.
pub fn write(
    dir: &Path,
    seed: u64,
    lines: u64,
    files: usize,
) -> Result<(Vec<PathBuf>, Vec<PathBuf>), dagger::Error> {
    let orders_per_file = (lines / 4).div_ceil(files as u64).max(1) as i64;
    let (mut line_parts, mut order_parts) = (vec![], vec![]);
    for f in 0..files as i64 {
        let both = dagger::spawn(move || generate(seed, 1 + f * orders_per_file, orders_per_file));
        line_parts.push(dagger::spawn_with(
            &both,
            |b: &(RecordBatch, RecordBatch)| b.0.clone(),
        ));
        order_parts.push(dagger::spawn_with(both, |b: (RecordBatch, RecordBatch)| {
            b.1
        }));
    }
    let lineitem = DTable::from_partitions(lineitem_schema(), line_parts)
        .write_parquet(dir.join("lineitem"))?;
    let orders =
        DTable::from_partitions(orders_schema(), order_parts).write_parquet(dir.join("orders"))?;
    Ok((lineitem, orders))
}
