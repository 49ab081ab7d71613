//! Hash group-by: each partition is aggregated by a task into partial states per group
//! (keys in arrow's row format), split by key hash into buckets; a task per bucket folds
//! bucket `i` of every partition into result partition `i`.

use std::sync::{Arc, Mutex};

use arrow_array::{RecordBatch, RecordBatchOptions};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use dagger_core::{try_spawn_with, Error, Handle};

use crate::aggregate::{Acc, Values};
use crate::expr::arrow;
use crate::hash::{bucket_of, hash_bytes, KeyIndex};
use crate::keys::{key_type, Keys};
use crate::table::DTable;

/// What an aggregate computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggKind {
    /// The sum of the non-null values (null when there are none).
    Sum,
    /// The mean of the non-null values (null when there are none).
    Mean,
    /// The smallest non-null value.
    Min,
    /// The largest non-null value.
    Max,
    /// How many values are not null.
    Count,
    /// How many distinct non-null values there are.
    CountDistinct,
}

impl AggKind {
    fn prefix(self) -> &'static str {
        match self {
            AggKind::Sum => "sum",
            AggKind::Mean => "mean",
            AggKind::Min => "min",
            AggKind::Max => "max",
            AggKind::Count => "count",
            AggKind::CountDistinct => "count_distinct",
        }
    }
}

/// One aggregate of a column, named `{kind}_{column}` unless given an [`alias`](Agg::alias).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agg {
    kind: AggKind,
    column: String,
    alias: Option<String>,
}

impl Agg {
    /// Names the result column.
    pub fn alias(mut self, name: impl Into<String>) -> Agg {
        self.alias = Some(name.into());
        self
    }

    fn name(&self) -> String {
        self.alias
            .clone()
            .unwrap_or_else(|| format!("{}_{}", self.kind.prefix(), self.column))
    }
}

macro_rules! agg_constructors {
    ($($name:ident => $kind:ident, $doc:literal;)*) => {$(
        #[doc = $doc]
        pub fn $name(column: impl Into<String>) -> Agg {
            Agg { kind: AggKind::$kind, column: column.into(), alias: None }
        }
    )*};
}

agg_constructors! {
    sum => Sum, "The sum of a numeric column (Int64 for integers, Float64 for floats).";
    mean => Mean, "The mean of a numeric column, as Float64.";
    min => Min, "The minimum of a numeric, date or string column.";
    max => Max, "The maximum of a numeric, date or string column.";
    count => Count, "How many values of the column are not null, as Int64.";
    count_distinct => CountDistinct, "How many distinct non-null values the column has, as Int64.";
}

/// How an aggregate reads its column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reading {
    Integer,
    /// UInt64, whose values above `i64::MAX` do not fit an Int64.
    Unsigned,
    Float,
    Date,
    String,
    /// Only nulls matter (`count`), or row-encoded values (`count_distinct`).
    Any,
}

/// One aggregate, checked against the schema.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) kind: AggKind,
    pub(crate) column: usize,
    pub(crate) reading: Reading,
    pub(crate) output: DataType,
}

/// A group-by waiting for its aggregates: [`DTable::group_by`].
#[derive(Debug)]
pub struct GroupBy<'t> {
    table: &'t DTable,
    keys: Vec<usize>,
}

