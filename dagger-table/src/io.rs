//! Reading tables from Parquet and CSV files and writing them to Parquet. Schemas are read
//! first, one task per file, and checked against each other before any data is read;
//! then every partition (a file, or a run of a Parquet file's row groups) is read by a
//! task of its own.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{RecordBatch, RecordBatchOptions};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use dagger_core::{try_spawn_with, BoxError, Error, Handle};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::{ArrowWriter, ProjectionMask};

use crate::expr::{arrow, Expr};
use crate::table::{conform, schema_difference, DTable};

/// How [`DTable::read_parquet_with`] reads.
#[derive(Clone, Debug)]
pub struct ParquetOptions {
    /// Read only these columns (all when `None`).
    pub columns: Option<Vec<String>>,
    /// Keep only the rows for which this is true, applied as each partition is read.
    pub filter: Option<Expr>,
    /// A partition holds a run of a file's row groups of at most this many rows (at least
    /// one row group).
    pub target_rows: usize,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            columns: None,
            filter: None,
            target_rows: 1 << 20,
        }
    }
}

/// How [`DTable::read_csv`] reads.
#[derive(Clone, Debug)]
pub struct CsvOptions {
    /// Whether the first line names the columns.
    pub has_header: bool,
    /// The field delimiter.
    pub delimiter: u8,
    /// The schema; inferred from each file (and checked to agree) when `None`.
    pub schema: Option<SchemaRef>,
    /// Lines read to infer a schema.
    pub infer_rows: usize,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            has_header: true,
            delimiter: b',',
            schema: None,
            infer_rows: 1000,
        }
    }
}

fn io_error(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::InvalidUse(format!("{what} `{}`: {e}", path.display()))
}

fn open(path: &Path) -> Result<File, Error> {
    File::open(path).map_err(|e| io_error(path, "cannot open", e))
}

/// Every file's schema-reading result, waited for; the first error is returned.
fn fetch_all<T: Clone + Send + Sync + 'static>(handles: Vec<Handle<T>>) -> Result<Vec<T>, Error> {
    handles
        .into_iter()
        .map(|h| h.fetch().map_err(|e| e.root_cause().clone()))
        .collect()
}

