//! Reading and writing files, and every kind of bad input: each is an error that names
//! what is wrong (the file, the column, the row), returned before any task runs where
//! the input allows, and never a panic. Every test runs under a watchdog.

#[path = "../../tests/common/watchdog.rs"]
mod watchdog;
use watchdog::watchdog;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dagger_core::Error;
use dagger_table::arrow_array::cast::AsArray;
use dagger_table::arrow_array::types::Int64Type;
use dagger_table::arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
use dagger_table::arrow_schema::{DataType, Field, Schema, SchemaRef};
use dagger_table::{col, date, lit, sum, CsvOptions, DTable, JoinType, ParquetOptions};

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dagger-table-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("price", DataType::Float64, true),
    ]))
}

fn batch(ids: std::ops::Range<i64>) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(ids.clone())),
            Arc::new(StringArray::from_iter_values(
                ids.clone().map(|i| format!("n{i}")),
            )),
            Arc::new(Float64Array::from_iter_values(ids.map(|i| i as f64 / 2.0))),
        ],
    )
    .unwrap()
}

fn message(e: &Error) -> String {
    format!("{e} / {}", e.root_cause())
}

#[test]
fn parquet_round_trip_with_projection_filter_and_row_group_runs() {
    watchdog(60, || {
        let dir = scratch("roundtrip");
        let table = DTable::from_batches(
            schema(),
            vec![batch(0..100), batch(100..100), batch(100..250)],
        )
        .unwrap();
        let files = table.write_parquet(&dir).unwrap();
        assert_eq!(files.len(), 3);
        let back = DTable::read_parquet(&files).unwrap();
        assert_eq!(back.schema().fields(), schema().fields());
        assert_eq!(back.num_rows().unwrap(), 250);
        assert_eq!(
            back.collect_batch().unwrap(),
            table.collect_batch().unwrap()
        );

        let options = ParquetOptions {
            columns: Some(vec!["price".into(), "id".into()]),
            filter: Some(col("id").gt_eq(lit(200))),
            target_rows: 1,
        };
        let some = DTable::read_parquet_with(&files, options).unwrap();
        assert_eq!(some.schema().field(0).name(), "price");
        let got = some.collect_batch().unwrap();
        assert_eq!(got.num_rows(), 50);
        assert_eq!(got.column(1).as_primitive::<Int64Type>().value(0), 200);
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn csv_files_are_read_one_partition_each() {
    watchdog(60, || {
        let dir = scratch("csv");
        let a = dir.join("a.csv");
        let b = dir.join("b.csv");
        std::fs::write(&a, "city,units\nOslo,3\nLima,4\n").unwrap();
        std::fs::write(&b, "city,units\nOslo,5\n").unwrap();
        let t = DTable::read_csv(&[&a, &b], CsvOptions::default()).unwrap();
        assert_eq!(t.num_partitions(), 2);
        let out = t.group_by(&["city"]).unwrap().agg([sum("units")]).unwrap();
        let out = out
            .sort(&[("city", false)])
            .unwrap()
            .collect_batch()
            .unwrap();
        let units = out.column(1).as_primitive::<Int64Type>();
        assert_eq!(units.values(), &[4, 8]);
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn a_missing_file_is_named_before_any_data_is_read() {
    watchdog(30, || {
        let dir = scratch("missing");
        let good = DTable::from_batches(schema(), vec![batch(0..3)])
            .unwrap()
            .write_parquet(&dir)
            .unwrap();
        let missing = dir.join("nope.parquet");
        let err = DTable::read_parquet(&[good[0].clone(), missing]).unwrap_err();
        assert!(message(&err).contains("nope.parquet"), "{err}");
        let err = DTable::read_csv(&[dir.join("nope.csv")], CsvOptions::default()).unwrap_err();
        assert!(message(&err).contains("nope.csv"), "{err}");
        let err = DTable::read_parquet(&[] as &[&Path]).unwrap_err();
        assert!(message(&err).contains("no files"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn files_whose_schemas_differ_name_the_file_and_the_column() {
    watchdog(30, || {
        let dir = scratch("schemas");
        let a = dir.join("a.csv");
        let b = dir.join("b.csv");
        std::fs::write(&a, "city,units\nOslo,3\n").unwrap();
        std::fs::write(&b, "city,units\nOslo,three\n").unwrap();
        let err = DTable::read_csv(&[&a, &b], CsvOptions::default()).unwrap_err();
        let text = message(&err);
        assert!(text.contains("b.csv") && text.contains("`units`"), "{text}");

        let other = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
        let first = DTable::from_batches(schema(), vec![batch(0..2)])
            .unwrap()
            .write_parquet(dir.join("p1"))
            .unwrap();
        let second = DTable::from_batches(
            other.clone(),
            vec![
                RecordBatch::try_new(other, vec![Arc::new(StringArray::from(vec!["x"]))]).unwrap(),
            ],
        )
        .unwrap()
        .write_parquet(dir.join("p2"))
        .unwrap();
        let err = DTable::read_parquet(&[first[0].clone(), second[0].clone()]).unwrap_err();
        let text = message(&err);
        assert!(text.contains("p2") && text.contains("`id`"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn malformed_files_fail_their_partition_with_the_file_and_line() {
    watchdog(30, || {
        let dir = scratch("malformed");
        let bad = dir.join("bad.csv");
        std::fs::write(&bad, "a,b\n1,2\n3,oops\n").unwrap();
        let ints = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]));
        let options = CsvOptions {
            schema: Some(ints),
            ..CsvOptions::default()
        };
        let t = DTable::read_csv(&[&bad], options).unwrap();
        let err = t.collect().unwrap_err();
        let text = message(&err);
        assert!(text.contains("bad.csv") && text.contains("oops"), "{text}");
        assert!(text.contains("line"), "the row is named: {text}");

        let garbage = dir.join("garbage.parquet");
        std::fs::write(&garbage, b"PAR1 this is not parquet at all PAR1").unwrap();
        let err = DTable::read_parquet(&[&garbage]).unwrap_err();
        assert!(message(&err).contains("garbage.parquet"), "{err}");

        // A valid file cut short: the footer is gone.
        let files = DTable::from_batches(schema(), vec![batch(0..500)])
            .unwrap()
            .write_parquet(dir.join("cut"))
            .unwrap();
        let bytes = std::fs::read(&files[0]).unwrap();
        std::fs::write(&files[0], &bytes[..bytes.len() / 2]).unwrap();
        let err = DTable::read_parquet(&files).unwrap_err();
        assert!(message(&err).contains("part-00000.parquet"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn bad_expressions_and_keys_are_refused_before_any_task_runs() {
    watchdog(30, || {
        let t = DTable::from_batches(schema(), vec![batch(0..10)]).unwrap();
        let err = t.filter(col("prize").gt(lit(1.0))).unwrap_err();
        let text = message(&err);
        assert!(
            text.contains("unknown column `prize`") && text.contains("price"),
            "{text}"
        );

        let err = t.filter(col("name").gt(lit(1))).unwrap_err();
        assert!(message(&err).contains("type mismatch"), "{err}");
        let err = t.filter(col("price") + lit(1.0)).unwrap_err();
        assert!(message(&err).contains("boolean"), "{err}");
        let err = t.with_column("z", col("name") * lit(2)).unwrap_err();
        assert!(message(&err).contains("numbers"), "{err}");
        let err = t
            .filter(col("price").gt(lit(1)).and(col("id")))
            .unwrap_err();
        assert!(message(&err).contains("booleans"), "{err}");
        let err = t.select(&["id", "nope"]).unwrap_err();
        assert!(message(&err).contains("`nope`"), "{err}");
        let err = t
            .group_by(&["name"])
            .unwrap()
            .agg([sum("name")])
            .unwrap_err();
        assert!(
            message(&err).contains("sum cannot aggregate column `name`"),
            "{err}"
        );
        let err = t
            .group_by(&["name"])
            .unwrap()
            .agg([sum("id"), sum("id")])
            .unwrap_err();
        assert!(message(&err).contains("alias"), "{err}");

        let other_schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)]));
        let other = DTable::from_batches(
            other_schema.clone(),
            vec![
                RecordBatch::try_new(other_schema, vec![Arc::new(StringArray::from(vec!["1"]))])
                    .unwrap(),
            ],
        )
        .unwrap();
        let err = t.join(&other, &["id"], JoinType::Inner).unwrap_err();
        let text = message(&err);
        assert!(
            text.contains("join key `id` is Int64 on the left and Utf8 on the right"),
            "{text}"
        );
        let err = t.sort(&[]).unwrap_err();
        assert!(message(&err).contains("at least one key"), "{err}");

        let wrong =
            DTable::from_batches(schema(), vec![batch(0..1).project(&[0]).unwrap()]).unwrap_err();
        assert!(message(&wrong).contains("`name` is missing"), "{wrong}");
    });
}

#[test]
fn a_failing_partition_fails_what_depends_on_it_and_nothing_else() {
    watchdog(30, || {
        let t = DTable::from_batches(schema(), vec![batch(0..5), batch(5..10)]).unwrap();
        let mapped = t.map_batches(schema(), |b: &RecordBatch| {
            let first = b.column(0).as_primitive::<Int64Type>().value(0);
            if first == 5 {
                Err(format!("partition starting at {first} is bad"))
            } else {
                Ok(b.clone())
            }
        });
        assert!(
            mapped.partitions()[0].fetch_ref().is_ok(),
            "the other partition is fine"
        );
        let err = mapped
            .group_by(&["id"])
            .unwrap()
            .agg([sum("price")])
            .unwrap()
            .collect()
            .unwrap_err();
        assert!(message(&err).contains("starting at 5 is bad"), "{err}");
        // A map whose output does not match its declared schema.
        let wrong = t.map_batches(schema(), |b: &RecordBatch| b.project(&[0, 1]));
        let err = wrong.collect().unwrap_err();
        assert!(message(&err).contains("`price` is missing"), "{err}");
    });
}

#[test]
fn date_literals_compare_with_date_columns() {
    watchdog(30, || {
        let schema = Arc::new(Schema::new(vec![Field::new("d", DataType::Date32, true)]));
        let days =
            dagger_table::arrow_array::Date32Array::from(vec![Some(10_000), None, Some(10_600)]);
        let t = DTable::from_batches(
            schema.clone(),
            vec![RecordBatch::try_new(schema, vec![Arc::new(days)]).unwrap()],
        )
        .unwrap();
        let cutoff = date(1998, 12, 1).unwrap(); // day 10,561
        assert_eq!(
            t.filter(col("d").lt_eq(lit(cutoff)))
                .unwrap()
                .num_rows()
                .unwrap(),
            1
        );
        let err = t.filter(col("d").lt(lit(5))).unwrap_err();
        assert!(message(&err).contains("type mismatch"), "{err}");
    });
}

/// Row groups whose statistics rule the filter out are never read: their pages are
/// overwritten with garbage here, and the read still succeeds with the right rows. One
/// that may match is read (and its garbage is an error).
#[test]
fn row_groups_ruled_out_by_statistics_are_skipped() {
    watchdog(60, || {
        let dir = scratch("prune");
        let table = DTable::from_batches(
            schema(),
            vec![batch(0..100), batch(100..200), batch(200..300)],
        )
        .unwrap();
        let files = table.write_parquet(&dir).unwrap();
        // Garbage over the data pages of the first two files (the footer stays intact).
        for file in &files[..2] {
            let mut bytes = std::fs::read(file).unwrap();
            for b in &mut bytes[4..200] {
                *b = 0xAB;
            }
            std::fs::write(file, bytes).unwrap();
        }
        let read = |filter| {
            let options = ParquetOptions {
                filter: Some(filter),
                ..ParquetOptions::default()
            };
            DTable::read_parquet_with(&files, options)
                .unwrap()
                .collect_batch()
        };
        let got = read(col("id").gt_eq(lit(250)).and(col("name").gt_eq(lit("n2")))).unwrap();
        assert_eq!(got.num_rows(), 50);
        let got = read(lit(260).gt(col("id")).and(col("id").gt(lit(249)))).unwrap();
        assert_eq!(got.num_rows(), 10, "literal on the left");
        let got = read(col("price").gt(lit(140.0)).or(col("id").eq(lit(299)))).unwrap();
        assert_eq!(
            got.num_rows(),
            19,
            "or: neither side matches the garbled groups"
        );
        assert!(
            read(col("price").gt(lit(140.0)).or(col("id").eq(lit(5)))).is_err(),
            "or: one side that may match keeps a group"
        );
        // A filter that may match the garbled groups reads them, and fails.
        assert!(read(col("id").lt(lit(150))).is_err());
        assert!(read(col("id").not_eq(lit(7))).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

/// Statistics of unsigned columns are stored as signed integers: they are not used, so
/// values above i64::MAX are still found.
#[test]
fn unsigned_statistics_do_not_skip_row_groups() {
    watchdog(30, || {
        let dir = scratch("prune-unsigned");
        let schema = Arc::new(Schema::new(vec![Field::new("u", DataType::UInt64, false)]));
        let values = dagger_table::arrow_array::UInt64Array::from(vec![1, u64::MAX - 1]);
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap();
        let files = DTable::from_batches(schema, vec![batch])
            .unwrap()
            .write_parquet(&dir)
            .unwrap();
        let options = ParquetOptions {
            filter: Some(col("u").gt(lit(5))),
            ..ParquetOptions::default()
        };
        let t = DTable::read_parquet_with(&files, options).unwrap();
        assert_eq!(t.num_rows().unwrap(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    });
}
