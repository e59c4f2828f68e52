//! Arrays: `Vec<T>` and `&[T]` for one dimension, [`Array<T>`] for any number of
//! dimensions, NULL elements and lower bounds other than 1.
//!
//! Binary form (array_send): ndim, has-NULL flag, element OID, (length, lower bound) per
//! dimension, then each element as a 4-byte length (-1 for NULL) and its bytes.

use std::fmt::{self, Write as _};

use bytes::{BufMut, BytesMut};

use super::{BoxError, FromSql, IsNull, Kind, ToSql, Type, invalid, wrong_type};

/// The most dimensions the server allows (MAXDIM).
const MAX_DIMS: usize = 6;

/// One dimension of an array: its length and the index of its first element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dimension {
    /// The number of elements along this dimension.
    pub len: i32,
    /// The index of the first element (1 unless the array says otherwise).
    pub lower_bound: i32,
}

/// An array of any shape: dimensions and the elements in row-major order, NULL as `None`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Array<T> {
    dims: Vec<Dimension>,
    elements: Vec<Option<T>>,
}

impl<T> Array<T> {
    /// An array of `elements` with the shape `dims`; `None` when the element count does
    /// not match the dimensions, or there are more than 6 dimensions.
    pub fn from_parts(elements: Vec<Option<T>>, dims: Vec<Dimension>) -> Option<Array<T>> {
        let count = dims
            .iter()
            .try_fold(1usize, |n, d| n.checked_mul(usize::try_from(d.len).ok()?))?;
        let ok = dims.len() <= MAX_DIMS
            && if dims.is_empty() {
                elements.is_empty()
            } else {
                count > 0 && count == elements.len()
            };
        ok.then_some(Array { dims, elements })
    }

    /// A one-dimensional array indexed from 1.
    pub fn from_vec(elements: Vec<Option<T>>) -> Array<T> {
        let dims = match elements.len() {
            0 => Vec::new(),
            n => vec![Dimension {
                len: n as i32,
                lower_bound: 1,
            }],
        };
        Array { dims, elements }
    }

    /// The dimensions (empty for an empty array).
    pub fn dimensions(&self) -> &[Dimension] {
        &self.dims
    }

    /// The elements in row-major order.
    pub fn elements(&self) -> &[Option<T>] {
        &self.elements
    }

    /// The elements in row-major order, by value.
    pub fn into_elements(self) -> Vec<Option<T>> {
        self.elements
    }
}

/// The element type of an array type, if `ty` is one.
fn element(ty: &Type) -> Option<&Type> {
    match ty.kind() {
        Kind::Array(e) => Some(e),
        _ => None,
    }
}

/// Whether an array of `ty` holds elements that `accepts` takes.
fn accepts_elements(ty: &Type, accepts: fn(&Type) -> bool) -> bool {
    element(ty).is_some_and(|e| accepts(e.base()))
}

/// Why the elements of an array of `ty` do not fit, as the element type says.
fn element_mismatch(ty: &Type, mismatch: fn(&Type) -> Option<String>) -> Option<String> {
    let elem = element(ty)?.base();
    mismatch(elem).map(|why| format!("its element type {elem}: {why}"))
}

