//! Skipping Parquet row groups by their statistics: a row group is read only if a reader's
//! filter may be true for one of its rows, judged from each column's min and max.
//! Comparisons of a column with a literal, combined with `and` / `or`, are judged;
//! anything else may match. Nulls never make a comparison true, so they never keep a
//! row group; NaN (greater than every number here) keeps it for `>`, `>=` and `!=` unless
//! the statistics say there is none.

use std::cmp::Ordering;

use arrow_schema::{DataType, Schema};
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::statistics::Statistics;

use crate::expr::{Expr, Literal, Op};

/// A column's range in one row group, as comparable values.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
enum Bound {
    Int(i64),
    Float(f64),
    Bytes(Vec<u8>),
}

struct Range {
    min: Bound,
    max: Bound,
    /// Whether NaN may be among the values (floats only).
    nan: bool,
}

/// Whether `filter` may be true for a row of `group`, in a file of arrow schema `schema`.
pub(crate) fn may_match(filter: &Expr, group: &RowGroupMetaData, schema: &Schema) -> bool {
    match filter {
        Expr::Binary {
            op: Op::And,
            left,
            right,
        } => may_match(left, group, schema) && may_match(right, group, schema),
        Expr::Binary {
            op: Op::Or,
            left,
            right,
        } => may_match(left, group, schema) || may_match(right, group, schema),
        Expr::Binary { op, left, right } => match (&**left, &**right) {
            (Expr::Column(c), Expr::Literal(v)) if judged(schema, c) => compare(group, c, *op, v),
            (Expr::Literal(v), Expr::Column(c)) if judged(schema, c) => {
                compare(group, c, flip(*op), v)
            }
            _ => true,
        },
        _ => true,
    }
}

/// Whether column `name`'s statistics compare as its values do: signed integers, floats,
/// dates and strings (not unsigned integers, decimals or timestamps, whose stored values
/// would need converting).
fn judged(schema: &Schema, name: &str) -> bool {
    schema.field_with_name(name).is_ok_and(|f| {
        matches!(
            f.data_type(),
            DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::Float32
                | DataType::Float64
                | DataType::Date32
                | DataType::Utf8
                | DataType::LargeUtf8
        )
    })
}

/// `a op b` as `b op' a`.
fn flip(op: Op) -> Op {
    match op {
        Op::Lt => Op::Gt,
        Op::LtEq => Op::GtEq,
        Op::Gt => Op::Lt,
        Op::GtEq => Op::LtEq,
        other => other,
    }
}

/// Whether `column op literal` may hold for a row of `group`.
fn compare(group: &RowGroupMetaData, column: &str, op: Op, literal: &Literal) -> bool {
    let Some(range) = range(group, column) else {
        return true;
    };
    let value = match (literal, &range.min) {
        (Literal::Int64(v), Bound::Int(_)) => Bound::Int(*v),
        (Literal::Date32(v), Bound::Int(_)) => Bound::Int(i64::from(*v)),
        (Literal::Int64(v), Bound::Float(_)) => Bound::Float(*v as f64),
        (Literal::Float64(v), Bound::Float(_)) if !v.is_nan() => Bound::Float(*v),
        (Literal::Utf8(v), Bound::Bytes(_)) => Bound::Bytes(v.as_bytes().to_vec()),
        _ => return true,
    };
    let (Some(low), Some(high)) = (range.min.partial_cmp(&value), range.max.partial_cmp(&value))
    else {
        return true;
    };
    let possible = match op {
        Op::Eq => low != Ordering::Greater && high != Ordering::Less,
        Op::NotEq => !(low == Ordering::Equal && high == Ordering::Equal),
        Op::Lt => low == Ordering::Less,
        Op::LtEq => low != Ordering::Greater,
        Op::Gt => high == Ordering::Greater,
        Op::GtEq => high != Ordering::Less,
        _ => true,
    };
    possible || (range.nan && matches!(op, Op::Gt | Op::GtEq | Op::NotEq))
}

/// The exact min and max of top-level column `name` in `group`, if recorded.
fn range(group: &RowGroupMetaData, name: &str) -> Option<Range> {
    let chunk = group
        .columns()
        .iter()
        .find(|c| c.column_path().parts() == [name])?;
    fn exact<T: Clone>(
        s: &parquet::file::statistics::ValueStatistics<T>,
        f: impl Fn(&T) -> Option<Bound>,
    ) -> Option<(Bound, Bound)> {
        if !s.min_is_exact() || !s.max_is_exact() {
            return None;
        }
        Some((f(s.min_opt()?)?, f(s.max_opt()?)?))
    }
    let (stats, nan) = (chunk.statistics()?, true);
    let (min, max) = match stats {
        Statistics::Int32(s) => exact(s, |v| Some(Bound::Int(i64::from(*v))))?,
        Statistics::Int64(s) => exact(s, |v| Some(Bound::Int(*v)))?,
        Statistics::Float(s) => exact(s, |v| Some(Bound::Float(f64::from(*v))))?,
        Statistics::Double(s) => exact(s, |v| Some(Bound::Float(*v)))?,
        Statistics::ByteArray(s) => exact(s, |v| Some(Bound::Bytes(v.data().to_vec())))?,
        _ => return None,
    };
    // Only floats have NaN; without a count of them, assume there may be some.
    let nan = nan && matches!(min, Bound::Float(_)) && stats_nan_count(stats) != Some(0);
    Some(Range { min, max, nan })
}

fn stats_nan_count(stats: &Statistics) -> Option<u64> {
    match stats {
        Statistics::Float(s) => s.nan_count_opt(),
        Statistics::Double(s) => s.nan_count_opt(),
        _ => None,
    }
}
