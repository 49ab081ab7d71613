//! Hash joins. The right side is built into a hash table of its keys (arrow's row
//! format) and every left partition probes it in a task of its own. When both sides have
//! several partitions, both are first split by a hash of their keys into buckets, and
//! bucket `i` of the left joins bucket `i` of the right.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, UInt32Array};
use arrow_row::Rows;
use arrow_schema::{Field, Schema, SchemaRef};
use dagger_core::{spawn_with, try_spawn_with, Error, Handle};
use hashbrown::HashTable;

use crate::expr::{arrow, cast};
use crate::hash::{bucket_of, hash_bytes};
use crate::keys::{key_type, Keys};
use crate::table::DTable;

/// Which rows a join keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinType {
    /// Pairs of rows with equal keys.
    Inner,
    /// Every left row, with its matches or with nulls.
    Left,
    /// Every right row, with its matches or with nulls.
    Right,
    /// Every row of both sides, matched where keys are equal.
    Full,
    /// The left rows that have a match (left columns only, each row once).
    Semi,
    /// The left rows that have no match (left columns only).
    Anti,
}

/// How a join spreads its work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinStrategy {
    /// Broadcast when either side has one partition, else hash-partitioned into as many
    /// buckets as the larger side has partitions.
    Auto,
    /// The right side is built once and every left partition probes it.
    Broadcast,
    /// Both sides are split into this many buckets by a hash of their keys.
    Partitioned(usize),
}

/// What a join needs of its two sides, checked before any task runs.
struct Plan {
    how: JoinType,
    /// Key columns of the left and right sides (of equal types).
    left_keys: Keys,
    right_keys: Keys,
    /// Right columns that are not keys, in order.
    right_rest: Vec<usize>,
    right_schema: SchemaRef,
    out: SchemaRef,
}

impl DTable {
    /// Joins with `other` on equal values of the `on` columns, which both tables have with
    /// the same types. Null keys match nothing. The result has the left table's columns
    /// (keys included, filled from the right for right rows without a match), then the
    /// right table's other columns (suffixed `_right` where a left column has the name);
    /// semi and anti joins keep the left columns only. [`JoinStrategy::Auto`].
    pub fn join(&self, other: &DTable, on: &[&str], how: JoinType) -> Result<DTable, Error> {
        self.join_with(other, on, on, how, JoinStrategy::Auto)
    }

    /// [`join`](DTable::join) where the keys have other names on each side: left column
    /// `left_on[i]` matches right column `right_on[i]`.
    pub fn join_on(
        &self,
        other: &DTable,
        left_on: &[&str],
        right_on: &[&str],
        how: JoinType,
    ) -> Result<DTable, Error> {
        self.join_with(other, left_on, right_on, how, JoinStrategy::Auto)
    }

    /// [`join_on`](DTable::join_on) with a chosen strategy.
    pub fn join_with(
        &self,
        other: &DTable,
        left_on: &[&str],
        right_on: &[&str],
        how: JoinType,
        strategy: JoinStrategy,
    ) -> Result<DTable, Error> {
        let plan = Arc::new(plan(self, other, left_on, right_on, how)?);
        let buckets = match strategy {
            JoinStrategy::Broadcast => None,
            JoinStrategy::Partitioned(0) => {
                return Err(Error::InvalidUse(
                    "a partitioned join needs at least one bucket".into(),
                ))
            }
            JoinStrategy::Partitioned(n) => Some(n),
            JoinStrategy::Auto if self.parts.len() <= 1 || other.parts.len() <= 1 => None,
            JoinStrategy::Auto => Some(self.parts.len().max(other.parts.len())),
        };
        let parts = match buckets {
            None => join_parts(&plan, &self.parts, &other.parts),
            Some(n) => {
                let left = shuffle(&self.parts, &self.schema, &plan.left_keys, n);
                let right = shuffle(&other.parts, &other.schema, &plan.right_keys, n);
                left.into_iter()
                    .zip(right)
                    .flat_map(|(l, r)| join_parts(&plan, &[l], &[r]))
                    .collect()
            }
        };
        Ok(DTable {
            schema: plan.out.clone(),
            parts,
        })
    }
}

