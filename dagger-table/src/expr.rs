//! A small expression layer: columns, literals, arithmetic, comparisons, boolean logic and
//! dates, checked against a schema before any task runs, then evaluated on each batch
//! with arrow-rs's kernels.
//!
//! Semantics are SQL's: an operation with a null operand is null, `and` / `or` use
//! three-valued logic, and a filter drops rows whose condition is null. Integers mix as
//! Int64 (UInt64 between unsigned values and non-negative literals); a value that does not
//! fit is an error. Floats compare as numbers (`-0.0 == 0.0`), with NaN equal to itself
//! and greater than every other number, as in PostgreSQL.

use std::fmt;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, PrimitiveArray,
    RecordBatch, StringArray,
};
use arrow_schema::{DataType, Schema};
use dagger_core::Error;

/// A value computed from the columns of a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A column, by name.
    Column(String),
    /// A constant.
    Literal(Literal),
    /// `left op right`.
    Binary {
        /// The operator.
        op: Op,
        /// Its left operand.
        left: Box<Expr>,
        /// Its right operand.
        right: Box<Expr>,
    },
    /// Logical negation of a boolean.
    Not(Box<Expr>),
    /// Whether the value is null.
    IsNull(Box<Expr>),
}

/// A constant in an expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// A 64-bit integer.
    Int64(i64),
    /// A 64-bit float.
    Float64(f64),
    /// A string.
    Utf8(String),
    /// A boolean.
    Boolean(bool),
    /// A date, in days since 1970-01-01.
    Date32(i32),
}

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (integer division on integers; division by zero is an error)
    Div,
    /// `==`
    Eq,
    /// `!=`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// logical and (SQL's three-valued logic)
    And,
    /// logical or (SQL's three-valued logic)
    Or,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Div => "/",
            Op::Eq => "==",
            Op::NotEq => "!=",
            Op::Lt => "<",
            Op::LtEq => "<=",
            Op::Gt => ">",
            Op::GtEq => ">=",
            Op::And => "and",
            Op::Or => "or",
        }
    }

    fn is_arithmetic(self) -> bool {
        matches!(self, Op::Add | Op::Sub | Op::Mul | Op::Div)
    }

    fn is_comparison(self) -> bool {
        matches!(
            self,
            Op::Eq | Op::NotEq | Op::Lt | Op::LtEq | Op::Gt | Op::GtEq
        )
    }
}

/// The column `name`.
pub fn col(name: impl Into<String>) -> Expr {
    Expr::Column(name.into())
}

/// A constant: an integer, float, string, boolean or [`date`].
pub fn lit(value: impl Into<Literal>) -> Expr {
    Expr::Literal(value.into())
}

/// A date literal from year, month and day; `None` if there is no such day.
pub fn date(year: i32, month: u32, day: u32) -> Option<Literal> {
    let days = days_from_civil(year, month, day)?;
    Some(Literal::Date32(days))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i32, month: u32, day: u32) -> Option<i32> {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || day == 0 || day > month_days[month as usize - 1] {
        return None;
    }
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    i32::try_from(era * 146_097 + doe - 719_468).ok()
}

impl From<i64> for Literal {
    fn from(v: i64) -> Self {
        Literal::Int64(v)
    }
}
impl From<i32> for Literal {
    fn from(v: i32) -> Self {
        Literal::Int64(v.into())
    }
}
impl From<f64> for Literal {
    fn from(v: f64) -> Self {
        Literal::Float64(v)
    }
}
impl From<bool> for Literal {
    fn from(v: bool) -> Self {
        Literal::Boolean(v)
    }
}
impl From<&str> for Literal {
    fn from(v: &str) -> Self {
        Literal::Utf8(v.to_owned())
    }
}
impl From<String> for Literal {
    fn from(v: String) -> Self {
        Literal::Utf8(v)
    }
}

macro_rules! binary_methods {
    ($($name:ident => $op:ident, $doc:literal;)*) => {
        impl Expr {
            $(
                #[doc = $doc]
                pub fn $name(self, other: impl Into<Expr>) -> Expr {
                    Expr::Binary { op: Op::$op, left: Box::new(self), right: Box::new(other.into()) }
                }
            )*
        }
    };
}

binary_methods! {
    eq => Eq, "`self == other`";
    not_eq => NotEq, "`self != other`";
    lt => Lt, "`self < other`";
    lt_eq => LtEq, "`self <= other`";
    gt => Gt, "`self > other`";
    gt_eq => GtEq, "`self >= other`";
    and => And, "`self and other`";
    or => Or, "`self or other`";
}