impl DTable {
    /// Groups the rows by the values of `keys` (nulls form a group of their own).
    pub fn group_by(&self, keys: &[&str]) -> Result<GroupBy<'_>, Error> {
        let keys = keys
            .iter()
            .map(|k| {
                self.column_type(k)?;
                Ok(self.schema.index_of(k).expect("checked above"))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(GroupBy { table: self, keys })
    }
}

impl GroupBy<'_> {
    /// One row per group: the key columns, then one column per aggregate. Every
    /// partition is aggregated by a task, the partial results are merged in a tree of
    /// tasks, and the result is a table of one partition, in no particular row order.
    pub fn agg(&self, aggs: impl IntoIterator<Item = Agg>) -> Result<DTable, Error> {
        let schema = &self.table.schema;
        let aggs: Vec<Agg> = aggs.into_iter().collect();
        let mut plans = Vec::with_capacity(aggs.len());
        let mut fields: Vec<Field> = self
            .keys
            .iter()
            .map(|&k| {
                let f = schema.field(k);
                Field::new(f.name(), key_type(f.data_type()), true)
            })
            .collect();
        for agg in &aggs {
            let plan = plan(schema, agg)?;
            let name = agg.name();
            if fields.iter().any(|f| f.name() == &name) {
                return Err(Error::InvalidUse(format!(
                    "two result columns are named `{name}`; give one an alias (`.alias(\"...\")`)"
                )));
            }
            fields.push(Field::new(name, plan.output.clone(), true));
            plans.push(plan);
        }
        let out = Arc::new(Schema::new(fields));
        let plans = Arc::new(plans);
        let key_types: Vec<&DataType> = self
            .keys
            .iter()
            .map(|&k| schema.field(k).data_type())
            .collect();
        let key_fields = Arc::new(Keys::new(self.keys.clone(), &key_types));
        if !key_fields.is_empty() {
            key_fields.converter()?;
        }
        // Each partition's groups are split by key hash into buckets; bucket `i` of every
        // partition is folded by one task into result partition `i`, so that many groups
        // merge in parallel. Without keys there is one group: one bucket.
        let buckets = match self.keys.is_empty() {
            true => 1,
            false => self.table.parts.len().max(1),
        };
        let partials: Vec<Handle<Vec<Mutex<Option<Partial>>>>> = self
            .table
            .parts
            .iter()
            .map(|part| {
                let (plans, key_fields) = (plans.clone(), key_fields.clone());
                try_spawn_with(part, move |batch: &RecordBatch| {
                    let parts = Partial::of(batch, &key_fields, &plans, buckets)?;
                    Ok::<_, Error>(parts.into_iter().map(|p| Mutex::new(Some(p))).collect())
                })
            })
            .collect();
        let parts = (0..buckets)
            .map(|bucket| {
                let (schema_out, plans, keys) = (out.clone(), plans.clone(), key_fields.clone());
                try_spawn_with(&partials, move |all: Vec<&Vec<Mutex<Option<Partial>>>>| {
                    // Each bucket is taken by exactly this task: moved, not copied.
                    let mut mine = all
                        .iter()
                        .map(|p| {
                            let mut slot = p[bucket].lock().unwrap_or_else(|e| e.into_inner());
                            slot.take().ok_or_else(|| {
                                Error::InvalidUse(format!("group-by bucket {bucket} taken twice"))
                            })
                        })
                        .collect::<Result<Vec<Partial>, Error>>()?;
                    // Folded into the largest: every other group is inserted once.
                    let largest = (0..mine.len()).max_by_key(|&i| mine[i].keys.len());
                    let merged = match largest {
                        Some(i) => {
                            let first = mine.swap_remove(i);
                            mine.into_iter().fold(first, Partial::merge)
                        }
                        None => Partial::default(),
                    };
                    merged.finish(&schema_out, &keys, &plans)
                })
            })
            .collect();
        Ok(DTable { schema: out, parts })
    }
}

fn plan(schema: &Schema, agg: &Agg) -> Result<Plan, Error> {
    let (column, field) = schema
        .column_with_name(&agg.column)
        .ok_or_else(|| crate::expr::unknown_column(schema, &agg.column))?;
    let t = field.data_type();
    let reading = if *t == DataType::UInt64 {
        Reading::Unsigned
    } else if t.is_integer() {
        Reading::Integer
    } else if t.is_floating() {
        Reading::Float
    } else if *t == DataType::Date32 {
        Reading::Date
    } else if matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
        Reading::String
    } else {
        Reading::Any
    };
    let wrong = || {
        Error::InvalidUse(format!(
            "{} cannot aggregate column `{}` of type {t}",
            agg.kind.prefix(),
            agg.column
        ))
    };
    let (reading, output) = match agg.kind {
        AggKind::Count | AggKind::CountDistinct => (Reading::Any, DataType::Int64),
        AggKind::Sum => match reading {
            Reading::Integer => (reading, DataType::Int64),
            Reading::Unsigned => (reading, DataType::UInt64),
            Reading::Float => (reading, DataType::Float64),
            _ => return Err(wrong()),
        },
        AggKind::Mean => match reading {
            Reading::Integer | Reading::Unsigned | Reading::Float => (reading, DataType::Float64),
            _ => return Err(wrong()),
        },
        AggKind::Min | AggKind::Max => match reading {
            Reading::Integer => (reading, DataType::Int64),
            Reading::Unsigned => (reading, DataType::UInt64),
            Reading::Float => (reading, DataType::Float64),
            Reading::Date => (reading, DataType::Date32),
            Reading::String => (reading, DataType::Utf8),
            Reading::Any => return Err(wrong()),
        },
    };
    Ok(Plan {
        kind: agg.kind,
        column,
        reading,
        output,
    })
}

