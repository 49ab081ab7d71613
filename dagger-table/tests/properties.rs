//! Every table operation on random tables (1 to 16 partitions, empty partitions, nulls,
//! unicode string keys, skewed keys) against a naive row-by-row reference written here:
//! a filter loop, a `BTreeMap` group-by, a nested-loop join, `sort_by`. Every test runs
//! under a watchdog.

#[path = "../../tests/common/watchdog.rs"]
mod watchdog;
use watchdog::watchdog;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dagger_table::arrow_array::cast::AsArray;
use dagger_table::arrow_array::types::{Float64Type, Int64Type};
use dagger_table::arrow_array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use dagger_table::arrow_schema::{DataType, Field, Schema, SchemaRef};
use dagger_table::{
    col, count, count_distinct, lit, max, mean, min, sum, DTable, JoinStrategy, JoinType,
};
use proptest::prelude::*;

/// One row: a string key, a skewed integer key, an integer and a float (a multiple of
/// 1/4, so that sums are exact in any order).
#[derive(Clone, Debug, PartialEq, PartialOrd)]
struct Row {
    k: Option<String>,
    g: Option<i64>,
    x: Option<i64>,
    y: Option<f64>,
}

const KEYS: &[&str] = &["α", "b", "日本", "", "ü", "b\u{301}", "zz", "Ω"];

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("g", DataType::Int64, true),
        Field::new("x", DataType::Int64, true),
        Field::new("y", DataType::Float64, true),
    ]))
}

fn row() -> impl Strategy<Value = Row> {
    let k = prop_oneof![
        1 => Just(None),
        6 => (0..KEYS.len()).prop_map(|i| Some(KEYS[i].to_owned())),
    ];
    // Skewed: half the rows share one key.
    let g = prop_oneof![1 => Just(None), 5 => Just(Some(0i64)), 4 => (-20i64..20).prop_map(Some)];
    let x = prop_oneof![1 => Just(None), 5 => (-1000i64..1000).prop_map(Some)];
    let y = prop_oneof![1 => Just(None), 5 => (-400i64..400).prop_map(|v| Some(v as f64 / 4.0))];
    (k, g, x, y).prop_map(|(k, g, x, y)| Row { k, g, x, y })
}

/// Rows and where they are cut into partitions (cuts may repeat: empty partitions).
fn table() -> impl Strategy<Value = (Vec<Row>, Vec<usize>)> {
    prop::collection::vec(row(), 0..120).prop_flat_map(|rows| {
        let n = rows.len();
        (Just(rows), prop::collection::vec(0..=n, 0..16))
    })
}

fn batch(rows: &[Row]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(rows.iter().map(|r| r.k.clone()).collect::<StringArray>()),
            Arc::new(rows.iter().map(|r| r.g).collect::<Int64Array>()),
            Arc::new(rows.iter().map(|r| r.x).collect::<Int64Array>()),
            Arc::new(rows.iter().map(|r| r.y).collect::<Float64Array>()),
        ],
    )
    .unwrap()
}

fn dtable(rows: &[Row], cuts: &[usize]) -> DTable {
    let mut cuts = cuts.to_vec();
    cuts.sort_unstable();
    let mut parts = Vec::new();
    let mut start = 0;
    for &c in cuts.iter().chain(std::iter::once(&rows.len())) {
        parts.push(batch(&rows[start..c]));
        start = c;
    }
    DTable::from_batches(schema(), parts).unwrap()
}

fn rows_of(batches: &[RecordBatch]) -> Vec<Row> {
    let mut out = Vec::new();
    for b in batches {
        let (k, g) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_primitive::<Int64Type>(),
        );
        let (x, y) = (
            b.column(2).as_primitive::<Int64Type>(),
            b.column(3).as_primitive::<Float64Type>(),
        );
        for i in 0..b.num_rows() {
            out.push(Row {
                k: k.is_valid(i).then(|| k.value(i).to_owned()),
                g: g.is_valid(i).then(|| g.value(i)),
                x: x.is_valid(i).then(|| x.value(i)),
                y: y.is_valid(i).then(|| y.value(i)),
            });
        }
    }
    out
}

fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    rows
}

fn i64s(b: &RecordBatch, c: usize) -> Vec<Option<i64>> {
    let a = b.column(c).as_primitive::<Int64Type>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect()
}

fn f64s(b: &RecordBatch, c: usize) -> Vec<Option<f64>> {
    let a = b.column(c).as_primitive::<Float64Type>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect()
}

fn strs(b: &RecordBatch, c: usize) -> Vec<Option<String>> {
    let a = b.column(c).as_string::<i32>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_owned()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn filter_select_and_with_column_match_a_row_loop((rows, cuts) in table(), bound in -500i64..500) {
        watchdog(60, move || {
            let t = dtable(&rows, &cuts);
            // SQL logic: null compares to null, and a null condition drops the row.
            let kept = t.filter(col("x").gt(lit(bound)).and(col("k").not_eq(lit("b"))))
                .unwrap().collect().unwrap();
            let want: Vec<Row> = rows.iter().filter(|r| {
                r.x.is_some_and(|x| x > bound) && r.k.as_deref().is_some_and(|k| k != "b")
            }).cloned().collect();
            assert_eq!(rows_of(&kept), want, "filter keeps partition order");

            let computed = t.with_column("z", col("x") * lit(2) + col("g")).unwrap()
                .select(&["z", "k"]).unwrap().collect_batch().unwrap();
            let want: Vec<Option<i64>> = rows.iter().map(|r| Some(r.x? * 2 + r.g?)).collect();
            assert_eq!(i64s(&computed, 0), want);
            assert_eq!(strs(&computed, 1), rows.iter().map(|r| r.k.clone()).collect::<Vec<_>>());
            assert_eq!(t.num_rows().unwrap(), rows.len());
        });
    }

    #[test]
    fn group_by_matches_a_btreemap((rows, cuts) in table()) {
        watchdog(60, move || {
            let t = dtable(&rows, &cuts);
            let out = t.group_by(&["k", "g"]).unwrap()
                .agg([sum("x"), mean("y"), min("x"), max("k"), count("y"), count_distinct("x"), sum("y").alias("sy")])
                .unwrap().collect_batch().unwrap();
            #[derive(Default)]
            struct Acc { xs: Vec<i64>, ys: Vec<f64>, ks: Vec<String> }
            let mut want: BTreeMap<(Option<String>, Option<i64>), Acc> = BTreeMap::new();
            for r in &rows {
                let acc = want.entry((r.k.clone(), r.g)).or_default();
                acc.xs.extend(r.x);
                acc.ys.extend(r.y);
                acc.ks.extend(r.k.clone());
            }
            assert_eq!(out.num_rows(), want.len(), "one row per group");
            let (k, g) = (strs(&out, 0), i64s(&out, 1));
            let (sx, my, mnx, mxk) = (i64s(&out, 2), f64s(&out, 3), i64s(&out, 4), strs(&out, 5));
            let (cy, cdx, sy) = (i64s(&out, 6), i64s(&out, 7), f64s(&out, 8));
            for i in 0..out.num_rows() {
                let acc = &want[&(k[i].clone(), g[i])];
                let nonempty = |v: &Vec<i64>| (!v.is_empty()).then_some(());
                assert_eq!(sx[i], nonempty(&acc.xs).map(|_| acc.xs.iter().sum::<i64>()));
                assert_eq!(my[i], (!acc.ys.is_empty()).then(|| acc.ys.iter().sum::<f64>() / acc.ys.len() as f64));
                assert_eq!(mnx[i], acc.xs.iter().copied().min());
                assert_eq!(mxk[i], acc.ks.iter().max().cloned());
                assert_eq!(cy[i], Some(acc.ys.len() as i64));
                assert_eq!(cdx[i], Some(acc.xs.iter().collect::<BTreeSet<_>>().len() as i64));
                assert_eq!(sy[i], (!acc.ys.is_empty()).then(|| acc.ys.iter().sum::<f64>()));
            }
        });
    }

    #[test]
    fn joins_match_a_nested_loop(
        (left, lcuts) in table(),
        (right, rcuts) in table(),
        buckets in 1usize..6,
    ) {
        watchdog(60, move || {
            let (l, r) = (dtable(&left, &lcuts), dtable(&right, &rcuts));
            let strategies = [JoinStrategy::Auto, JoinStrategy::Broadcast, JoinStrategy::Partitioned(buckets)];
            for how in [JoinType::Inner, JoinType::Left, JoinType::Right, JoinType::Full, JoinType::Semi, JoinType::Anti] {
                let want = nested_loop(&left, &right, how);
                for strategy in strategies {
                    let got = l.join_with(&r, &["k", "g"], &["k", "g"], how, strategy).unwrap().collect().unwrap();
                    assert_eq!(sorted_joined(&got, how), want, "{how:?} {strategy:?}");
                }
            }
        });
    }

    #[test]
    fn sort_matches_sort_by((rows, cuts) in table()) {
        watchdog(60, move || {
            let t = dtable(&rows, &cuts);
            let out = t.sort(&[("g", false), ("x", true)]).unwrap();
            assert_eq!(out.num_partitions(), t.num_partitions());
            let got = rows_of(&out.collect().unwrap());
            // Nulls after values ascending, before them descending.
            let asc = |v: Option<i64>| (v.is_none(), v);
            let desc = |v: Option<i64>| (v.is_some(), std::cmp::Reverse(v));
            let mut want = rows.clone();
            want.sort_by_key(|r| (asc(r.g), desc(r.x)));
            let keys = |rows: &[Row]| rows.iter().map(|r| (r.g, r.x)).collect::<Vec<_>>();
            assert_eq!(keys(&got), keys(&want), "the key sequence");
            assert_eq!(sorted(got), sorted(want), "the same rows");
        });
    }
}

