//! Regression tests from an outside review of dagger-table: each failed on the reviewed
//! code and showed one problem (a wrong answer, silent data loss, or an error for valid
//! input); each comment says what it showed and where the cause was.

#[path = "../../tests/common/watchdog.rs"]
mod watchdog;
use watchdog::watchdog;

use std::path::PathBuf;
use std::sync::Arc;

use dagger_table::arrow_array::cast::AsArray;
use dagger_table::arrow_array::types::{Float64Type, Int32Type, Int64Type, Int8Type, UInt64Type};
use dagger_table::arrow_array::{
    Array, ArrayRef, DictionaryArray, Float64Array, Int32Array, Int64Array, NullArray, RecordBatch,
    StringArray, UInt64Array,
};
use dagger_table::arrow_schema::{DataType, Field, Schema, SchemaRef};
use dagger_table::{
    col, count, count_distinct, lit, max, mean, sum, CsvOptions, DTable, JoinType, ParquetOptions,
};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dagger-review-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn table(columns: Vec<(&str, ArrayRef)>) -> DTable {
    let schema: SchemaRef = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    DTable::from_batches(schema, vec![batch]).unwrap()
}

fn int(b: &RecordBatch, column: usize, row: usize) -> Option<i64> {
    let c = b.column(column).as_primitive::<Int64Type>();
    c.is_valid(row).then(|| c.value(row))
}

/// UInt64 values above i64::MAX become null in expressions: both sides of a comparison
/// or arithmetic between integers are cast to Int64 with a "safe" (overflow -> null)
/// cast, so `u > 0` is null for u = u64::MAX and the row is filtered out.
/// Cause: expr.rs `common_type` (Int64 for any two integer types) + `cast`.
#[test]
fn uint64_above_i64_max_is_dropped_by_filter() {
    watchdog(30, || {
        let t = table(vec![("u", Arc::new(UInt64Array::from(vec![1, u64::MAX])))]);
        let kept = t.filter(col("u").gt(lit(0))).unwrap().num_rows().unwrap();
        assert_eq!(kept, 2, "u64::MAX > 0 should be true");
    })
}

/// The same cast in the aggregates: sum/max/mean of a UInt64 column silently ignore
/// values above i64::MAX (they are read as nulls). Here sum/max/mean come out as 1.
/// Cause: group.rs `Values::of` (cast to Int64, Reading::Integer).
#[test]
fn uint64_above_i64_max_is_ignored_by_sum_max_mean() {
    watchdog(30, || {
        let big = u64::MAX / 2 + 10; // > i64::MAX
        let t = table(vec![
            ("k", Arc::new(Int64Array::from(vec![1, 1]))),
            ("u", Arc::new(UInt64Array::from(vec![1, big]))),
        ]);
        let r = t
            .group_by(&["k"])
            .unwrap()
            .agg([sum("u"), max("u"), mean("u")])
            .unwrap()
            .collect_batch()
            .unwrap();
        // UInt64 sums and extremes stay UInt64.
        let unsigned = |c: usize| r.column(c).as_primitive::<UInt64Type>().value(0);
        assert_eq!(unsigned(1), big + 1, "sum");
        assert_eq!(unsigned(2), big, "max");
        let mean = r.column(3).as_primitive::<Float64Type>().value(0);
        assert_eq!(mean, (big as f64 + 1.0) / 2.0, "mean");
    })
}

/// `group_by(&[])` (a whole-table aggregate) returns zero rows instead of one: arrow's
/// RowConverter with no columns yields 0 rows, so no group is ever made.
/// Cause: keys.rs `rows` / group.rs `Partial::of` (row count taken from the key rows).
#[test]
fn group_by_without_keys_gives_no_rows() {
    watchdog(30, || {
        let t = table(vec![("x", Arc::new(Int64Array::from(vec![1, 2, 3])))]);
        let r = t
            .group_by(&[])
            .unwrap()
            .agg([sum("x"), count("x")])
            .unwrap()
            .collect_batch()
            .unwrap();
        assert_eq!(r.num_rows(), 1, "one row: sum 6, count 3");
    })
}

/// A CSV column that is empty in the first `infer_rows` (1000) lines is inferred as
/// DataType::Null, and arrow-csv then reads *every* value of it as null: the 300
/// values after line 1200 are lost without an error. (With `infer_rows: 0`, every
/// column of every file is lost.)
/// Cause: io.rs `read_csv` uses the inferred Null type as is for reading.
#[test]
fn csv_sparse_column_loses_values_after_the_inference_window() {
    watchdog(30, || {
        let dir = scratch("sparse");
        let path = dir.join("a.csv");
        let mut text = String::from("id,x\n");
        for i in 0..1500 {
            if i < 1200 {
                text.push_str(&format!("{i},\n"));
            } else {
                text.push_str(&format!("{i},{i}\n"));
            }
        }
        std::fs::write(&path, text).unwrap();
        let t = DTable::read_csv(&[&path], CsvOptions::default()).unwrap();
        let b = t.collect_batch().unwrap();
        assert_eq!(
            b.column(1).logical_null_count(),
            1200,
            "300 values were read"
        );
    })
}

