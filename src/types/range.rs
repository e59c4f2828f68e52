//! Ranges and multiranges of any element type: [`Range<T>`] (empty, or two
//! [`Bound`]s that may be infinite) and [`Multirange<T>`].
//!
//! Binary form (range_send): a flags byte, then each finite bound as a 4-byte length and
//! the subtype's bytes. A multirange is a count and each range with its length.

use std::fmt;
use std::ops::Bound;

use bytes::{BufMut, BytesMut};

use super::{BoxError, FromSql, IsNull, Kind, ToSql, Type, invalid, wrong_type};

const EMPTY: u8 = 0x01;
const LB_INC: u8 = 0x02;
const UB_INC: u8 = 0x04;
const LB_INF: u8 = 0x08;
const UB_INF: u8 = 0x10;

/// A range value: empty, or between two bounds (`Bound::Unbounded` for infinity).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Range<T> {
    /// The empty range.
    Empty,
    /// A range from `lower` to `upper`.
    NonEmpty {
        /// The lower bound.
        lower: Bound<T>,
        /// The upper bound.
        upper: Bound<T>,
    },
}

impl<T> Range<T> {
    /// A range from `lower` to `upper`.
    pub fn new(lower: Bound<T>, upper: Bound<T>) -> Range<T> {
        Range::NonEmpty { lower, upper }
    }
}

/// A multirange value: its ranges in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Multirange<T>(pub Vec<Range<T>>);

/// The subtype of a range type, if `ty` is one.
fn subtype(ty: &Type) -> Option<&Type> {
    match ty.kind() {
        Kind::Range(s) => Some(s),
        _ => None,
    }
}

/// The range type of a multirange type, if `ty` is one.
fn range_of(ty: &Type) -> Option<&Type> {
    match ty.kind() {
        Kind::Multirange(r) => Some(r),
        _ => None,
    }
}

fn write_bound<T: ToSql>(sub: &Type, value: &T, out: &mut BytesMut) -> Result<(), BoxError> {
    let at = out.len();
    out.put_i32(0);
    if value.to_sql_checked(sub, out)? == IsNull::Yes {
        return Err(invalid(sub, "a range bound cannot be NULL".into()));
    }
    let len = i32::try_from(out.len() - at - 4)
        .map_err(|_| invalid(sub, "a range bound longer than 2 GiB".into()))?;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

fn write_range<T: ToSql>(ty: &Type, r: &Range<T>, out: &mut BytesMut) -> Result<(), BoxError> {
    let sub = subtype(ty).ok_or_else(|| wrong_type::<Range<T>>(ty))?;
    let (lower, upper) = match r {
        Range::Empty => {
            out.put_u8(EMPTY);
            return Ok(());
        }
        Range::NonEmpty { lower, upper } => (lower, upper),
    };
    let flag = |b: &Bound<T>, inc: u8, inf: u8| match b {
        Bound::Included(_) => inc,
        Bound::Excluded(_) => 0,
        Bound::Unbounded => inf,
    };
    out.put_u8(flag(lower, LB_INC, LB_INF) | flag(upper, UB_INC, UB_INF));
    for b in [lower, upper] {
        if let Bound::Included(v) | Bound::Excluded(v) = b {
            write_bound(sub, v, out)?;
        }
    }
    Ok(())
}

fn read_range<'a, T: FromSql<'a>>(ty: &Type, raw: &'a [u8]) -> Result<Range<T>, BoxError> {
    let sub = subtype(ty).ok_or_else(|| wrong_type::<Range<T>>(ty))?;
    let bad = |why: &str| invalid(ty, why.to_owned());
    let (&flags, mut rest) = raw.split_first().ok_or_else(|| bad("empty value"))?;
    if flags & EMPTY != 0 {
        return match rest.is_empty() {
            true => Ok(Range::Empty),
            false => Err(bad("trailing bytes")),
        };
    }
    let mut bound = |inc: u8, inf: u8| -> Result<Bound<T>, BoxError> {
        if flags & inf != 0 {
            return Ok(Bound::Unbounded);
        }
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("truncated"))?;
        let len = usize::try_from(i32::from_be_bytes(*len)).map_err(|_| bad("NULL bound"))?;
        if tail.len() < len {
            return Err(bad("truncated"));
        }
        let (value, tail) = tail.split_at(len);
        rest = tail;
        let value = T::from_sql(sub.base(), value)?;
        Ok(match flags & inc != 0 {
            true => Bound::Included(value),
            false => Bound::Excluded(value),
        })
    };
    let lower = bound(LB_INC, LB_INF)?;
    let upper = bound(UB_INC, UB_INF)?;
    match rest.is_empty() {
        true => Ok(Range::NonEmpty { lower, upper }),
        false => Err(bad("trailing bytes")),
    }
}