fn plan(
    left: &DTable,
    right: &DTable,
    left_on: &[&str],
    right_on: &[&str],
    how: JoinType,
) -> Result<Plan, Error> {
    if left_on.is_empty() || left_on.len() != right_on.len() {
        return Err(Error::InvalidUse(format!(
            "a join needs at least one key column, and as many on each side ({} and {} given)",
            left_on.len(),
            right_on.len()
        )));
    }
    let (mut left_keys, mut right_keys, mut key_types) = (vec![], vec![], vec![]);
    for (l, r) in left_on.iter().zip(right_on) {
        let lt = left.column_type(l)?;
        let rt = right.column_type(r)?;
        if key_type(lt) != key_type(rt) {
            let name = if l == r {
                format!("`{l}`")
            } else {
                format!("`{l}` = `{r}`")
            };
            return Err(Error::InvalidUse(format!(
                "join key {name} is {lt} on the left and {rt} on the right; cast one side \
                 (`with_column`) so that both have one type"
            )));
        }
        left_keys.push(left.schema.index_of(l).expect("checked"));
        right_keys.push(right.schema.index_of(r).expect("checked"));
        key_types.push(lt);
    }
    let right_rest: Vec<usize> = (0..right.schema.fields().len())
        .filter(|i| !right_keys.contains(i))
        .collect();
    let nullable = |f: &Field| Field::new(f.name(), f.data_type().clone(), true);
    let mut fields: Vec<Field> = left.schema.fields().iter().map(|f| nullable(f)).collect();
    if matches!(how, JoinType::Right | JoinType::Full) {
        // Key columns also hold right keys: a left dictionary type may not fit them.
        for &k in &left_keys {
            let f = &fields[k];
            fields[k] = Field::new(f.name(), key_type(f.data_type()), true);
        }
    }
    if !matches!(how, JoinType::Semi | JoinType::Anti) {
        for &i in &right_rest {
            let f = right.schema.field(i);
            let mut name = f.name().clone();
            while fields.iter().any(|g| g.name() == &name) {
                name.push_str("_right");
            }
            fields.push(Field::new(name, f.data_type().clone(), true));
        }
    }
    let left_keys = Keys::new(left_keys, &key_types);
    left_keys.converter()?;
    Ok(Plan {
        how,
        right_keys: Keys::new(right_keys, &key_types),
        left_keys,
        right_rest,
        right_schema: right.schema.clone(),
        out: Arc::new(Schema::new(fields)),
    })
}

/// The right side, whole, with the rows of each key.
struct Build {
    batch: RecordBatch,
    /// The keys of `batch`'s rows.
    rows: Rows,
    /// Row numbers by key hash; rows with a null key are left out.
    table: HashTable<u32>,
}

impl Build {
    /// The right rows whose key is `key` (of hash `hash`).
    fn matches<'a>(&'a self, key: &'a [u8], hash: u64) -> impl Iterator<Item = u32> + 'a {
        self.table
            .iter_hash(hash)
            .copied()
            .filter(move |&r| self.rows.row(r as usize).as_ref() == key)
    }
}

/// What probing one left partition gives: its rows of the result, and which right rows
/// it matched (for right and full joins).
#[derive(Clone)]
struct Probed {
    batch: RecordBatch,
    matched: Arc<Vec<bool>>,
}

/// The tasks that join `left` partitions against the right side made of `right`.
fn join_parts(
    plan: &Arc<Plan>,
    left: &[Handle<RecordBatch>],
    right: &[Handle<RecordBatch>],
) -> Vec<Handle<RecordBatch>> {
    let build_plan = plan.clone();
    let build = try_spawn_with(right.to_vec(), move |parts: Vec<RecordBatch>| {
        build_side(&build_plan, &parts).map(Arc::new)
    });
    let probes: Vec<Handle<Probed>> = left
        .iter()
        .map(|part| {
            let plan = plan.clone();
            try_spawn_with(
                (part, &build),
                move |batch: &RecordBatch, build: &Arc<Build>| probe(&plan, batch, build),
            )
        })
        .collect();
    let mut parts: Vec<Handle<RecordBatch>> = probes
        .iter()
        .map(|p| spawn_with(p, |p: &Probed| p.batch.clone()))
        .collect();
    if matches!(plan.how, JoinType::Right | JoinType::Full) {
        let plan = plan.clone();
        parts.push(try_spawn_with(
            (&build, &probes),
            move |build: &Arc<Build>, probes: Vec<&Probed>| unmatched_right(&plan, build, &probes),
        ));
    }
    parts
}

fn build_side(plan: &Plan, parts: &[RecordBatch]) -> Result<Build, Error> {
    let batch = arrow_select::concat::concat_batches(&plan.right_schema, parts).map_err(arrow)?;
    let (rows, has_null) = plan.right_keys.rows_and_nulls(&batch)?;
    u32::try_from(batch.num_rows()).map_err(|_| too_many_rows())?;
    let hashes: Vec<u64> = rows.iter().map(|row| hash_bytes(row.as_ref())).collect();
    let mut table = HashTable::with_capacity(batch.num_rows());
    for (i, &hash) in hashes.iter().enumerate() {
        if !has_null[i] {
            table.insert_unique(hash, i as u32, |&r| hashes[r as usize]);
        }
    }
    Ok(Build { batch, rows, table })
}

fn too_many_rows() -> Error {
    Error::InvalidUse("a join side has more than 2^32 rows in one bucket; use more buckets".into())
}

