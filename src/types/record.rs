//! Composite values as a generic [`Record`], and `hstore` (when the extension is
//! installed) as `HashMap<String, Option<String>>`.
//!
//! A composite's binary form (record_send): the field count, then per field its type OID
//! and its value (4-byte length, -1 for NULL). hstore's (hstore_send): the pair count,
//! then each key and value with their lengths (-1 for a NULL value).

use std::collections::HashMap;

use bytes::{BufMut, BytesMut};

use super::array::Reader;
use super::{BoxError, FromSql, IsNull, Kind, Oid, ToSql, Type, invalid, wrong_type};

/// A composite (row) value read field by field: each field's type and raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    fields: Vec<(Type, Option<Vec<u8>>)>,
}

impl Record {
    /// The number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The type of field `i`.
    pub fn field_type(&self, i: usize) -> Option<&Type> {
        self.fields.get(i).map(|(t, _)| t)
    }

    /// Field `i` decoded as `T` (an `Option` for a field that may be NULL).
    ///
    /// # Errors
    /// No such field, a type `T` does not accept, or a value that does not fit.
    pub fn get<'a, T: FromSql<'a>>(&'a self, i: usize) -> Result<T, BoxError> {
        let (ty, raw) = self
            .fields
            .get(i)
            .ok_or_else(|| format!("no field {i} in a record of {}", self.fields.len()))?;
        let ty = ty.base();
        if !T::accepts(ty) {
            return Err(wrong_type::<T>(ty));
        }
        T::from_sql_nullable(ty, raw.as_deref())
    }
}

/// Whether `ty` is a composite or the `record` pseudo-type.
fn is_record(ty: &Type) -> bool {
    *ty == Type::RECORD || matches!(ty.kind(), Kind::Composite(_))
}

impl<'a> FromSql<'a> for Record {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        if !is_record(ty) {
            return Err(wrong_type::<Self>(ty));
        }
        let declared: Vec<Type> = match ty.kind() {
            Kind::Composite(f) => f.iter().map(|f| f.type_().clone()).collect(),
            _ => Vec::new(),
        };
        let mut r = Reader { ty, raw };
        let count = usize::try_from(r.i32()?).map_err(|_| r.bad("negative field count"))?;
        let mut fields = Vec::with_capacity(count.min(raw.len() / 8));
        for i in 0..count {
            let oid = r.i32()? as Oid;
            // The composite's own field types carry names the wire OID lacks.
            let field_ty = declared
                .get(i)
                .filter(|t| t.oid() == oid)
                .cloned()
                .unwrap_or_else(|| Type::for_oid(oid));
            let value = match r.i32()? {
                -1 => None,
                n => Some(
                    r.take(usize::try_from(n).map_err(|_| r.bad("bad length"))?)?
                        .to_vec(),
                ),
            };
            fields.push((field_ty, value));
        }
        match r.raw.is_empty() {
            true => Ok(Record { fields }),
            false => Err(r.bad("trailing bytes")),
        }
    }

    fn accepts(ty: &Type) -> bool {
        is_record(ty)
    }
}

/// Whether `ty` is the hstore extension's type.
fn is_hstore(ty: &Type) -> bool {
    ty.name() == "hstore"
}

impl<S: std::hash::BuildHasher + Default + Sync> ToSql for HashMap<String, Option<String>, S> {
    fn accepts(ty: &Type) -> bool {
        is_hstore(ty)
    }

    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let len = |n: usize| i32::try_from(n).map_err(|_| invalid(ty, "too long".into()));
        out.put_i32(len(self.len())?);
        for (k, v) in self {
            out.put_i32(len(k.len())?);
            out.put_slice(k.as_bytes());
            match v {
                Some(v) => {
                    out.put_i32(len(v.len())?);
                    out.put_slice(v.as_bytes());
                }
                None => out.put_i32(-1),
            }
        }
        Ok(IsNull::No)
    }

    crate::to_sql_checked!();
}

impl<'a, S: std::hash::BuildHasher + Default> FromSql<'a> for HashMap<String, Option<String>, S> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        if !is_hstore(ty) {
            return Err(wrong_type::<Self>(ty));
        }
        let mut r = Reader { ty, raw };
        let count = usize::try_from(r.i32()?).map_err(|_| r.bad("negative count"))?;
        let mut map = HashMap::with_capacity_and_hasher(count.min(raw.len() / 8), S::default());
        let text = |b: &[u8]| {
            std::str::from_utf8(b)
                .map(str::to_owned)
                .map_err(|e| invalid(ty, format!("invalid UTF-8: {e}")))
        };
        for _ in 0..count {
            let klen = usize::try_from(r.i32()?).map_err(|_| r.bad("NULL key"))?;
            let key = text(r.take(klen)?)?;
            let value = match r.i32()? {
                -1 => None,
                n => Some(text(
                    r.take(usize::try_from(n).map_err(|_| r.bad("bad length"))?)?,
                )?),
            };
            map.insert(key, value);
        }
        match r.raw.is_empty() {
            true => Ok(map),
            false => Err(r.bad("trailing bytes")),
        }
    }

    fn accepts(ty: &Type) -> bool {
        is_hstore(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Field;

    #[test]
    fn records_decode_field_by_field() {
        let pair = Type::new(
            "pair".into(),
            50_000,
            Kind::Composite(vec![
                Field::new("a".into(), Type::INT4),
                Field::new("b".into(), Type::TEXT),
            ]),
            "public".into(),
        );
        let mut raw = vec![0, 0, 0, 2, 0, 0, 0, 23, 0, 0, 0, 4, 0, 0, 0, 7];
        raw.extend_from_slice(&[0, 0, 0, 25, 0xff, 0xff, 0xff, 0xff]);
        let r = Record::from_sql(&pair, &raw).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.get::<i32>(0).unwrap(), 7);
        assert_eq!(r.get::<Option<String>>(1).unwrap(), None);
        assert!(r.get::<String>(1).is_err());
        assert!(r.get::<i32>(2).is_err());
        assert_eq!(r.field_type(1), Some(&Type::TEXT));
        assert!(Record::from_sql(&Type::RECORD, &raw).is_ok());
        assert!(Record::from_sql(&pair, &raw[..10]).is_err());
        assert!(Record::from_sql(&Type::INT4, &raw).is_err());
    }

    #[test]
    fn hstore_bytes() {
        let hstore = Type::new("hstore".into(), 50_001, Kind::Simple, "public".into());
        let map: HashMap<String, Option<String>> = [("k".to_owned(), None)].into();
        let mut out = BytesMut::new();
        map.to_sql_checked(&hstore, &mut out).unwrap();
        assert_eq!(
            &out[..],
            &[0, 0, 0, 1, 0, 0, 0, 1, b'k', 0xff, 0xff, 0xff, 0xff]
        );
        let back = HashMap::<String, Option<String>>::from_sql(&hstore, &out).unwrap();
        assert_eq!(back, map);
        assert!(map.to_sql_checked(&Type::TEXT, &mut out).is_err());
    }
}