/// One schema for CSV files whose schemas were inferred one by one: a column with no
/// values in a file's sample (Null) takes the other files' type, Int64 and Float64 make
/// Float64, and a column with no values anywhere is read as text (never as nulls). Names
/// must agree; other differences are errors that name the file and column.
fn merge_inferred(paths: &[PathBuf], schemas: &[SchemaRef]) -> Result<SchemaRef, Error> {
    let Some(first) = schemas.first() else {
        return Err(Error::InvalidUse("no files to read".into()));
    };
    let mut types: Vec<DataType> = first
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    for (path, schema) in paths.iter().zip(schemas).skip(1) {
        let names = |s: &Schema| {
            s.fields()
                .iter()
                .map(|f| f.name().clone())
                .collect::<Vec<_>>()
        };
        if names(schema) != names(first) {
            return Err(Error::InvalidUse(format!(
                "`{}` does not have the columns of `{}`: {}",
                path.display(),
                paths[0].display(),
                schema_difference(first, schema)
            )));
        }
        for (t, field) in types.iter_mut().zip(schema.fields()) {
            *t = match (&*t, field.data_type()) {
                (a, b) if a == b => a.clone(),
                (DataType::Null, b) => b.clone(),
                (a, DataType::Null) => a.clone(),
                (DataType::Int64, DataType::Float64) | (DataType::Float64, DataType::Int64) => {
                    DataType::Float64
                }
                (a, b) => {
                    return Err(Error::InvalidUse(format!(
                        "column `{}` is {b} in `{}` but {a} in earlier files; give \
                         `CsvOptions::schema`",
                        field.name(),
                        path.display()
                    )))
                }
            };
        }
    }
    let fields: Vec<Field> = first
        .fields()
        .iter()
        .zip(types)
        .map(|(f, t)| {
            let t = if t == DataType::Null {
                DataType::Utf8
            } else {
                t
            };
            Field::new(f.name(), t, true)
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// An error unless every file's schema equals the first's.
fn check_same_schemas(paths: &[PathBuf], schemas: &[SchemaRef]) -> Result<SchemaRef, Error> {
    let Some(first) = schemas.first() else {
        return Err(Error::InvalidUse("no files to read".into()));
    };
    for (path, schema) in paths.iter().zip(schemas).skip(1) {
        if schema.fields() != first.fields() {
            return Err(Error::InvalidUse(format!(
                "`{}` does not have the schema of `{}`: {}",
                path.display(),
                paths[0].display(),
                schema_difference(first, schema)
            )));
        }
    }
    Ok(first.clone())
}

impl DTable {
    /// Reads Parquet files: [`read_parquet_with`](DTable::read_parquet_with) with the
    /// default options.
    pub fn read_parquet(paths: &[impl AsRef<Path>]) -> Result<DTable, Error> {
        Self::read_parquet_with(paths, ParquetOptions::default())
    }

    /// Reads Parquet files. Returns once every file's schema has been read (in parallel)
    /// and checked; the data is read by one task per partition.
    pub fn read_parquet_with(
        paths: &[impl AsRef<Path>],
        options: ParquetOptions,
    ) -> Result<DTable, Error> {
        let paths: Vec<PathBuf> = paths.iter().map(|p| p.as_ref().to_owned()).collect();
        let metadata = fetch_all(
            paths
                .iter()
                .map(|path| {
                    let path = path.clone();
                    try_spawn_with((), move || {
                        let file = open(&path)?;
                        ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
                            .map_err(|e| io_error(&path, "cannot read the Parquet footer of", e))
                    })
                })
                .collect(),
        )?;
        let schemas: Vec<SchemaRef> = metadata.iter().map(|m| m.schema().clone()).collect();
        let file_schema = check_same_schemas(&paths, &schemas)?;
        let projection = match &options.columns {
            None => None,
            Some(columns) => Some(
                columns
                    .iter()
                    .map(|c| {
                        file_schema
                            .index_of(c)
                            .map_err(|_| crate::expr::unknown_column(&file_schema, c))
                    })
                    .collect::<Result<Vec<usize>, Error>>()?,
            ),
        };
        let schema = match &projection {
            Some(p) => Arc::new(file_schema.project(p).map_err(arrow)?),
            None => file_schema.clone(),
        };
        if let Some(filter) = &options.filter {
            let t = filter.data_type(&schema)?;
            if t != arrow_schema::DataType::Boolean {
                return Err(Error::InvalidUse(format!(
                    "a filter needs a boolean expression; `{filter}` is {t}"
                )));
            }
        }
        let filter = options.filter.map(Arc::new);
        let mut parts = Vec::new();
        for (path, meta) in paths.iter().zip(metadata) {
            for row_groups in runs(&meta, options.target_rows, filter.as_deref()) {
                let (path, meta, schema) = (path.clone(), meta.clone(), schema.clone());
                let (projection, filter) = (projection.clone(), filter.clone());
                parts.push(try_spawn_with((), move || {
                    read_row_groups(
                        &path,
                        meta,
                        row_groups,
                        projection,
                        &schema,
                        filter.as_deref(),
                    )
                }));
            }
        }
        Ok(DTable { schema, parts })
    }

    /// Reads CSV files, one partition per file. Returns once every file's schema is known
    /// (given, or inferred from each file in parallel and checked to agree).
    pub fn read_csv(paths: &[impl AsRef<Path>], options: CsvOptions) -> Result<DTable, Error> {
        let paths: Vec<PathBuf> = paths.iter().map(|p| p.as_ref().to_owned()).collect();
        let format = arrow_csv::reader::Format::default()
            .with_header(options.has_header)
            .with_delimiter(options.delimiter);
        let schema = match &options.schema {
            Some(schema) => {
                if paths.is_empty() {
                    return Err(Error::InvalidUse("no files to read".into()));
                }
                for path in &paths {
                    std::fs::metadata(path).map_err(|e| io_error(path, "cannot open", e))?;
                }
                schema.clone()
            }
            None => {
                let inferred = fetch_all(
                    paths
                        .iter()
                        .map(|path| {
                            let (path, format) = (path.clone(), format.clone());
                            let rows = options.infer_rows;
                            try_spawn_with((), move || {
                                let file = open(&path)?;
                                let (schema, _) = format
                                    .infer_schema(std::io::BufReader::new(file), Some(rows))
                                    .map_err(|e| {
                                        io_error(&path, "cannot read a CSV header from", e)
                                    })?;
                                Ok::<_, Error>(Arc::new(schema))
                            })
                        })
                        .collect(),
                )?;
                merge_inferred(&paths, &inferred)?
            }
        };
        let parts = paths
            .iter()
            .map(|path| {
                let (path, schema, format) = (path.clone(), schema.clone(), format.clone());
                try_spawn_with((), move || read_csv_file(&path, &schema, format))
            })
            .collect();
        Ok(DTable { schema, parts })
    }

    /// A table of one partition per path, each made by `load(path)`, which must return
    /// `schema`'s columns.
    pub fn from_loader<F, E>(paths: &[impl AsRef<Path>], schema: SchemaRef, load: F) -> DTable
    where
        F: Fn(&Path) -> Result<RecordBatch, E> + Send + Sync + 'static,
        E: Into<BoxError>,
    {
        let load = Arc::new(load);
        let parts = paths
            .iter()
            .map(|path| {
                let (path, load, schema) = (path.as_ref().to_owned(), load.clone(), schema.clone());
                try_spawn_with((), move || {
                    let batch =
                        load(&path).map_err(|e| io_error(&path, "cannot load", e.into()))?;
                    conform(&schema, batch)
                        .map_err(|e| io_error(&path, "the partition loaded from", e))
                })
            })
            .collect();
        DTable { schema, parts }
    }

    /// Writes one Parquet file per partition into `dir` (created if missing):
    /// `part-00000.parquet`, ... Returns the paths once every file is written.
    pub fn write_parquet(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, Error> {
        let dir = dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, "cannot create", e))?;
        let written: Vec<Handle<PathBuf>> = self
            .parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let path = dir.join(format!("part-{i:05}.parquet"));
                let schema = self.schema.clone();
                try_spawn_with(part, move |batch: &RecordBatch| {
                    write_file(&path, &schema, batch)?;
                    Ok::<_, Error>(path)
                })
            })
            .collect();
        written.into_iter().map(Handle::fetch).collect()
    }
}