impl<T: ToSql> ToSql for Range<T> {
    fn sql_type() -> Type {
        T::sql_type().range_type().unwrap_or(Type::UNSPECIFIED)
    }

    fn accepts(ty: &Type) -> bool {
        subtype(ty).is_some_and(|s| T::accepts(s.base()))
    }

    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        write_range(ty, self, out)?;
        Ok(IsNull::No)
    }

    crate::to_sql_checked!();
}

impl<'a, T: FromSql<'a>> FromSql<'a> for Range<T> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        read_range(ty, raw)
    }

    fn accepts(ty: &Type) -> bool {
        subtype(ty).is_some_and(|s| T::accepts(s.base()))
    }
}

impl<T: ToSql> ToSql for Multirange<T> {
    fn sql_type() -> Type {
        let range = <Range<T> as ToSql>::sql_type();
        range.multirange_type().unwrap_or(Type::UNSPECIFIED)
    }

    fn accepts(ty: &Type) -> bool {
        range_of(ty).is_some_and(<Range<T> as ToSql>::accepts)
    }

    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let range_ty = range_of(ty).ok_or_else(|| wrong_type::<Self>(ty))?;
        let count =
            i32::try_from(self.0.len()).map_err(|_| invalid(ty, "too many ranges".into()))?;
        out.put_i32(count);
        for r in &self.0 {
            let at = out.len();
            out.put_i32(0);
            write_range(range_ty, r, out)?;
            let len = i32::try_from(out.len() - at - 4)
                .map_err(|_| invalid(ty, "a range larger than 2 GiB".into()))?;
            out[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        Ok(IsNull::No)
    }

    crate::to_sql_checked!();
}

impl<'a, T: FromSql<'a>> FromSql<'a> for Multirange<T> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let range_ty = range_of(ty).ok_or_else(|| wrong_type::<Self>(ty))?;
        let bad = |why: &str| invalid(ty, why.to_owned());
        let (count, mut rest) = raw
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("truncated"))?;
        let count = usize::try_from(i32::from_be_bytes(*count)).map_err(|_| bad("bad count"))?;
        let mut ranges = Vec::with_capacity(count.min(rest.len() / 5));
        for _ in 0..count {
            let (len, tail) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| bad("truncated"))?;
            let len = usize::try_from(i32::from_be_bytes(*len)).map_err(|_| bad("bad length"))?;
            if tail.len() < len {
                return Err(bad("truncated"));
            }
            let (value, tail) = tail.split_at(len);
            ranges.push(read_range(range_ty, value)?);
            rest = tail;
        }
        match rest.is_empty() {
            true => Ok(Multirange(ranges)),
            false => Err(bad("trailing bytes")),
        }
    }

    fn accepts(ty: &Type) -> bool {
        range_of(ty).is_some_and(<Range<T> as FromSql>::accepts)
    }
}