impl Expr {
    /// Whether the value is null.
    pub fn is_null(self) -> Expr {
        Expr::IsNull(Box::new(self))
    }
}

impl std::ops::Not for Expr {
    type Output = Expr;
    fn not(self) -> Expr {
        Expr::Not(Box::new(self))
    }
}

macro_rules! arithmetic {
    ($($trait:ident $method:ident => $op:ident;)*) => {$(
        impl<R: Into<Expr>> std::ops::$trait<R> for Expr {
            type Output = Expr;
            fn $method(self, other: R) -> Expr {
                Expr::Binary { op: Op::$op, left: Box::new(self), right: Box::new(other.into()) }
            }
        }
    )*};
}

arithmetic! {
    Add add => Add;
    Sub sub => Sub;
    Mul mul => Mul;
    Div div => Div;
}

impl From<Literal> for Expr {
    fn from(v: Literal) -> Self {
        Expr::Literal(v)
    }
}

macro_rules! literal_into_expr {
    ($($t:ty),*) => {$(
        impl From<$t> for Expr {
            fn from(v: $t) -> Self {
                Expr::Literal(v.into())
            }
        }
    )*};
}

literal_into_expr!(i64, i32, f64, bool, &str, String);

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Int64(v) => write!(f, "{v}"),
            Literal::Float64(v) => write!(f, "{v:?}"),
            Literal::Utf8(v) => write!(f, "{v:?}"),
            Literal::Boolean(v) => write!(f, "{v}"),
            Literal::Date32(v) => write!(f, "date({v} days)"),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(name) => write!(f, "col({name:?})"),
            Expr::Literal(v) => write!(f, "{v}"),
            Expr::Binary { op, left, right } => write!(f, "({left} {} {right})", op.symbol()),
            Expr::Not(e) => write!(f, "not {e}"),
            Expr::IsNull(e) => write!(f, "{e} is null"),
        }
    }
}

fn is_integer(t: &DataType) -> bool {
    t.is_integer()
}