/// Runs of consecutive row groups of at most `target` rows (each at least one group),
/// leaving out the groups whose statistics show that `filter` is false for every row.
fn runs(meta: &ArrowReaderMetadata, target: usize, filter: Option<&Expr>) -> Vec<Vec<usize>> {
    let mut runs: Vec<Vec<usize>> = Vec::new();
    let mut rows = 0usize;
    for (i, group) in meta.metadata().row_groups().iter().enumerate() {
        if filter.is_some_and(|f| !crate::prune::may_match(f, group, meta.schema())) {
            continue;
        }
        let n = usize::try_from(group.num_rows()).unwrap_or(usize::MAX);
        match runs.last_mut() {
            Some(run) if rows.saturating_add(n) <= target => {
                run.push(i);
                rows += n;
            }
            _ => {
                runs.push(vec![i]);
                rows = n;
            }
        }
    }
    if runs.is_empty() {
        runs.push(Vec::new()); // a file without row groups is one empty partition
    }
    runs
}

fn read_row_groups(
    path: &Path,
    meta: ArrowReaderMetadata,
    row_groups: Vec<usize>,
    projection: Option<Vec<usize>>,
    schema: &SchemaRef,
    filter: Option<&Expr>,
) -> Result<RecordBatch, Error> {
    let file = open(path)?;
    // One batch for the whole run: no concatenation afterwards.
    let rows: i64 = row_groups
        .iter()
        .map(|&g| meta.metadata().row_group(g).num_rows())
        .sum();
    let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta)
        .with_row_groups(row_groups)
        .with_batch_size(usize::try_from(rows).unwrap_or(usize::MAX).max(1));
    // The reader returns projected columns in file order: `order` puts them in the
    // requested one.
    let mut order = None;
    if let Some(projection) = projection {
        let mut in_file = projection.clone();
        in_file.sort_unstable();
        in_file.dedup();
        order = Some(
            projection
                .iter()
                .map(|c| in_file.binary_search(c).expect("taken from it"))
                .collect::<Vec<usize>>(),
        );
        let mask = ProjectionMask::roots(builder.parquet_schema(), in_file);
        builder = builder.with_projection(mask);
    }
    let reader = builder
        .build()
        .map_err(|e| io_error(path, "cannot read", e))?;
    let mut batches = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| io_error(path, "cannot decode a page of", e))?;
        let batch = match &order {
            Some(order) => {
                let columns = order.iter().map(|&i| batch.column(i).clone()).collect();
                let rows = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
                RecordBatch::try_new_with_options(schema.clone(), columns, &rows).map_err(arrow)?
            }
            None => batch,
        };
        let batch = match filter {
            Some(filter) => {
                let mask = filter.evaluate(&batch)?;
                let mask = arrow_array::cast::AsArray::as_boolean(&*mask).clone();
                arrow_select::filter::filter_record_batch(&batch, &mask).map_err(arrow)?
            }
            None => batch,
        };
        batches.push(batch);
    }
    concat(schema, &batches)
}

fn read_csv_file(
    path: &Path,
    schema: &SchemaRef,
    format: arrow_csv::reader::Format,
) -> Result<RecordBatch, Error> {
    let file = open(path)?;
    let reader = arrow_csv::ReaderBuilder::new(schema.clone())
        .with_format(format)
        .build(std::io::BufReader::new(file))
        .map_err(|e| io_error(path, "cannot read", e))?;
    let mut batches = Vec::new();
    for batch in reader {
        batches.push(batch.map_err(|e| io_error(path, "malformed CSV in", e))?);
    }
    concat(schema, &batches)
}

fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch, Error> {
    match batches {
        [one] => Ok(one.clone()),
        _ => arrow_select::concat::concat_batches(schema, batches).map_err(arrow),
    }
}

fn write_file(path: &Path, schema: &Schema, batch: &RecordBatch) -> Result<(), Error> {
    let file = File::create(path).map_err(|e| io_error(path, "cannot create", e))?;
    let mut writer = ArrowWriter::try_new(file, Arc::new(schema.clone()), None)
        .map_err(|e| io_error(path, "cannot write", e))?;
    writer
        .write(batch)
        .map_err(|e| io_error(path, "cannot write", e))?;
    writer
        .close()
        .map_err(|e| io_error(path, "cannot finish", e))?;
    Ok(())
}