/// A header-only CSV file (an empty partition) cannot be read together with other
/// files: its columns infer as Null and the files "do not have the same schema".
/// Likewise a column that is all integers in one file and has a 2.5 in another.
/// Cause: io.rs `check_same_schemas` demands identical inferred schemas, no merging.
#[test]
fn csv_header_only_file_cannot_join_other_files() {
    watchdog(30, || {
        let dir = scratch("hdr");
        let (a, b) = (dir.join("a.csv"), dir.join("b.csv"));
        std::fs::write(&a, "id,x\n").unwrap();
        std::fs::write(&b, "id,x\n1,2\n").unwrap();
        let t = DTable::read_csv(&[&a, &b], CsvOptions::default());
        assert_eq!(t.unwrap().num_rows().unwrap(), 1);
    })
}

/// `count` tests `Array::is_valid`, which only looks at the null buffer: a Null-typed
/// column (what CSV inference gives an empty column) counts every row, and
/// count_distinct of it is 1. Same for a dictionary whose values hold the null.
/// Cause: group.rs `Values::add` (`column.is_valid(i)`), not logical nulls.
#[test]
fn count_of_null_typed_column_counts_every_row() {
    watchdog(30, || {
        let t = table(vec![
            ("k", Arc::new(Int64Array::from(vec![1, 1, 1]))),
            ("n", Arc::new(NullArray::new(3))),
        ]);
        let r = t
            .group_by(&["k"])
            .unwrap()
            .agg([count("n"), count_distinct("n")])
            .unwrap()
            .collect_batch()
            .unwrap();
        assert_eq!(int(&r, 1, 0), Some(0), "count of an all-null column");
        assert_eq!(
            int(&r, 2, 0),
            Some(0),
            "count_distinct of an all-null column"
        );
    })
}

#[test]
fn count_of_dictionary_with_null_value_counts_nulls() {
    watchdog(30, || {
        let values = StringArray::from(vec![Some("a"), None]);
        let d = DictionaryArray::<Int32Type>::try_new(
            Int32Array::from(vec![0, 1, 1]),
            Arc::new(values),
        )
        .unwrap();
        let t = table(vec![("d", Arc::new(d))]);
        // (grouped by a constant key: group_by(&[]) is broken, above)
        let r = t
            .with_column("one", lit(1))
            .unwrap()
            .group_by(&["one"])
            .unwrap()
            .agg([count("d")])
            .unwrap()
            .collect_batch()
            .unwrap();
        assert_eq!(int(&r, 1, 0), Some(1), "rows 1 and 2 are null");
    })
}

/// Null keys are documented to match nothing, but a Null-typed key column is not seen
/// as null (`is_null` reads the null buffer) and every row matches every row: a 3x3
/// cross product instead of an empty inner join.
/// Cause: keys.rs `rows_and_nulls` (`c.is_null(i)` instead of logical nulls).
#[test]
fn join_on_null_typed_key_is_a_cross_product() {
    watchdog(30, || {
        let t = table(vec![
            ("n", Arc::new(NullArray::new(3))),
            ("x", Arc::new(Int64Array::from(vec![1, 2, 3]))),
        ]);
        let r = t.join(&t, &["n"], JoinType::Inner).unwrap();
        assert_eq!(r.num_rows().unwrap(), 0);
    })
}

/// A right/full join whose left key is a Dictionary(Int8, Utf8) and right key Utf8
/// (accepted: same value type) fails when more than 128 right rows are unmatched: the
/// unmatched right keys are cast to the left's dictionary type and the Int8 keys
/// overflow ("Dictionary key bigger than the key type").
/// Cause: join.rs `unmatched_right`, `arrow_cast::cast(&taken, field.data_type())`.
#[test]
fn right_join_with_small_dictionary_left_key_fails() {
    watchdog(30, || {
        let dict: DictionaryArray<Int8Type> = vec!["zzz"].into_iter().collect();
        let l = table(vec![("k", Arc::new(dict))]);
        let values: Vec<String> = (0..300).map(|i| format!("v{i}")).collect();
        let r = table(vec![("k", Arc::new(StringArray::from(values)))]);
        let out = l.join(&r, &["k"], JoinType::Right).unwrap();
        assert_eq!(out.num_rows().unwrap(), 300);
    })
}