/// Writes an array of `ty` with `dims`, encoding each element with `to_sql_checked`.
fn write_array<'e, T: ToSql + 'e>(
    ty: &Type,
    dims: &[Dimension],
    elements: impl Iterator<Item = Option<&'e T>>,
    out: &mut BytesMut,
) -> Result<(), BoxError> {
    let elem = element(ty).ok_or_else(|| wrong_type::<T>(ty))?;
    out.put_i32(dims.len() as i32);
    let has_null_at = out.len();
    out.put_i32(0);
    out.put_u32(elem.oid());
    for d in dims {
        out.put_i32(d.len);
        out.put_i32(d.lower_bound);
    }
    let mut has_null = false;
    for value in elements {
        let at = out.len();
        out.put_i32(0);
        let null = match value {
            Some(v) => v.to_sql_checked(elem, out)? == IsNull::Yes,
            None => true,
        };
        let len = match null {
            true => -1,
            false => i32::try_from(out.len() - at - 4)
                .map_err(|_| invalid(ty, "an element longer than 2 GiB".into()))?,
        };
        has_null |= null;
        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
    out[has_null_at..has_null_at + 4].copy_from_slice(&i32::from(has_null).to_be_bytes());
    Ok(())
}

/// Reads an array's header and elements, decoding each with `T::from_sql_nullable`.
fn read_array<'a, T: FromSql<'a>>(
    ty: &Type,
    raw: &'a [u8],
) -> Result<(Vec<Dimension>, Vec<T>), BoxError> {
    let elem = element(ty).ok_or_else(|| wrong_type::<T>(ty))?;
    let elem = elem.base();
    let mut r = Reader { ty, raw };
    let ndim = usize::try_from(r.i32()?).map_err(|_| r.bad("negative dimensions"))?;
    if ndim > MAX_DIMS {
        return Err(r.bad("more than 6 dimensions"));
    }
    let _has_null = r.i32()?;
    let _elem_oid = r.i32()?;
    let mut dims = Vec::with_capacity(ndim);
    let mut count = 1usize;
    for _ in 0..ndim {
        let d = Dimension {
            len: r.i32()?,
            lower_bound: r.i32()?,
        };
        let len = usize::try_from(d.len).map_err(|_| r.bad("negative length"))?;
        count = count
            .checked_mul(len)
            .ok_or_else(|| r.bad("too many elements"))?;
        dims.push(d);
    }
    // PostgreSQL sends an empty array with no dimensions: dimensions that multiply to
    // nothing would make a huge, empty shape to walk.
    if ndim > 0 && count == 0 {
        return Err(r.bad("dimensions with no elements"));
    }
    let count = if ndim == 0 { 0 } else { count };
    // Every element takes at least its 4-byte length: bound the allocation by the input.
    let mut elements = Vec::with_capacity(count.min(r.raw.len() / 4));
    for _ in 0..count {
        let value = match r.i32()? {
            -1 => None,
            len => Some(r.take(usize::try_from(len).map_err(|_| r.bad("bad length"))?)?),
        };
        elements.push(T::from_sql_nullable(elem, value)?);
    }
    if !r.raw.is_empty() {
        return Err(r.bad("trailing bytes"));
    }
    Ok((dims, elements))
}

/// A cursor over an array's bytes whose errors name the type.
pub(super) struct Reader<'a, 't> {
    pub(super) ty: &'t Type,
    pub(super) raw: &'a [u8],
}

impl<'a> Reader<'a, '_> {
    pub(super) fn bad(&self, why: &str) -> BoxError {
        invalid(self.ty, why.to_owned())
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], BoxError> {
        if self.raw.len() < n {
            return Err(self.bad("truncated"));
        }
        let (head, rest) = self.raw.split_at(n);
        self.raw = rest;
        Ok(head)
    }

    pub(super) fn i32(&mut self) -> Result<i32, BoxError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// The built-in array type of `T`'s own type, else "let the server infer".
fn array_sql_type<T: ToSql>() -> Type {
    T::sql_type().array_type().unwrap_or(Type::UNSPECIFIED)
}

/// Implements ToSql for a one-dimensional sequence type.
macro_rules! seq_to_sql {
    ($($t:ty),*) => {$(
        impl<T: ToSql> ToSql for $t {
            fn sql_type() -> Type {
                array_sql_type::<T>()
            }

            fn accepts(ty: &Type) -> bool {
                accepts_elements(ty, T::accepts)
            }

            fn mismatch(ty: &Type) -> Option<String> {
                element_mismatch(ty, <T as ToSql>::mismatch)
            }

            fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
                let dims = match self.len() {
                    0 => Vec::new(),
                    n => vec![Dimension {
                        len: i32::try_from(n).map_err(|_| invalid(ty, "too many elements".into()))?,
                        lower_bound: 1,
                    }],
                };
                write_array(ty, &dims, self.iter().map(Some), out)?;
                Ok(IsNull::No)
            }

            crate::to_sql_checked!();
        }
    )*};
}

seq_to_sql!(Vec<T>, &[T]);

impl<'a, T: FromSql<'a>> FromSql<'a> for Vec<T> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let (dims, elements) = read_array::<T>(ty, raw)?;
        match dims.len() {
            0 | 1 => Ok(elements),
            n => Err(invalid(
                ty,
                format!(
                    "a {n}-dimensional array does not fit Vec; read it as pgkeel::types::Array<T>"
                ),
            )),
        }
    }

    fn accepts(ty: &Type) -> bool {
        accepts_elements(ty, T::accepts)
    }

    fn mismatch(ty: &Type) -> Option<String> {
        element_mismatch(ty, T::mismatch)
    }
}