fn is_numeric(t: &DataType) -> bool {
    t.is_integer() || t.is_floating()
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// The type both operands of a comparison or arithmetic are cast to, if they mix.
/// Integers are Int64, or UInt64 when both sides are unsigned (or one is unsigned and the
/// other a literal that is not negative); casts that do not fit are errors, never nulls.
fn common_type(left: &Expr, l: &DataType, right: &Expr, r: &DataType) -> Option<DataType> {
    let natural = |e: &Expr| matches!(e, Expr::Literal(Literal::Int64(v)) if *v >= 0);
    if is_integer(l) && is_integer(r) {
        let unsigned = |t: &DataType| t.is_unsigned_integer();
        let both = (unsigned(l) || natural(left)) && (unsigned(r) || natural(right));
        return Some(if both && (unsigned(l) || unsigned(r)) {
            DataType::UInt64
        } else {
            DataType::Int64
        });
    }
    let (left, right) = (l, r);
    if is_numeric(left) && is_numeric(right) {
        return Some(DataType::Float64);
    }
    if is_string(left) && is_string(right) {
        return Some(DataType::Utf8);
    }
    (left == right).then(|| left.clone())
}

impl Expr {
    /// The type of the expression over `schema`, or an error that says what is wrong
    /// with it (an unknown column, operands that do not go together).
    pub fn data_type(&self, schema: &Schema) -> Result<DataType, Error> {
        match self {
            Expr::Column(name) => Ok(field_type(schema, name)?.clone()),
            Expr::Literal(v) => Ok(literal_type(v)),
            Expr::Not(e) => {
                let t = e.data_type(schema)?;
                if t != DataType::Boolean {
                    return Err(mismatch(self, &format!("`not` needs a boolean, not {t}")));
                }
                Ok(DataType::Boolean)
            }
            Expr::IsNull(e) => {
                e.data_type(schema)?;
                Ok(DataType::Boolean)
            }
            Expr::Binary { op, left, right } => {
                let (l, r) = (left.data_type(schema)?, right.data_type(schema)?);
                if matches!(op, Op::And | Op::Or) {
                    if l != DataType::Boolean || r != DataType::Boolean {
                        return Err(mismatch(
                            self,
                            &format!("`{}` needs booleans, not {l} and {r}", op.symbol()),
                        ));
                    }
                    return Ok(DataType::Boolean);
                }
                if op.is_arithmetic() && !(is_numeric(&l) && is_numeric(&r)) {
                    return Err(mismatch(
                        self,
                        &format!("`{}` needs numbers, not {l} and {r}", op.symbol()),
                    ));
                }
                let common = common_type(left, &l, right, &r)
                    .ok_or_else(|| mismatch(self, &format!("cannot compare {l} with {r}")))?;
                if op.is_arithmetic() {
                    return Ok(common);
                }
                debug_assert!(op.is_comparison());
                Ok(DataType::Boolean)
            }
        }
    }

    /// The expression's value for every row of `batch`, which has the schema it was
    /// checked against.
    pub(crate) fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef, Error> {
        let value = self.value(batch)?;
        value.into_array(batch.num_rows())
    }

    /// The value for every row of `batch`: an array, or one value for all rows (a
    /// literal, or an operation on literals), which kernels take without repeating it.
    fn value(&self, batch: &RecordBatch) -> Result<Value, Error> {
        let schema = batch.schema();
        match self {
            Expr::Column(name) => {
                let (index, _) = schema
                    .column_with_name(name)
                    .ok_or_else(|| unknown_column(&schema, name))?;
                Ok(Value::array(batch.column(index).clone()))
            }
            Expr::Literal(v) => Ok(Value::scalar(literal_array(v, 1))),
            Expr::Not(e) => e.value(batch)?.map(|v| {
                Ok(Arc::new(
                    arrow_arith::boolean::not(as_bool(v)?).map_err(arrow)?,
                ))
            }),
            Expr::IsNull(e) => e
                .value(batch)?
                .map(|v| Ok(Arc::new(arrow_arith::boolean::is_null(v).map_err(arrow)?))),
            Expr::Binary { op, left, right } => {
                let (l, r) = (left.value(batch)?, right.value(batch)?);
                let rows = batch.num_rows();
                if matches!(op, Op::And | Op::Or) {
                    let scalar = l.scalar && r.scalar;
                    let (l, r) = match scalar {
                        true => (l.array, r.array),
                        false => (l.into_array(rows)?, r.into_array(rows)?),
                    };
                    let (l, r) = (as_bool(&l)?, as_bool(&r)?);
                    let out = match op {
                        Op::And => arrow_arith::boolean::and_kleene(l, r),
                        _ => arrow_arith::boolean::or_kleene(l, r),
                    };
                    return Ok(Value {
                        array: Arc::new(out.map_err(arrow)?),
                        scalar,
                    });
                }
                let common = common_type(left, l.array.data_type(), right, r.array.data_type())
                    .ok_or_else(|| mismatch(self, "operand types changed"))?;
                let mut l = l.cast(&common).map_err(|e| out_of_range(self, e))?;
                let mut r = r.cast(&common).map_err(|e| out_of_range(self, e))?;
                if common.is_floating() && op.is_comparison() {
                    // Arrow compares floats in total order by their bits, where -0.0 < 0.0
                    // and a NaN with its sign bit set sorts below every number: -0.0
                    // becomes 0.0 and every NaN the one positive NaN, equal to itself and
                    // above every number.
                    let normal = |v: Value| -> Result<Value, Error> {
                        let floats = v.array.as_primitive::<Float64Type>();
                        let array: PrimitiveArray<Float64Type> =
                            arrow_arith::arity::unary(floats, |x: f64| {
                                if x.is_nan() {
                                    f64::NAN
                                } else {
                                    x + 0.0
                                }
                            });
                        Ok(Value {
                            array: Arc::new(array),
                            scalar: v.scalar,
                        })
                    };
                    (l, r) = (normal(l)?, normal(r)?);
                }
                let scalar = l.scalar && r.scalar;
                let (l, r) = (l.datum(), r.datum());
                let (l, r): (&dyn arrow_array::Datum, &dyn arrow_array::Datum) = (&*l, &*r);
                use arrow_ord::cmp;
                let out: ArrayRef = match op {
                    Op::Add => arrow_arith::numeric::add(l, r).map_err(arrow)?,
                    Op::Sub => arrow_arith::numeric::sub(l, r).map_err(arrow)?,
                    Op::Mul => arrow_arith::numeric::mul(l, r).map_err(arrow)?,
                    Op::Div => arrow_arith::numeric::div(l, r)
                        .map_err(|e| Error::InvalidUse(format!("{self}: {e}")))?,
                    Op::Eq => Arc::new(cmp::eq(l, r).map_err(arrow)?),
                    Op::NotEq => Arc::new(cmp::neq(l, r).map_err(arrow)?),
                    Op::Lt => Arc::new(cmp::lt(l, r).map_err(arrow)?),
                    Op::LtEq => Arc::new(cmp::lt_eq(l, r).map_err(arrow)?),
                    Op::Gt => Arc::new(cmp::gt(l, r).map_err(arrow)?),
                    Op::GtEq => Arc::new(cmp::gt_eq(l, r).map_err(arrow)?),
                    Op::And | Op::Or => unreachable!("handled above"),
                };
                Ok(Value { array: out, scalar })
            }
        }
    }
}

/// An expression's value over a batch: an array of every row's value, or (`scalar`) a
/// one-element array holding the value of every row.
struct Value {
    array: ArrayRef,
    scalar: bool,
}

impl Value {
    fn array(array: ArrayRef) -> Value {
        Value {
            array,
            scalar: false,
        }
    }

    fn scalar(array: ArrayRef) -> Value {
        Value {
            array,
            scalar: true,
        }
    }

    /// The same kind of value, with `f` applied to the array.
    fn map(self, f: impl FnOnce(&ArrayRef) -> Result<ArrayRef, Error>) -> Result<Value, Error> {
        Ok(Value {
            array: f(&self.array)?,
            scalar: self.scalar,
        })
    }

    fn cast(self, to: &DataType) -> Result<Value, Error> {
        self.map(|a| cast(a, to))
    }

    /// As a kernel operand.
    fn datum(&self) -> Box<dyn arrow_array::Datum + '_> {
        match self.scalar {
            true => Box::new(arrow_array::Scalar::new(&self.array)),
            false => Box::new(&self.array),
        }
    }

    /// An array of `rows` values.
    fn into_array(self, rows: usize) -> Result<ArrayRef, Error> {
        if !self.scalar {
            return Ok(self.array);
        }
        let zeros = arrow_array::UInt32Array::from(vec![0u32; rows]);
        arrow_select::take::take(&self.array, &zeros, None).map_err(arrow)
    }
}

