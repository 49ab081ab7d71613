//! Key columns in arrow's row format: one byte string per row that compares, hashes and
//! orders like the tuple of its key values, whatever the key columns' types.

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::{DataType, SortOptions};
use dagger_core::Error;

use crate::expr::{arrow, cast};

/// Which columns of a batch are its keys, and how they are encoded.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    columns: Vec<usize>,
    types: Vec<DataType>,
    options: Vec<SortOptions>,
}

/// The type a key column is encoded as: dictionaries by their values, so that every
/// partition encodes a key the same way.
pub(crate) fn key_type(t: &DataType) -> DataType {
    match t {
        DataType::Dictionary(_, value) => (**value).clone(),
        other => other.clone(),
    }
}

impl Keys {
    /// Keys `columns` of types `types` (as declared by the schema), ascending.
    pub(crate) fn new(columns: Vec<usize>, types: &[&DataType]) -> Keys {
        let options = vec![SortOptions::default(); columns.len()];
        Self::ordered(columns, types, options)
    }

    /// Keys with a sort order each.
    pub(crate) fn ordered(
        columns: Vec<usize>,
        types: &[&DataType],
        options: Vec<SortOptions>,
    ) -> Keys {
        Keys {
            columns,
            types: types.iter().map(|t| key_type(t)).collect(),
            options,
        }
    }

    /// The encoder; an error when a key type has no row format.
    pub(crate) fn converter(&self) -> Result<RowConverter, Error> {
        let fields = self
            .types
            .iter()
            .zip(&self.options)
            .map(|(t, o)| SortField::new_with_options(t.clone(), *o))
            .collect();
        RowConverter::new(fields)
            .map_err(|e| Error::InvalidUse(format!("these columns cannot be keys: {e}")))
    }

    /// The key columns of `batch`, cast to their encoded types.
    fn columns_of(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>, Error> {
        self.columns
            .iter()
            .zip(&self.types)
            .map(|(&k, t)| cast(batch.column(k), t))
            .collect()
    }

    /// The keys of every row of `batch`.
    pub(crate) fn rows(&self, batch: &RecordBatch) -> Result<Rows, Error> {
        let columns = self.columns_of(batch)?;
        self.converter()?.convert_columns(&columns).map_err(arrow)
    }

    /// The keys of every row, and whether each row has a null key (which matches nothing
    /// in a join). Nulls are logical: a Null column's values and a dictionary's null
    /// values count.
    pub(crate) fn rows_and_nulls(&self, batch: &RecordBatch) -> Result<(Rows, Vec<bool>), Error> {
        let columns = self.columns_of(batch)?;
        let nulls: Vec<_> = columns.iter().filter_map(|c| c.logical_nulls()).collect();
        let has_null = (0..batch.num_rows())
            .map(|i| nulls.iter().any(|n| n.is_null(i)))
            .collect();
        let rows = self.converter()?.convert_columns(&columns).map_err(arrow)?;
        Ok((rows, has_null))
    }

    /// Calls `f(row, key, has_null)` for every row of `batch` in order, encoding a few
    /// thousand rows at a time into one reused buffer (a whole batch's keys at once would
    /// be a large allocation, faulted in for one pass).
    pub(crate) fn each_row(
        &self,
        batch: &RecordBatch,
        mut f: impl FnMut(usize, &[u8], bool),
    ) -> Result<(), Error> {
        const CHUNK: usize = 8192;
        let columns = self.columns_of(batch)?;
        let nulls: Vec<_> = columns.iter().filter_map(|c| c.logical_nulls()).collect();
        let converter = self.converter()?;
        let mut rows = converter.empty_rows(CHUNK, CHUNK * 16);
        let mut start = 0;
        while start < batch.num_rows() {
            let len = CHUNK.min(batch.num_rows() - start);
            let slices: Vec<ArrayRef> = columns.iter().map(|c| c.slice(start, len)).collect();
            rows.clear();
            converter.append(&mut rows, &slices).map_err(arrow)?;
            for (i, row) in rows.iter().enumerate() {
                let at = start + i;
                f(at, row.as_ref(), nulls.iter().any(|n| n.is_null(at)));
            }
            start += len;
        }
        Ok(())
    }

    /// The key columns, decoded from `keys` (rows made with these keys' encoding).
    pub(crate) fn decode<'a>(
        &self,
        keys: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Vec<ArrayRef>, Error> {
        let converter = self.converter()?;
        let parser = converter.parser();
        converter
            .convert_rows(keys.map(|k| parser.parse(k)))
            .map_err(arrow)
    }

    /// Whether there are no key columns.
    pub(crate) fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// The column of key `i`.
    pub(crate) fn column(&self, i: usize) -> usize {
        self.columns[i]
    }

    /// Which key column `column` is, if it is one.
    pub(crate) fn position(&self, column: usize) -> Option<usize> {
        self.columns.iter().position(|&c| c == column)
    }
}