impl<T: ToSql> ToSql for Array<T> {
    fn sql_type() -> Type {
        array_sql_type::<T>()
    }

    fn accepts(ty: &Type) -> bool {
        accepts_elements(ty, T::accepts)
    }

    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        write_array(
            ty,
            &self.dims,
            self.elements.iter().map(Option::as_ref),
            out,
        )?;
        Ok(IsNull::No)
    }

    crate::to_sql_checked!();
}

impl<'a, T: FromSql<'a>> FromSql<'a> for Array<T> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let (dims, elements) = read_array::<Option<T>>(ty, raw)?;
        Ok(Array { dims, elements })
    }

    fn accepts(ty: &Type) -> bool {
        accepts_elements(ty, T::accepts)
    }
}

/// Writes an element as array_out does: quoted when empty, `NULL`-like, or holding
/// braces, quotes, commas, backslashes or white space.
fn write_quoted(s: &mut String, text: &str, specials: &[char], empty_quoted: bool) {
    let needs = (text.is_empty() && empty_quoted)
        || text
            .chars()
            .any(|c| specials.contains(&c) || c.is_ascii_whitespace() || c == '\x0b');
    if needs {
        s.push('"');
    }
    for c in text.chars() {
        if needs && matches!(c, '"' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    if needs {
        s.push('"');
    }
}

impl<T: fmt::Display> fmt::Display for Array<T> {
    /// The server's text form: `{1,NULL,"a b"}`, `{{1,2},{3,4}}`, `[0:1]={1,2}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        if self.dims.iter().any(|d| d.lower_bound != 1) {
            for d in &self.dims {
                let upper = i64::from(d.lower_bound) + i64::from(d.len) - 1;
                let _ = write!(s, "[{}:{}]", d.lower_bound, upper);
            }
            s.push('=');
        }
        if self.dims.is_empty() {
            return f.write_str("{}");
        }
        let mut it = self.elements.iter();
        write_level(&mut s, &self.dims, &mut it);
        f.write_str(&s)
    }
}