/// Float comparisons in expressions use arrow's total order: -0.0 == 0.0 is false
/// (IEEE, SQL and Julia `==` all say true), and NaN > 0.5 is true.
/// Cause: expr.rs `evaluate`, arrow_ord::cmp kernels used as-is for floats.
#[test]
fn float_equality_misses_negative_zero() {
    watchdog(30, || {
        let t = table(vec![(
            "f",
            Arc::new(Float64Array::from(vec![0.0, -0.0, f64::NAN, 1.0])),
        )]);
        let zero = t.filter(col("f").eq(lit(0.0))).unwrap().num_rows().unwrap();
        assert_eq!(zero, 2, "-0.0 == 0.0");
    })
}

/// An empty projection is an error for Parquet (the reader's zero-column batches are
/// rebuilt with `RecordBatch::try_new`, which needs a row count), while `select(&[])`
/// on the same table keeps the 3 rows.
/// Cause: io.rs `read_row_groups`, `RecordBatch::try_new(schema, columns)`.
#[test]
fn parquet_empty_projection_fails() {
    watchdog(30, || {
        let t = table(vec![("x", Arc::new(Int64Array::from(vec![1, 2, 3])))]);
        assert_eq!(t.select(&[]).unwrap().num_rows().unwrap(), 3);
        let files = t.write_parquet(scratch("proj")).unwrap();
        let options = ParquetOptions {
            columns: Some(vec![]),
            ..Default::default()
        };
        let r = DTable::read_parquet_with(&files, options).unwrap();
        assert_eq!(r.num_rows().unwrap(), 3);
    })
}

/// A batch whose field is non-nullable (what `RecordBatch::try_from_iter` makes when a
/// column has no nulls) is rejected by a nullable schema with a false message: "its
/// columns are in another order". Cause: table.rs `schema_difference` only reports
/// the opposite nullability case and falls through to the "order" message.
#[test]
fn nullability_mismatch_is_reported_as_column_order() {
    watchdog(30, || {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
        let batch = RecordBatch::try_from_iter(vec![(
            "x",
            Arc::new(Int64Array::from(vec![1])) as ArrayRef,
        )])
        .unwrap();
        match DTable::from_batches(schema, vec![batch]) {
            Ok(_) => {}
            Err(e) => assert!(
                !e.to_string().contains("another order"),
                "misleading error: {e}"
            ),
        }
    })
}

/// Between an unsigned and a signed column there is no common integer type for every
/// value: one that does not fit Int64 is an error, never a null.
#[test]
fn a_value_that_does_not_fit_the_common_type_is_an_error() {
    watchdog(30, || {
        let t = table(vec![
            ("u", Arc::new(UInt64Array::from(vec![1, u64::MAX]))),
            ("i", Arc::new(Int64Array::from(vec![0, -1]))),
        ]);
        let err = t
            .filter(col("u").gt(col("i")))
            .unwrap()
            .collect()
            .unwrap_err();
        assert!(
            err.root_cause()
                .to_string()
                .contains("`(col(\"u\") > col(\"i\"))`"),
            "{err}"
        );
    })
}

/// A group-by with no aggregates keeps every group of every partition (a merge once kept
/// only the smaller side when there were no aggregate states).
#[test]
fn group_by_without_aggregates_keeps_every_group() {
    watchdog(30, || {
        let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
        let part = |v: Vec<i64>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from(v)) as ArrayRef],
            )
            .unwrap()
        };
        let t = DTable::from_batches(
            schema.clone(),
            vec![part(vec![1, 2, 3, 4]), part(vec![5, 1]), part(vec![6])],
        )
        .unwrap();
        let groups = t.group_by(&["k"]).unwrap().agg([]).unwrap();
        assert_eq!(groups.num_rows().unwrap(), 6);
    })
}

/// Every NaN is one value, equal to itself and above every number, whatever its sign bit
/// (x86 makes negative NaNs from 0/0); Parquet statistics, which leave NaN out, then skip
/// no row group a filter would keep a row of.
#[test]
fn negative_nan_is_nan_in_filters_and_pruning() {
    watchdog(30, || {
        let t = table(vec![(
            "x",
            Arc::new(Float64Array::from(vec![-f64::NAN, 5.0, f64::NAN])),
        )]);
        let count = |t: &DTable, e| t.filter(e).unwrap().num_rows().unwrap();
        assert_eq!(count(&t, col("x").lt(lit(3.0))), 0);
        assert_eq!(count(&t, col("x").gt(lit(3.0))), 3);
        assert_eq!(count(&t, col("x").eq(lit(f64::NAN))), 2);
        let files = t.write_parquet(scratch("nan")).unwrap();
        for (filter, want) in [
            (col("x").lt(lit(3.0)), 0),
            (col("x").gt(lit(6.0)), 2),
            (col("x").not_eq(lit(5.0)), 2),
        ] {
            let options = ParquetOptions {
                filter: Some(filter.clone()),
                ..Default::default()
            };
            let read = DTable::read_parquet_with(&files, options).unwrap();
            assert_eq!(read.num_rows().unwrap(), want, "{filter}");
        }
    })
}
