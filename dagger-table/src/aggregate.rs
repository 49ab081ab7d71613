//! Aggregate states kept column by column: one typed vector per aggregate, one entry per
//! group, updated by one loop per aggregate and batch (not one dispatch per row).

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int64Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, ArrowPrimitiveType, Date32Array, Float64Array, Int64Array, PrimitiveArray,
    RecordBatch, StringArray, UInt64Array,
};
use arrow_buffer::NullBuffer;
use arrow_row::{RowConverter, SortField};
use arrow_schema::DataType;
use dagger_core::Error;

use crate::expr::{arrow, cast};
use crate::group::{AggKind, Plan, Reading};
use crate::keys::key_type;

/// The column an aggregate reads, typed once per batch.
pub(crate) enum Values {
    Integer(Int64Array),
    Unsigned(UInt64Array),
    Float(Float64Array),
    Date(Date32Array),
    String(StringArray),
    /// Which values are null (logically: in a dictionary's values or a Null column too).
    Nulls(Option<NullBuffer>),
    /// Values in arrow's row format, and which are null.
    Distinct(arrow_row::Rows, Option<NullBuffer>),
}

impl Values {
    pub(crate) fn of(batch: &RecordBatch, plan: &Plan) -> Result<Values, Error> {
        let column = batch.column(plan.column);
        let cast = |t: &DataType| cast(column, t);
        Ok(match (plan.kind, plan.reading) {
            (AggKind::CountDistinct, _) => {
                let t = key_type(column.data_type());
                let converter =
                    RowConverter::new(vec![SortField::new(t.clone())]).map_err(arrow)?;
                let column = cast(&t)?;
                let rows = converter
                    .convert_columns(std::slice::from_ref(&column))
                    .map_err(arrow)?;
                Values::Distinct(rows, column.logical_nulls())
            }
            (AggKind::Count, _) | (_, Reading::Any) => Values::Nulls(column.logical_nulls()),
            (_, Reading::Integer) => {
                Values::Integer(cast(&DataType::Int64)?.as_primitive::<Int64Type>().clone())
            }
            (_, Reading::Unsigned) => Values::Unsigned(column.as_primitive::<UInt64Type>().clone()),
            (_, Reading::Float) => Values::Float(
                cast(&DataType::Float64)?
                    .as_primitive::<Float64Type>()
                    .clone(),
            ),
            (_, Reading::Date) => Values::Date(column.as_primitive::<Date32Type>().clone()),
            (_, Reading::String) => {
                Values::String(cast(&DataType::Utf8)?.as_string::<i32>().clone())
            }
        })
    }
}

/// One aggregate's states, one per group.
#[derive(Clone, Debug)]
pub(crate) enum Acc {
    SumInt(Vec<Option<i128>>),
    SumUnsigned(Vec<Option<u128>>),
    SumFloat(Vec<Option<f64>>),
    MeanInt(Vec<(i128, u64)>),
    MeanFloat(Vec<(f64, u64)>),
    MinInt(Vec<Option<i64>>),
    MaxInt(Vec<Option<i64>>),
    MinUnsigned(Vec<Option<u64>>),
    MaxUnsigned(Vec<Option<u64>>),
    MinFloat(Vec<Option<f64>>),
    MaxFloat(Vec<Option<f64>>),
    MinString(Vec<Option<String>>),
    MaxString(Vec<Option<String>>),
    Count(Vec<u64>),
    Distinct(Vec<HashSet<Box<[u8]>>>),
}

/// Runs `$body` with `$v` bound to the variant's vector and `$ctor` to its constructor.
macro_rules! per_variant {
    ($acc:expr, |$v:ident, $ctor:ident| $body:expr) => {
        match $acc {
            Acc::SumInt($v) => {
                let $ctor = Acc::SumInt;
                $body
            }
            Acc::SumUnsigned($v) => {
                let $ctor = Acc::SumUnsigned;
                $body
            }
            Acc::SumFloat($v) => {
                let $ctor = Acc::SumFloat;
                $body
            }
            Acc::MeanInt($v) => {
                let $ctor = Acc::MeanInt;
                $body
            }
            Acc::MeanFloat($v) => {
                let $ctor = Acc::MeanFloat;
                $body
            }
            Acc::MinInt($v) => {
                let $ctor = Acc::MinInt;
                $body
            }
            Acc::MaxInt($v) => {
                let $ctor = Acc::MaxInt;
                $body
            }
            Acc::MinUnsigned($v) => {
                let $ctor = Acc::MinUnsigned;
                $body
            }
            Acc::MaxUnsigned($v) => {
                let $ctor = Acc::MaxUnsigned;
                $body
            }
            Acc::MinFloat($v) => {
                let $ctor = Acc::MinFloat;
                $body
            }
            Acc::MaxFloat($v) => {
                let $ctor = Acc::MaxFloat;
                $body
            }
            Acc::MinString($v) => {
                let $ctor = Acc::MinString;
                $body
            }
            Acc::MaxString($v) => {
                let $ctor = Acc::MaxString;
                $body
            }
            Acc::Count($v) => {
                let $ctor = Acc::Count;
                $body
            }
            Acc::Distinct($v) => {
                let $ctor = Acc::Distinct;
                $body
            }
        }
    };
}