fn literal_type(v: &Literal) -> DataType {
    match v {
        Literal::Int64(_) => DataType::Int64,
        Literal::Float64(_) => DataType::Float64,
        Literal::Utf8(_) => DataType::Utf8,
        Literal::Boolean(_) => DataType::Boolean,
        Literal::Date32(_) => DataType::Date32,
    }
}

/// `v` repeated `rows` times.
fn literal_array(v: &Literal, rows: usize) -> ArrayRef {
    match v {
        Literal::Int64(x) => Arc::new(Int64Array::from_value(*x, rows)),
        Literal::Float64(x) => Arc::new(Float64Array::from_value(*x, rows)),
        Literal::Utf8(x) => Arc::new(StringArray::from_iter_values(std::iter::repeat_n(x, rows))),
        Literal::Boolean(x) => Arc::new(BooleanArray::from(vec![*x; rows])),
        Literal::Date32(x) => Arc::new(Date32Array::from_value(*x, rows)),
    }
}

/// `array` as `to`; a value that does not fit is an error (arrow's default turns it into
/// a null, which would lose it silently).
pub(crate) fn cast(array: &ArrayRef, to: &DataType) -> Result<ArrayRef, Error> {
    if array.data_type() == to {
        return Ok(array.clone());
    }
    let options = arrow_cast::CastOptions {
        safe: false,
        ..Default::default()
    };
    arrow_cast::cast_with_options(array, to, &options).map_err(arrow)
}

fn out_of_range(expr: &Expr, e: Error) -> Error {
    Error::InvalidUse(format!("in `{expr}`: {e}"))
}

fn as_bool(array: &ArrayRef) -> Result<&BooleanArray, Error> {
    array
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| Error::InvalidUse(format!("expected booleans, got {}", array.data_type())))
}

pub(crate) fn arrow(e: arrow_schema::ArrowError) -> Error {
    Error::InvalidUse(format!("arrow: {e}"))
}

fn mismatch(expr: &Expr, what: &str) -> Error {
    Error::InvalidUse(format!("type mismatch in `{expr}`: {what}"))
}

/// The type of column `name`, or an error that lists the columns there are.
pub(crate) fn field_type<'s>(schema: &'s Schema, name: &str) -> Result<&'s DataType, Error> {
    schema
        .column_with_name(name)
        .map(|(_, field)| field.data_type())
        .ok_or_else(|| unknown_column(schema, name))
}

pub(crate) fn unknown_column(schema: &Schema, name: &str) -> Error {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    Error::InvalidUse(format!(
        "unknown column `{name}`; the table has: {}",
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_count_days_from_the_epoch() {
        assert_eq!(date(1970, 1, 1), Some(Literal::Date32(0)));
        assert_eq!(date(1998, 12, 1), Some(Literal::Date32(10_561)));
        assert_eq!(date(2000, 3, 1), Some(Literal::Date32(11_017)));
        assert_eq!(date(1969, 12, 31), Some(Literal::Date32(-1)));
        assert_eq!(date(2023, 2, 29), None);
        assert_eq!(date(2024, 2, 29), Some(Literal::Date32(19_782)));
    }
}