/// A joined row: the left row (or its key only), and the right row's `x` and `y` (the
/// right side's other columns).
type Joined = (Row, Option<i64>, Option<f64>);

fn nested_loop(left: &[Row], right: &[Row], how: JoinType) -> Vec<Joined> {
    let matches = |a: &Row, b: &Row| a.k.is_some() && a.g.is_some() && a.k == b.k && a.g == b.g;
    let mut out = Vec::new();
    for a in left {
        let found: Vec<&Row> = right.iter().filter(|b| matches(a, b)).collect();
        match how {
            JoinType::Semi if !found.is_empty() => out.push((a.clone(), None, None)),
            JoinType::Anti if found.is_empty() => out.push((a.clone(), None, None)),
            JoinType::Semi | JoinType::Anti => {}
            _ => {
                for b in &found {
                    out.push((a.clone(), b.x, b.y));
                }
                if found.is_empty() && matches!(how, JoinType::Left | JoinType::Full) {
                    out.push((a.clone(), None, None));
                }
            }
        }
    }
    if matches!(how, JoinType::Right | JoinType::Full) {
        for b in right {
            if !left.iter().any(|a| matches(a, b)) {
                let key_only = Row {
                    k: b.k.clone(),
                    g: b.g,
                    x: None,
                    y: None,
                };
                out.push((key_only, b.x, b.y));
            }
        }
    }
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

fn sorted_joined(batches: &[RecordBatch], how: JoinType) -> Vec<Joined> {
    let mut out = Vec::new();
    for b in batches {
        let left = rows_of(&[b.project(&[0, 1, 2, 3]).unwrap()]);
        let (x, y) = if matches!(how, JoinType::Semi | JoinType::Anti) {
            assert_eq!(b.num_columns(), 4, "left columns only");
            (vec![None; b.num_rows()], vec![None; b.num_rows()])
        } else {
            assert_eq!(b.schema().field(4).name(), "x_right");
            (i64s(b, 4), f64s(b, 5))
        };
        out.extend(left.into_iter().zip(x).zip(y).map(|((r, x), y)| (r, x, y)));
    }
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}