/// Calls `f(group, value)` for every non-null value of `a`, row `i` being in group
/// `groups[i]`.
#[inline]
fn each<T: ArrowPrimitiveType>(
    a: &PrimitiveArray<T>,
    groups: &[u32],
    mut f: impl FnMut(usize, T::Native),
) {
    let values = a.values();
    match a.nulls() {
        None => {
            for (&g, &v) in groups.iter().zip(values.iter()) {
                f(g as usize, v);
            }
        }
        Some(nulls) => {
            for (i, (&g, &v)) in groups.iter().zip(values.iter()).enumerate() {
                if nulls.is_valid(i) {
                    f(g as usize, v);
                }
            }
        }
    }
}

/// `each` for strings.
fn each_str(a: &StringArray, groups: &[u32], mut f: impl FnMut(usize, &str)) {
    for (i, &g) in groups.iter().enumerate() {
        if a.is_valid(i) {
            f(g as usize, a.value(i));
        }
    }
}

/// Keeps `v` in `slot` if it is `better` than what is there (copied only then).
fn keep_str(slot: &mut Option<String>, v: &str, better: impl Fn(&str, &str) -> bool) {
    match slot {
        Some(s) if !better(v, s) => {}
        _ => *slot = Some(v.to_owned()),
    }
}

fn add<T: std::ops::Add<Output = T> + Copy>(slot: &mut Option<T>, v: T) {
    *slot = Some(match *slot {
        Some(s) => s + v,
        None => v,
    });
}

fn keep<T>(slot: &mut Option<T>, v: T, better: impl Fn(&T, &T) -> bool) {
    match slot {
        Some(s) if !better(&v, s) => {}
        _ => *slot = Some(v),
    }
}

fn min_float(a: &f64, b: &f64) -> bool {
    a.total_cmp(b).is_lt()
}

fn max_float(a: &f64, b: &f64) -> bool {
    a.total_cmp(b).is_gt()
}

impl Acc {
    /// No groups yet, for `plan`.
    pub(crate) fn new(plan: &Plan) -> Acc {
        use Reading::*;
        match (plan.kind, plan.reading) {
            (AggKind::Count, _) => Acc::Count(Vec::new()),
            (AggKind::CountDistinct, _) => Acc::Distinct(Vec::new()),
            (AggKind::Sum, Integer) => Acc::SumInt(Vec::new()),
            (AggKind::Sum, Unsigned) => Acc::SumUnsigned(Vec::new()),
            (AggKind::Sum, _) => Acc::SumFloat(Vec::new()),
            (AggKind::Mean, Integer | Unsigned) => Acc::MeanInt(Vec::new()),
            (AggKind::Mean, _) => Acc::MeanFloat(Vec::new()),
            (AggKind::Min, Integer | Date) => Acc::MinInt(Vec::new()),
            (AggKind::Max, Integer | Date) => Acc::MaxInt(Vec::new()),
            (AggKind::Min, Unsigned) => Acc::MinUnsigned(Vec::new()),
            (AggKind::Max, Unsigned) => Acc::MaxUnsigned(Vec::new()),
            (AggKind::Min, Float) => Acc::MinFloat(Vec::new()),
            (AggKind::Max, Float) => Acc::MaxFloat(Vec::new()),
            (AggKind::Min, _) => Acc::MinString(Vec::new()),
            (AggKind::Max, _) => Acc::MaxString(Vec::new()),
        }
    }

    /// Fresh states up to `groups` groups.
    pub(crate) fn grow(&mut self, groups: usize) {
        per_variant!(self, |v, _ctor| v.resize_with(groups, Default::default))
    }