/// The groups of some partitions and their aggregate states.
#[derive(Clone, Debug, Default)]
pub(crate) struct Partial {
    /// The groups' keys in arrow's row format, numbered in order of first appearance.
    keys: KeyIndex,
    /// Per aggregate, the states of every group.
    accs: Vec<Acc>,
}

impl Partial {
    /// The groups of `batch`, split by key hash into `buckets` partials.
    fn of(
        batch: &RecordBatch,
        keys: &Keys,
        plans: &[Plan],
        buckets: usize,
    ) -> Result<Vec<Partial>, Error> {
        let values = plans
            .iter()
            .map(|p| Values::of(batch, p))
            .collect::<Result<Vec<_>, Error>>()?;
        let mut index = KeyIndex::default();
        // Group numbers fit: a partition holds fewer than 2^32 rows.
        let groups: Vec<u32> = if keys.is_empty() {
            if batch.num_rows() > 0 {
                index.find_or_insert(&[], hash_bytes(&[]));
            }
            vec![0; batch.num_rows()]
        } else {
            let mut groups = Vec::with_capacity(batch.num_rows());
            keys.each_row(batch, |_, key, _| {
                groups.push(index.find_or_insert(key, hash_bytes(key)).0 as u32)
            })?;
            groups
        };
        let mut accs: Vec<Acc> = plans.iter().map(Acc::new).collect();
        for (acc, values) in accs.iter_mut().zip(&values) {
            acc.grow(index.len());
            acc.update(values, &groups);
        }
        Ok(Partial { keys: index, accs }.split(buckets))
    }

    /// The groups split by key hash into `buckets` partials.
    fn split(self, buckets: usize) -> Vec<Partial> {
        if buckets == 1 {
            return vec![self];
        }
        let n = self.keys.len();
        let part_of: Vec<u32> = (0..n)
            .map(|g| bucket_of(self.keys.hash(g), buckets) as u32)
            .collect();
        let mut indexes: Vec<KeyIndex> = (0..buckets).map(|_| KeyIndex::default()).collect();
        for (g, &p) in part_of.iter().enumerate() {
            indexes[p as usize].find_or_insert(self.keys.key(g), self.keys.hash(g));
        }
        let mut accs: Vec<std::vec::IntoIter<Acc>> = self
            .accs
            .into_iter()
            .map(|acc| acc.split(&part_of, buckets).into_iter())
            .collect();
        indexes
            .into_iter()
            .map(|keys| Partial {
                keys,
                accs: accs
                    .iter_mut()
                    .map(|a| a.next().expect("one per bucket"))
                    .collect(),
            })
            .collect()
    }

    fn merge(self, other: Partial) -> Partial {
        let (mut big, small) = match self.keys.len() >= other.keys.len() {
            true => (self, other),
            false => (other, self),
        };
        let map: Vec<u32> = (0..small.keys.len())
            .map(|h| {
                big.keys
                    .find_or_insert(small.keys.key(h), small.keys.hash(h))
                    .0 as u32
            })
            .collect();
        for (acc, theirs) in big.accs.iter_mut().zip(small.accs) {
            acc.grow(big.keys.len());
            acc.absorb(theirs, &map);
        }
        big
    }

    fn finish(
        &self,
        schema: &SchemaRef,
        keys: &Keys,
        plans: &[Plan],
    ) -> Result<RecordBatch, Error> {
        // Without keys, the whole table is one group, also when it has no rows.
        let groups = match keys.is_empty() {
            true => 1,
            false => self.keys.len(),
        };
        let mut accs = match self.accs.len() == plans.len() {
            true => self.accs.clone(),
            false => plans.iter().map(Acc::new).collect(),
        };
        let mut columns = match keys.is_empty() {
            true => Vec::new(),
            false => keys.decode((0..groups).map(|g| self.keys.key(g)))?,
        };
        for (acc, plan) in accs.iter_mut().zip(plans) {
            acc.grow(groups);
            let name = schema.field(columns.len()).name().clone();
            columns.push(acc.finish(&plan.output, &name)?);
        }
        let rows = RecordBatchOptions::new().with_row_count(Some(groups));
        RecordBatch::try_new_with_options(schema.clone(), columns, &rows).map_err(arrow)
    }
}