fn probe(plan: &Plan, batch: &RecordBatch, build: &Build) -> Result<Probed, Error> {
    let mut matched = vec![false; build.batch.num_rows()];
    let (mut left_idx, mut right_idx): (Vec<u32>, Vec<Option<u32>>) = (vec![], vec![]);
    u32::try_from(batch.num_rows()).map_err(|_| too_many_rows())?;
    plan.left_keys.each_row(batch, |i, key, has_null| {
        let i = i as u32;
        let mut found = false;
        if !has_null {
            for r in build.matches(key, hash_bytes(key)) {
                found = true;
                if matches!(plan.how, JoinType::Semi | JoinType::Anti) {
                    break;
                }
                left_idx.push(i);
                right_idx.push(Some(r));
                matched[r as usize] = true;
            }
        }
        match (plan.how, found) {
            (JoinType::Semi, true) | (JoinType::Anti, false) => left_idx.push(i),
            (JoinType::Left | JoinType::Full, false) => {
                left_idx.push(i);
                right_idx.push(None);
            }
            _ => {}
        }
    })?;
    let left_idx = UInt32Array::from(left_idx);
    let mut columns = batch
        .columns()
        .iter()
        .map(|c| arrow_select::take::take(c, &left_idx, None).map_err(arrow))
        .collect::<Result<Vec<ArrayRef>, Error>>()?;
    if !matches!(plan.how, JoinType::Semi | JoinType::Anti) {
        let right_idx = UInt32Array::from(right_idx);
        for &c in &plan.right_rest {
            columns.push(
                arrow_select::take::take(build.batch.column(c), &right_idx, None).map_err(arrow)?,
            );
        }
    }
    for (column, field) in columns.iter_mut().zip(plan.out.fields()) {
        *column = cast(column, field.data_type())?;
    }
    let batch = RecordBatch::try_new(plan.out.clone(), columns).map_err(arrow)?;
    Ok(Probed {
        batch,
        matched: Arc::new(matched),
    })
}

/// The right rows no left partition matched, with nulls for the left columns but the keys.
fn unmatched_right(plan: &Plan, build: &Build, probes: &[&Probed]) -> Result<RecordBatch, Error> {
    let rows = build.batch.num_rows();
    let unmatched: Vec<u32> = (0..rows)
        .filter(|&r| !probes.iter().any(|p| p.matched[r]))
        .map(|r| r as u32)
        .collect();
    let idx = UInt32Array::from(unmatched);
    let count = idx.len();
    let left_fields = plan.out.fields().len() - plan.right_rest.len();
    let mut columns = Vec::with_capacity(plan.out.fields().len());
    for (i, field) in plan.out.fields().iter().take(left_fields).enumerate() {
        let column = match plan.left_keys.position(i) {
            Some(key) => {
                let right = build.batch.column(plan.right_keys.column(key));
                let taken = arrow_select::take::take(right, &idx, None).map_err(arrow)?;
                cast(&taken, field.data_type())?
            }
            None => arrow_array::new_null_array(field.data_type(), count),
        };
        columns.push(column);
    }
    for &c in &plan.right_rest {
        columns.push(arrow_select::take::take(build.batch.column(c), &idx, None).map_err(arrow)?);
    }
    RecordBatch::try_new(plan.out.clone(), columns).map_err(arrow)
}

/// Splits every partition into `n` pieces by a hash of its keys (rows with a null key go
/// to bucket 0), then gathers piece `i` of every partition into bucket `i`.
fn shuffle(
    parts: &[Handle<RecordBatch>],
    schema: &SchemaRef,
    keys: &Keys,
    n: usize,
) -> Vec<Handle<RecordBatch>> {
    let keys = Arc::new(keys.clone());
    let pieces: Vec<Handle<Vec<RecordBatch>>> = parts
        .iter()
        .map(|part| {
            let keys = keys.clone();
            try_spawn_with(part, move |batch: &RecordBatch| split(batch, &keys, n))
        })
        .collect();
    (0..n)
        .map(|bucket| {
            let schema = schema.clone();
            try_spawn_with(&pieces, move |pieces: Vec<&Vec<RecordBatch>>| {
                let mine: Vec<&RecordBatch> = pieces.iter().map(|p| &p[bucket]).collect();
                arrow_select::concat::concat_batches(&schema, mine).map_err(arrow)
            })
        })
        .collect()
}

fn split(batch: &RecordBatch, keys: &Keys, n: usize) -> Result<Vec<RecordBatch>, Error> {
    u32::try_from(batch.num_rows()).map_err(|_| too_many_rows())?;
    let mut buckets: Vec<Vec<u32>> = vec![Vec::new(); n];
    keys.each_row(batch, |i, key, has_null| {
        let bucket = if has_null {
            0
        } else {
            bucket_of(hash_bytes(key), n)
        };
        buckets[bucket].push(i as u32);
    })?;
    buckets
        .into_iter()
        .map(|idx| {
            arrow_select::take::take_record_batch(batch, &UInt32Array::from(idx)).map_err(arrow)
        })
        .collect()
}