    /// Adds every row of `values` to its group's state: row `i` is in group `groups[i]`.
    pub(crate) fn update(&mut self, values: &Values, groups: &[u32]) {
        match (self, values) {
            (Acc::Count(c), Values::Nulls(nulls)) => match nulls {
                None => groups.iter().for_each(|&g| c[g as usize] += 1),
                Some(nulls) => {
                    for (i, &g) in groups.iter().enumerate() {
                        c[g as usize] += u64::from(nulls.is_valid(i));
                    }
                }
            },
            (Acc::Distinct(seen), Values::Distinct(rows, nulls)) => {
                for (i, &g) in groups.iter().enumerate() {
                    if nulls.as_ref().is_none_or(|n| n.is_valid(i)) {
                        let row = rows.row(i);
                        let set = &mut seen[g as usize];
                        if !set.contains(row.as_ref()) {
                            set.insert(row.as_ref().into());
                        }
                    }
                }
            }
            (Acc::SumInt(s), Values::Integer(a)) => {
                each(a, groups, |g, v| add(&mut s[g], i128::from(v)))
            }
            (Acc::SumUnsigned(s), Values::Unsigned(a)) => {
                each(a, groups, |g, v| add(&mut s[g], u128::from(v)))
            }
            (Acc::SumFloat(s), Values::Float(a)) => each(a, groups, |g, v| add(&mut s[g], v)),
            (Acc::MeanInt(m), Values::Integer(a)) => each(a, groups, |g, v| {
                m[g].0 += i128::from(v);
                m[g].1 += 1;
            }),
            (Acc::MeanInt(m), Values::Unsigned(a)) => each(a, groups, |g, v| {
                m[g].0 += i128::from(v);
                m[g].1 += 1;
            }),
            (Acc::MeanFloat(m), Values::Float(a)) => each(a, groups, |g, v| {
                m[g].0 += v;
                m[g].1 += 1;
            }),
            (Acc::MinInt(m), Values::Integer(a)) => {
                each(a, groups, |g, v| keep(&mut m[g], v, |a, b| a < b))
            }
            (Acc::MaxInt(m), Values::Integer(a)) => {
                each(a, groups, |g, v| keep(&mut m[g], v, |a, b| a > b))
            }
            (Acc::MinInt(m), Values::Date(a)) => each(a, groups, |g, v| {
                keep(&mut m[g], i64::from(v), |a, b| a < b)
            }),
            (Acc::MaxInt(m), Values::Date(a)) => each(a, groups, |g, v| {
                keep(&mut m[g], i64::from(v), |a, b| a > b)
            }),
            (Acc::MinUnsigned(m), Values::Unsigned(a)) => {
                each(a, groups, |g, v| keep(&mut m[g], v, |a, b| a < b))
            }
            (Acc::MaxUnsigned(m), Values::Unsigned(a)) => {
                each(a, groups, |g, v| keep(&mut m[g], v, |a, b| a > b))
            }
            (Acc::MinFloat(m), Values::Float(a)) => {
                each(a, groups, |g, v| keep(&mut m[g], v, min_float))
            }
            (Acc::MaxFloat(m), Values::Float(a)) => {
                each(a, groups, |g, v| keep(&mut m[g], v, max_float))
            }
            (Acc::MinString(m), Values::String(a)) => {
                each_str(a, groups, |g, v| keep_str(&mut m[g], v, |a, b| a < b))
            }
            (Acc::MaxString(m), Values::String(a)) => {
                each_str(a, groups, |g, v| keep_str(&mut m[g], v, |a, b| a > b))
            }
            (acc, _) => unreachable!("values of another type for {acc:?}"),
        }
    }

