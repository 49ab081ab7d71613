//! `DTable`: a table split into partitions, each partition the result of a task.
//! Operations check their input against the schema, spawn a task per partition and
//! return at once; results are waited for only when asked for.

use std::sync::Arc;

use arrow_array::{Array, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use dagger_core::{spawn, spawn_with, try_spawn_with, BoxError, Error, Handle};

use crate::expr::{arrow, field_type, Expr};

/// A partitioned table. Cloning is cheap: the partitions are shared.
#[derive(Clone)]
pub struct DTable {
    pub(crate) schema: SchemaRef,
    pub(crate) parts: Vec<Handle<RecordBatch>>,
}

impl std::fmt::Debug for DTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DTable")
            .field("schema", &self.schema)
            .field("partitions", &self.parts.len())
            .finish()
    }
}

impl DTable {
    /// A table whose partitions are `batches`, which must all have `schema`.
    pub fn from_batches(schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<Self, Error> {
        let parts = batches
            .into_iter()
            .enumerate()
            .map(|(i, batch)| {
                let batch = conform(&schema, batch)
                    .map_err(|e| Error::InvalidUse(format!("batch {i}: {e}")))?;
                Ok(spawn(move || batch))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(DTable { schema, parts })
    }

    /// A table of partitions computed by tasks of your own; each must produce `schema`
    /// (a partition that does not fails, naming the difference, when it is used).
    pub fn from_partitions(schema: SchemaRef, parts: Vec<Handle<RecordBatch>>) -> Self {
        let parts = parts
            .into_iter()
            .map(|part| {
                let expected = schema.clone();
                try_spawn_with(part, move |batch: RecordBatch| conform(&expected, batch))
            })
            .collect();
        DTable { schema, parts }
    }

    /// The table's schema (known before any task runs).
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// How many partitions it has.
    pub fn num_partitions(&self) -> usize {
        self.parts.len()
    }

    /// The partitions, as handles to build on with `spawn_with`.
    pub fn partitions(&self) -> &[Handle<RecordBatch>] {
        &self.parts
    }

    /// Waits for every partition and returns them in order.
    pub fn collect(&self) -> Result<Vec<RecordBatch>, Error> {
        self.parts.iter().map(|p| p.fetch_ref().cloned()).collect()
    }

    /// Waits for every partition and concatenates them into one batch.
    pub fn collect_batch(&self) -> Result<RecordBatch, Error> {
        let batches = self.collect()?;
        arrow_select::concat::concat_batches(&self.schema, &batches).map_err(arrow)
    }

    /// The number of rows (counted per partition, in parallel).
    pub fn num_rows(&self) -> Result<usize, Error> {
        Ok(self
            .map_reduce(|b| b.num_rows(), |a, b| a + b)?
            .unwrap_or(0))
    }

    /// The rows for which `predicate` is true (null counts as false).
    pub fn filter(&self, predicate: Expr) -> Result<Self, Error> {
        let t = predicate.data_type(&self.schema)?;
        if t != DataType::Boolean {
            return Err(Error::InvalidUse(format!(
                "a filter needs a boolean expression; `{predicate}` is {t}"
            )));
        }
        let predicate = Arc::new(predicate);
        Ok(self.map_parts(self.schema.clone(), move |batch| {
            let mask = predicate.evaluate(batch)?;
            let mask = mask
                .as_any()
                .downcast_ref::<BooleanArray>()
                .expect("checked to be boolean");
            arrow_select::filter::filter_record_batch(batch, mask).map_err(arrow)
        }))
    }

    /// The named columns, in the order given.
    pub fn select(&self, columns: &[&str]) -> Result<Self, Error> {
        let indices = columns
            .iter()
            .map(|name| {
                self.schema
                    .index_of(name)
                    .map_err(|_| crate::expr::unknown_column(&self.schema, name))
            })
            .collect::<Result<Vec<usize>, Error>>()?;
        let schema = Arc::new(self.schema.project(&indices).map_err(arrow)?);
        Ok(self.map_parts(schema, move |batch| batch.project(&indices).map_err(arrow)))
    }

    /// The table with column `name` set to `expr` (replaced if it exists, else added last).
    pub fn with_column(&self, name: &str, expr: Expr) -> Result<Self, Error> {
        let t = expr.data_type(&self.schema)?;
        let field = Arc::new(Field::new(name, t, true));
        let mut fields: Vec<_> = self.schema.fields().iter().cloned().collect();
        let position = self.schema.index_of(name).ok();
        match position {
            Some(i) => fields[i] = field,
            None => fields.push(field),
        }
        let schema = Arc::new(Schema::new(fields));
        let (expr, out) = (Arc::new(expr), schema.clone());
        Ok(self.map_parts(schema, move |batch| {
            let value = expr.evaluate(batch)?;
            let mut columns = batch.columns().to_vec();
            match position {
                Some(i) => columns[i] = value,
                None => columns.push(value),
            }
            RecordBatch::try_new(out.clone(), columns).map_err(arrow)
        }))
    }

    /// Applies `f` to every partition: the escape hatch for what the expressions cannot
    /// say. Each result must have `out_schema`; one that does not fails its partition.
    pub fn map_batches<F, E>(&self, out_schema: SchemaRef, f: F) -> Self
    where
        F: Fn(&RecordBatch) -> Result<RecordBatch, E> + Send + Sync + 'static,
        E: Into<BoxError>,
    {
        let f = Arc::new(f);
        let expected = out_schema.clone();
        self.map_parts(out_schema, move |batch| {
            let out = f(batch).map_err(|e| Error::InvalidUse(e.into().to_string()))?;
            conform(&expected, out)
        })
    }

    /// Maps every partition to a value, then combines the values with `reduce` (which must
    /// be associative) in a tree of tasks; `None` for a table without partitions.
    pub fn map_reduce<A: Clone + Send + Sync + 'static>(
        &self,
        map: impl Fn(&RecordBatch) -> A + Send + Sync + 'static,
        reduce: impl Fn(A, A) -> A + Send + Sync + 'static,
    ) -> Result<Option<A>, Error> {
        let map = Arc::new(map);
        let level: Vec<Handle<A>> = self
            .parts
            .iter()
            .map(|part| {
                let map = map.clone();
                spawn_with(part, move |b: &RecordBatch| map(b))
            })
            .collect();
        match dagger_core::reduce_tree(level, reduce) {
            Some(total) => total.fetch().map(Some),
            None => Ok(None),
        }
    }

    /// A task per partition computing `f(partition)`, with `schema` as the result's.
    pub(crate) fn map_parts(
        &self,
        schema: SchemaRef,
        f: impl Fn(&RecordBatch) -> Result<RecordBatch, Error> + Send + Sync + 'static,
    ) -> Self {
        let f = Arc::new(f);
        let parts = self
            .parts
            .iter()
            .map(|part| {
                let f = f.clone();
                try_spawn_with(part, move |batch: &RecordBatch| f(batch))
            })
            .collect();
        DTable { schema, parts }
    }

    /// The type of column `name`, or an error naming the columns there are.
    pub(crate) fn column_type(&self, name: &str) -> Result<&DataType, Error> {
        field_type(&self.schema, name)
    }
}

/// `batch` under the table's schema `expected`: the same column names and types, in
/// order. A column the batch declares non-nullable fits a nullable one; field metadata is
/// the table's.
pub(crate) fn conform(expected: &SchemaRef, batch: RecordBatch) -> Result<RecordBatch, Error> {
    let found = batch.schema();
    if found.fields() == expected.fields() {
        return Ok(batch);
    }
    let same_columns = found.fields().len() == expected.fields().len()
        && found
            .fields()
            .iter()
            .zip(expected.fields())
            .all(|(f, e)| f.name() == e.name() && f.data_type() == e.data_type());
    if same_columns
        && (0..found.fields().len())
            .all(|i| expected.field(i).is_nullable() || batch.column(i).null_count() == 0)
    {
        let rows = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        return RecordBatch::try_new_with_options(
            expected.clone(),
            batch.columns().to_vec(),
            &rows,
        )
        .map_err(arrow);
    }
    Err(Error::InvalidUse(format!(
        "a partition does not have the table's schema: {}",
        schema_difference(expected, &found)
    )))
}

/// The first column where `found` differs from `expected`, in words.
pub(crate) fn schema_difference(expected: &Schema, found: &Schema) -> String {
    for field in expected.fields() {
        match found.field_with_name(field.name()) {
            Err(_) => return format!("column `{}` is missing", field.name()),
            Ok(other) if other.data_type() != field.data_type() => {
                return format!(
                    "column `{}` is {} instead of {}",
                    field.name(),
                    other.data_type(),
                    field.data_type()
                )
            }
            Ok(other) if other.is_nullable() && !field.is_nullable() => {
                return format!(
                    "column `{}` may be null, which the table's schema does not allow",
                    field.name()
                )
            }
            Ok(_) => {}
        }
    }
    for field in found.fields() {
        if expected.field_with_name(field.name()).is_err() {
            return format!("it has an extra column `{}`", field.name());
        }
    }
    if found.fields().len() == expected.fields().len() {
        return "its columns are in another order".to_owned();
    }
    "it names a column twice".to_owned()
}