fn write_level<'e, T: fmt::Display + 'e>(
    s: &mut String,
    dims: &[Dimension],
    it: &mut impl Iterator<Item = &'e Option<T>>,
) {
    s.push('{');
    for i in 0..dims[0].len {
        if i > 0 {
            s.push(',');
        }
        if dims.len() > 1 {
            write_level(s, &dims[1..], it);
            continue;
        }
        match it.next() {
            Some(Some(v)) => {
                let text = v.to_string();
                let null_like = text.eq_ignore_ascii_case("null");
                if null_like {
                    let _ = write!(s, "\"{text}\"");
                } else {
                    write_quoted(s, &text, &['{', '}', '"', ',', '\\'], true);
                }
            }
            _ => s.push_str("NULL"),
        }
    }
    s.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::test_enc as enc;

    #[test]
    fn dimensions_that_multiply_to_nothing_are_refused() {
        // Two dimensions, 2^31 - 1 by 0: no elements, but a shape too big to walk.
        let raw = [
            0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 23, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1,
        ]
        .into_iter()
        .chain([0, 0, 0, 0, 0, 0, 0, 1])
        .collect::<Vec<u8>>();
        assert!(Array::<i32>::from_sql(&Type::INT4_ARRAY, &raw).is_err());
        let dims = vec![
            Dimension {
                len: i32::MAX,
                lower_bound: 1,
            },
            Dimension {
                len: 0,
                lower_bound: 1,
            },
        ];
        assert!(Array::<i32>::from_parts(Vec::new(), dims).is_none());
    }

    fn words(w: &[i32]) -> Vec<u8> {
        w.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn vec_golden_bytes() {
        let bytes = enc(&vec![1i32, 2], &Type::INT4_ARRAY);
        assert_eq!(bytes, words(&[1, 0, 23, 2, 1, 4, 1, 4, 2]));
        assert_eq!(
            Vec::<i32>::from_sql(&Type::INT4_ARRAY, &bytes).unwrap(),
            [1, 2]
        );
        let empty = enc(&Vec::<i32>::new(), &Type::INT4_ARRAY);
        assert_eq!(empty, words(&[0, 0, 23]));
        assert!(
            Vec::<i32>::from_sql(&Type::INT4_ARRAY, &empty)
                .unwrap()
                .is_empty()
        );
        let nulls = enc(&vec![Some("a"), None], &Type::TEXT_ARRAY);
        let mut expected = words(&[1, 1, 25, 2, 1, 1]);
        expected.push(b'a');
        expected.extend(words(&[-1]));
        assert_eq!(nulls, expected);
        let back = Vec::<Option<String>>::from_sql(&Type::TEXT_ARRAY, &nulls).unwrap();
        assert_eq!(back, [Some("a".to_owned()), None]);
        let err = Vec::<String>::from_sql(&Type::TEXT_ARRAY, &nulls).unwrap_err();
        assert!(err.to_string().contains("NULL"), "{err}");
        assert_eq!(<Vec<i64> as ToSql>::sql_type(), Type::INT8_ARRAY);
        assert_eq!(<&[String] as ToSql>::sql_type(), Type::TEXT_ARRAY);
        assert!(!<Vec<i64> as ToSql>::accepts(&Type::INT4_ARRAY));
        assert!(!<Vec<i64> as FromSql>::accepts(&Type::INT8));
        let slice: &[i32] = &[7];
        assert_eq!(
            enc(&slice, &Type::INT4_ARRAY),
            words(&[1, 0, 23, 1, 1, 4, 7])
        );
    }

    #[test]
    fn multi_dimensional_arrays() {
        let dims = vec![
            Dimension {
                len: 2,
                lower_bound: 0,
            },
            Dimension {
                len: 1,
                lower_bound: 1,
            },
        ];
        let a = Array::from_parts(vec![Some(1i16), None], dims).unwrap();
        let bytes = enc(&a, &Type::INT2_ARRAY);
        let mut expected = words(&[2, 1, 21, 2, 0, 1, 1, 2]);
        expected.extend_from_slice(&[0, 1]);
        expected.extend(words(&[-1]));
        assert_eq!(bytes, expected);
        let back = Array::<i16>::from_sql(&Type::INT2_ARRAY, &bytes).unwrap();
        assert_eq!(back, a);
        assert_eq!(back.to_string(), "[0:1][1:1]={{1},{NULL}}");
        let full = Array::from_parts(vec![Some(1i16), Some(2)], back.dimensions().to_vec());
        let bytes = enc(&full.unwrap(), &Type::INT2_ARRAY);
        let err = Vec::<i16>::from_sql(&Type::INT2_ARRAY, &bytes).unwrap_err();
        assert!(err.to_string().contains("Array<T>"), "{err}");
        assert!(
            Array::from_parts(
                vec![Some(1)],
                vec![Dimension {
                    len: 2,
                    lower_bound: 1
                }]
            )
            .is_none()
        );
    }

    #[test]
    fn malformed_arrays_are_errors() {
        let t = &Type::INT4_ARRAY;
        assert!(Vec::<i32>::from_sql(t, &words(&[1, 0, 23])).is_err());
        assert!(Vec::<i32>::from_sql(t, &words(&[7, 0, 23])).is_err());
        assert!(Vec::<i32>::from_sql(t, &words(&[1, 0, 23, -1, 1])).is_err());
        assert!(Vec::<i32>::from_sql(t, &words(&[1, 0, 23, 1, 1, 4])).is_err());
        assert!(Vec::<i32>::from_sql(t, &words(&[1, 0, 23, 1, 1, 4, 1, 9])).is_err());
        let huge = words(&[2, 0, 23, i32::MAX, 1, i32::MAX, 1]);
        assert!(Vec::<i32>::from_sql(t, &huge).is_err());
        assert!(Vec::<i32>::from_sql(&Type::INT4, &words(&[0, 0, 23])).is_err());
    }

    #[test]
    fn text_form_quotes_like_the_server() {
        let a = Array::from_vec(vec![
            Some("a b".to_owned()),
            Some(String::new()),
            Some("NULL".into()),
            Some("q\"\\".into()),
            None,
            Some("é".into()),
        ]);
        assert_eq!(a.to_string(), r#"{"a b","","NULL","q\"\\",NULL,é}"#);
        assert_eq!(Array::<i32>::from_vec(vec![]).to_string(), "{}");
    }
}