    /// Merges `other`'s states into this one's: `other`'s group `h` is group `map[h]`
    /// here (grown to hold it already).
    pub(crate) fn absorb(&mut self, other: Acc, map: &[u32]) {
        fn into<T>(mine: &mut [T], theirs: Vec<T>, map: &[u32], mut f: impl FnMut(&mut T, T)) {
            for (t, &g) in theirs.into_iter().zip(map) {
                f(&mut mine[g as usize], t);
            }
        }
        fn opt<T>(f: impl Fn(&mut Option<T>, T)) -> impl FnMut(&mut Option<T>, Option<T>) {
            move |m, t| {
                if let Some(t) = t {
                    f(m, t)
                }
            }
        }
        match (self, other) {
            (Acc::SumInt(m), Acc::SumInt(t)) => into(m, t, map, opt(add)),
            (Acc::SumUnsigned(m), Acc::SumUnsigned(t)) => into(m, t, map, opt(add)),
            (Acc::SumFloat(m), Acc::SumFloat(t)) => into(m, t, map, opt(add)),
            (Acc::MeanInt(m), Acc::MeanInt(t)) => into(m, t, map, |m, t| {
                m.0 += t.0;
                m.1 += t.1;
            }),
            (Acc::MeanFloat(m), Acc::MeanFloat(t)) => into(m, t, map, |m, t| {
                m.0 += t.0;
                m.1 += t.1;
            }),
            (Acc::MinInt(m), Acc::MinInt(t)) => {
                into(m, t, map, opt(|m, v| keep(m, v, |a, b| a < b)))
            }
            (Acc::MaxInt(m), Acc::MaxInt(t)) => {
                into(m, t, map, opt(|m, v| keep(m, v, |a, b| a > b)))
            }
            (Acc::MinUnsigned(m), Acc::MinUnsigned(t)) => {
                into(m, t, map, opt(|m, v| keep(m, v, |a, b| a < b)))
            }
            (Acc::MaxUnsigned(m), Acc::MaxUnsigned(t)) => {
                into(m, t, map, opt(|m, v| keep(m, v, |a, b| a > b)))
            }
            (Acc::MinFloat(m), Acc::MinFloat(t)) => {
                into(m, t, map, opt(|m, v| keep(m, v, min_float)))
            }
            (Acc::MaxFloat(m), Acc::MaxFloat(t)) => {
                into(m, t, map, opt(|m, v| keep(m, v, max_float)))
            }
            (Acc::MinString(m), Acc::MinString(t)) => {
                into(m, t, map, opt(|m, v| keep(m, v, |a, b| a < b)))
            }
            (Acc::MaxString(m), Acc::MaxString(t)) => {
                into(m, t, map, opt(|m, v| keep(m, v, |a, b| a > b)))
            }
            (Acc::Count(m), Acc::Count(t)) => into(m, t, map, |m, t| *m += t),
            (Acc::Distinct(m), Acc::Distinct(t)) => into(m, t, map, |m, t| {
                if m.len() < t.len() {
                    let small = std::mem::replace(m, t);
                    m.extend(small);
                } else {
                    m.extend(t);
                }
            }),
            (acc, other) => unreachable!("states of one plan differ: {acc:?} and {other:?}"),
        }
    }

    /// The states split by group: group `g` goes to part `part_of[g]`, in order.
    pub(crate) fn split(self, part_of: &[u32], parts: usize) -> Vec<Acc> {
        fn distribute<T>(v: Vec<T>, part_of: &[u32], parts: usize) -> Vec<Vec<T>> {
            let mut out: Vec<Vec<T>> = (0..parts).map(|_| Vec::new()).collect();
            for (t, &p) in v.into_iter().zip(part_of) {
                out[p as usize].push(t);
            }
            out
        }
        per_variant!(self, |v, ctor| distribute(v, part_of, parts)
            .into_iter()
            .map(ctor)
            .collect())
    }

    /// The result column, of `output` type; `name` for errors.
    pub(crate) fn finish(&self, output: &DataType, name: &str) -> Result<ArrayRef, Error> {
        let overflow = || Error::InvalidUse(format!("`{name}`: the sum does not fit in {output}"));
        Ok(match self {
            Acc::SumInt(v) => Arc::new(
                v.iter()
                    .map(|s| {
                        s.map(|s| i64::try_from(s).map_err(|_| overflow()))
                            .transpose()
                    })
                    .collect::<Result<Int64Array, Error>>()?,
            ),
            Acc::SumUnsigned(v) => Arc::new(
                v.iter()
                    .map(|s| {
                        s.map(|s| u64::try_from(s).map_err(|_| overflow()))
                            .transpose()
                    })
                    .collect::<Result<UInt64Array, Error>>()?,
            ),
            Acc::SumFloat(v) | Acc::MinFloat(v) | Acc::MaxFloat(v) => {
                Arc::new(v.iter().copied().collect::<Float64Array>())
            }
            Acc::MeanInt(v) => Arc::new(
                v.iter()
                    .map(|&(s, n)| (n > 0).then(|| s as f64 / n as f64))
                    .collect::<Float64Array>(),
            ),
            Acc::MeanFloat(v) => Arc::new(
                v.iter()
                    .map(|&(s, n)| (n > 0).then(|| s / n as f64))
                    .collect::<Float64Array>(),
            ),
            Acc::MinInt(v) | Acc::MaxInt(v) => match output {
                DataType::Date32 => Arc::new(
                    v.iter()
                        .map(|d| d.map(|d| d as i32))
                        .collect::<Date32Array>(),
                ),
                _ => Arc::new(v.iter().copied().collect::<Int64Array>()),
            },
            Acc::MinUnsigned(v) | Acc::MaxUnsigned(v) => {
                Arc::new(v.iter().copied().collect::<UInt64Array>())
            }
            Acc::MinString(v) | Acc::MaxString(v) => {
                Arc::new(v.iter().map(Option::as_deref).collect::<StringArray>())
            }
            Acc::Count(v) => Arc::new(v.iter().map(|&n| n as i64).collect::<Int64Array>()),
            Acc::Distinct(v) => Arc::new(v.iter().map(|s| s.len() as i64).collect::<Int64Array>()),
        })
    }
}