impl<T: fmt::Display> fmt::Display for Range<T> {
    /// The server's text form: `[1,5)`, `(,"2000-01-01 00:00:00")`, `empty`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (lower, upper) = match self {
            Range::Empty => return f.write_str("empty"),
            Range::NonEmpty { lower, upper } => (lower, upper),
        };
        let mut s = String::new();
        s.push(if matches!(lower, Bound::Included(_)) {
            '['
        } else {
            '('
        });
        write_range_bound(&mut s, lower);
        s.push(',');
        write_range_bound(&mut s, upper);
        s.push(if matches!(upper, Bound::Included(_)) {
            ']'
        } else {
            ')'
        });
        f.write_str(&s)
    }
}

/// Writes a bound as range_out does: quoted (quotes and backslashes doubled) when empty
/// or holding quotes, backslashes, parentheses, brackets, commas or white space.
fn write_range_bound<T: fmt::Display>(s: &mut String, b: &Bound<T>) {
    if let Bound::Included(v) | Bound::Excluded(v) = b {
        let text = v.to_string();
        let needs = text.is_empty()
            || text
                .chars()
                .any(|c| "\"\\()[],".contains(c) || c.is_ascii_whitespace());
        if !needs {
            s.push_str(&text);
            return;
        }
        s.push('"');
        for c in text.chars() {
            if matches!(c, '"' | '\\') {
                s.push(c);
            }
            s.push(c);
        }
        s.push('"');
    }
}

impl<T: fmt::Display> fmt::Display for Multirange<T> {
    /// The server's text form: `{[1,3),[5,7)}`, `{}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::test_enc as enc;

    #[test]
    fn range_golden_bytes() {
        let r = Range::new(Bound::Included(1i32), Bound::Excluded(5));
        let bytes = enc(&r, &Type::INT4_RANGE);
        assert_eq!(
            bytes,
            [LB_INC, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 5]
        );
        assert_eq!(
            Range::<i32>::from_sql(&Type::INT4_RANGE, &bytes).unwrap(),
            r
        );
        assert_eq!(r.to_string(), "[1,5)");
        assert_eq!(enc(&Range::<i32>::Empty, &Type::INT4_RANGE), [EMPTY]);
        assert_eq!(Range::<i32>::Empty.to_string(), "empty");
        let open = Range::<i64>::new(Bound::Unbounded, Bound::Included(3));
        let bytes = enc(&open, &Type::INT8_RANGE);
        assert_eq!(bytes[0], LB_INF | UB_INC);
        assert_eq!(
            Range::<i64>::from_sql(&Type::INT8_RANGE, &bytes).unwrap(),
            open
        );
        assert_eq!(open.to_string(), "(,3]");
        assert_eq!(<Range<i32> as ToSql>::sql_type(), Type::INT4_RANGE);
        assert!(!<Range<i32> as ToSql>::accepts(&Type::INT8_RANGE));
        assert!(Range::<i32>::from_sql(&Type::INT4_RANGE, &[LB_INC, 0, 0, 0, 4]).is_err());
        assert!(Range::<i32>::from_sql(&Type::INT4_RANGE, &[EMPTY, 0]).is_err());
        assert!(Range::<i32>::from_sql(&Type::INT4_RANGE, &[]).is_err());
        let quoted = Range::new(Bound::Included("a b"), Bound::Unbounded);
        assert_eq!(quoted.to_string(), "[\"a b\",)");
    }

    #[test]
    fn multirange_golden_bytes() {
        let m = Multirange(vec![Range::new(Bound::Included(1i32), Bound::Excluded(2))]);
        let bytes = enc(&m, &Type::INT4MULTI_RANGE);
        let mut expected = vec![0, 0, 0, 1, 0, 0, 0, 17, LB_INC];
        expected.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 2]);
        assert_eq!(bytes, expected);
        assert_eq!(
            Multirange::<i32>::from_sql(&Type::INT4MULTI_RANGE, &bytes).unwrap(),
            m
        );
        assert_eq!(m.to_string(), "{[1,2)}");
        assert_eq!(
            <Multirange<i32> as ToSql>::sql_type(),
            Type::INT4MULTI_RANGE
        );
        assert_eq!(Multirange::<i32>(vec![]).to_string(), "{}");
    }
}
