//! What `#[derive(ToSql, FromSql)]` expands to calls into this module, so the generated
//! code stays small: enum label checks, composite field walks, and errors that name the
//! Rust type, the PostgreSQL type and the label or field that failed.
//!
//! A composite's binary form (record_send / record_recv): the field count, then per field
//! its type OID and its value (4-byte length, -1 for NULL).
//!
//! Shapes that have no PostgreSQL counterpart do not compile (with feature `derive`):
//!
//! ```compile_fail
//! #[derive(Debug, pgkeel::ToSql)]
//! enum WithData { A(i32) } // "variant `A` has fields"
//! ```
//!
//! ```compile_fail
//! #[derive(Debug, pgkeel::FromSql)]
//! struct Tuple(i32, String); // "needs named fields"
//! ```
//!
//! ```compile_fail
//! #[derive(Debug, pgkeel::ToSql)]
//! struct Generic<T> { t: T } // "does not support generic types"
//! ```

use std::error::Error;
use std::fmt;

use bytes::{BufMut, BytesMut};

use super::array::Reader;
use super::{BoxError, Field, FromSql, IsNull, Kind, ToSql, Type};

/// A Rust type and a PostgreSQL type that do not fit, with the label or field that
/// does not match (the error of a derived `ToSql`/`FromSql`).
#[derive(Debug, Clone)]
pub struct Mismatch {
    /// The PostgreSQL type of the column or parameter.
    pub ty: Type,
    /// The Rust type's name (std::any::type_name).
    pub rust_type: &'static str,
    /// Which label or field does not match, and how.
    pub reason: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot convert between Rust type `{}` and PostgreSQL type {}: {}",
            self.rust_type, self.ty, self.reason
        )
    }
}

impl Error for Mismatch {}

fn mismatch<T>(ty: &Type, reason: String) -> BoxError {
    Box::new(Mismatch {
        ty: ty.clone(),
        rust_type: std::any::type_name::<T>(),
        reason,
    })
}

/// Why an enum type does not fit a Rust enum whose labels are `labels` (and whose
/// PostgreSQL name is `name`, when the derive names one); `None` when it fits.
pub fn enum_mismatch(ty: &Type, name: Option<&str>, labels: &[&str]) -> Option<String> {
    let Kind::Enum(pg) = ty.kind() else {
        return Some(format!("{ty} is not an enum"));
    };
    if let Some(name) = name.filter(|n| *n != ty.name()) {
        return Some(format!("the Rust type names PostgreSQL type {name:?}"));
    }
    if let Some(l) = labels.iter().find(|l| !pg.iter().any(|p| p == *l)) {
        return Some(format!("{ty} has no label {l:?}"));
    }
    pg.iter()
        .find(|p| !labels.contains(&p.as_str()))
        .map(|p| format!("label {p:?} of {ty} has no Rust variant"))
}

/// The error for a label that is not one of the Rust enum's.
pub fn unknown_label<T>(ty: &Type, raw: &[u8]) -> BoxError {
    let label = String::from_utf8_lossy(raw);
    mismatch::<T>(ty, format!("label {label:?} has no Rust variant"))
}

/// Writes an enum label (the binary form of an enum is its label's text).
pub fn write_label(label: &str, out: &mut BytesMut) -> Result<IsNull, BoxError> {
    out.put_slice(label.as_bytes());
    Ok(IsNull::No)
}

/// One Rust field of a derived composite: its PostgreSQL name and whether its Rust type
/// accepts a PostgreSQL type.
pub type RustField = (&'static str, fn(&Type) -> bool);

/// Why a composite type does not fit a Rust struct with `fields` (and whose PostgreSQL
/// name is `name`, when the derive names one); `None` when it fits.
pub fn composite_mismatch(ty: &Type, name: Option<&str>, fields: &[RustField]) -> Option<String> {
    let Kind::Composite(pg) = ty.kind() else {
        return Some(format!("{ty} is not a composite type"));
    };
    if let Some(name) = name.filter(|n| *n != ty.name()) {
        return Some(format!("the Rust type names PostgreSQL type {name:?}"));
    }
    for (rust, accepts) in fields {
        match pg.iter().find(|f| f.name() == *rust) {
            None => return Some(format!("{ty} has no field {rust:?}")),
            Some(f) if !accepts(f.type_().base()) => {
                return Some(format!(
                    "field {rust:?} is of type {}, which the Rust field's type does not take",
                    f.type_()
                ));
            }
            Some(_) => {}
        }
    }
    pg.iter()
        .find(|f| !fields.iter().any(|(rust, _)| *rust == f.name()))
        .map(|f| format!("field {:?} of {ty} has no Rust field", f.name()))
}

/// The fields of a composite type, or the error for a type that is not one.
pub fn composite_fields<T>(ty: &Type) -> Result<&[Field], BoxError> {
    match ty.kind() {
        Kind::Composite(fields) => Ok(fields),
        _ => Err(mismatch::<T>(ty, format!("{ty} is not a composite type"))),
    }
}

/// The error for a composite field with no Rust field of its name.
pub fn no_rust_field<T>(ty: &Type, field: &str) -> BoxError {
    mismatch::<T>(ty, format!("field {field:?} has no Rust field"))
}

/// The error for a Rust field the composite value did not hold.
pub fn missing_field<T>(ty: &Type, field: &str) -> BoxError {
    mismatch::<T>(ty, format!("the value has no field {field:?}"))
}

/// Writes a composite value field by field, in the composite's order.
pub struct CompositeWriter<'o> {
    out: &'o mut BytesMut,
}

impl<'o> CompositeWriter<'o> {
    /// Starts a composite of `ty` with `count` fields.
    pub fn new(ty: &Type, count: usize, out: &'o mut BytesMut) -> Result<Self, BoxError> {
        let count =
            i32::try_from(count).map_err(|_| super::invalid(ty, "too many fields".into()))?;
        out.put_i32(count);
        Ok(CompositeWriter { out })
    }

    /// Writes `field`'s OID and `value` encoded as its type; errors name the field.
    pub fn field<S, V: ToSql>(
        &mut self,
        ty: &Type,
        field: &Field,
        value: &V,
    ) -> Result<(), BoxError> {
        self.out.put_u32(field.type_().oid());
        let at = self.out.len();
        self.out.put_i32(0);
        let encoded = value.to_sql_checked(field.type_(), self.out);
        let null = encoded.map_err(|e| field_error::<S>(ty, field, e))? == IsNull::Yes;
        let len = match null {
            true => -1,
            false => i32::try_from(self.out.len() - at - 4)
                .map_err(|_| super::invalid(ty, "a field longer than 2 GiB".into()))?,
        };
        self.out[at..at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}

fn field_error<S>(ty: &Type, field: &Field, e: BoxError) -> BoxError {
    let reason = format!("field {:?} ({}): {e}", field.name(), field.type_());
    mismatch::<S>(ty, reason)
}

/// One field of a composite value: its declaration and its raw value (`None` for NULL).
pub type FieldValue<'a, 't> = (&'t Field, Option<&'a [u8]>);

/// Reads a composite value field by field, checking the count and every field's OID
/// against the composite's declaration.
pub struct CompositeReader<'a, 't> {
    r: Reader<'a, 't>,
    fields: std::slice::Iter<'t, Field>,
}

impl<'a, 't> CompositeReader<'a, 't> {
    /// Reads the field count of a value of composite `ty` for the Rust type `S`.
    pub fn new<S>(ty: &'t Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let fields = composite_fields::<S>(ty)?;
        let mut r = Reader { ty, raw };
        let count = r.i32()?;
        if usize::try_from(count).ok() != Some(fields.len()) {
            let reason = format!("the value has {count} fields, the type {}", fields.len());
            return Err(mismatch::<S>(ty, reason));
        }
        let fields = fields.iter();
        Ok(CompositeReader { r, fields })
    }

    /// The next field's declaration and raw value (`None` for NULL), or `None` at the end.
    pub fn next_field<S>(&mut self) -> Result<Option<FieldValue<'a, 't>>, BoxError> {
        let Some(field) = self.fields.next() else {
            return match self.r.raw.is_empty() {
                true => Ok(None),
                false => Err(self.r.bad("trailing bytes")),
            };
        };
        let oid = self.r.i32()? as u32;
        if oid != field.type_().oid() {
            let reason = format!(
                "field {:?} is declared {} but the value's is oid {oid}",
                field.name(),
                field.type_()
            );
            return Err(mismatch::<S>(self.r.ty, reason));
        }
        let value = match self.r.i32()? {
            -1 => None,
            n => Some(
                self.r
                    .take(usize::try_from(n).map_err(|_| self.r.bad("bad length"))?)?,
            ),
        };
        Ok(Some((field, value)))
    }

    /// Decodes one field's value as `V`; errors name the field.
    pub fn decode<S, V: FromSql<'a>>(
        &self,
        field: &Field,
        raw: Option<&'a [u8]>,
    ) -> Result<V, BoxError> {
        let fty = field.type_().base();
        if !V::accepts(fty) {
            let e = super::wrong_type::<V>(fty);
            return Err(field_error::<S>(self.r.ty, field, e));
        }
        V::from_sql_nullable(fty, raw).map_err(|e| field_error::<S>(self.r.ty, field, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mood() -> Type {
        let labels = ["sad", "ok"].map(String::from).to_vec();
        Type::new("mood".into(), 50_000, Kind::Enum(labels), "public".into())
    }

    fn pair() -> Type {
        let fields = vec![
            Field::new("a".into(), Type::INT4),
            Field::new("b".into(), Type::TEXT),
        ];
        Type::new(
            "pair".into(),
            50_001,
            Kind::Composite(fields),
            "public".into(),
        )
    }

    #[test]
    fn enum_checks_name_every_label() {
        assert_eq!(enum_mismatch(&mood(), None, &["ok", "sad"]), None);
        assert_eq!(enum_mismatch(&mood(), Some("mood"), &["ok", "sad"]), None);
        let e = enum_mismatch(&mood(), None, &["ok", "sad", "meh"]).unwrap();
        assert_eq!(e, "mood has no label \"meh\"");
        let e = enum_mismatch(&mood(), None, &["ok"]).unwrap();
        assert_eq!(e, "label \"sad\" of mood has no Rust variant");
        assert!(enum_mismatch(&mood(), Some("feeling"), &["ok", "sad"]).is_some());
        assert!(enum_mismatch(&Type::TEXT, None, &["ok"]).is_some());
    }

    #[test]
    fn composite_checks_name_every_field() {
        let int4 = |t: &Type| *t == Type::INT4;
        let text = |t: &Type| *t == Type::TEXT;
        assert_eq!(
            composite_mismatch(&pair(), None, &[("b", text), ("a", int4)]),
            None
        );
        let e = composite_mismatch(&pair(), None, &[("a", text), ("b", text)]).unwrap();
        assert!(e.contains("field \"a\" is of type int4"), "{e}");
        let e = composite_mismatch(&pair(), None, &[("a", int4)]).unwrap();
        assert_eq!(e, "field \"b\" of pair has no Rust field");
        let e = composite_mismatch(&pair(), None, &[("a", int4), ("b", text), ("c", int4)]);
        assert_eq!(e.unwrap(), "pair has no field \"c\"");
    }

    #[test]
    fn composite_bytes_round_trip_and_checks() {
        let ty = pair();
        let mut out = BytesMut::new();
        let mut w = CompositeWriter::new(&ty, 2, &mut out).unwrap();
        let Kind::Composite(fields) = ty.kind() else {
            unreachable!()
        };
        w.field::<(), _>(&ty, &fields[0], &7i32).unwrap();
        w.field::<(), _>(&ty, &fields[1], &None::<String>).unwrap();
        let err = w.field::<(), _>(&ty, &fields[1], &7i32).unwrap_err();
        assert!(err.to_string().contains("field \"b\" (text)"), "{err}");
        let raw = &out[..out.len() - 8];
        let mut r = CompositeReader::new::<()>(&ty, raw).unwrap();
        let (f, v) = r.next_field::<()>().unwrap().unwrap();
        assert_eq!(r.decode::<(), i32>(f, v).unwrap(), 7);
        let (f, v) = r.next_field::<()>().unwrap().unwrap();
        assert_eq!(r.decode::<(), Option<String>>(f, v).unwrap(), None);
        assert!(r.decode::<(), String>(f, v).is_err());
        assert!(r.next_field::<()>().unwrap().is_none());
        let mut bad = raw.to_vec();
        bad[7] = 20; // field a claims int8
        let mut r = CompositeReader::new::<()>(&ty, &bad).unwrap();
        let err = r.next_field::<()>().unwrap_err();
        assert!(
            err.to_string()
                .contains("declared int4 but the value's is oid 20"),
            "{err}"
        );
        bad[3] = 3;
        assert!(CompositeReader::new::<()>(&ty, &bad).is_err());
    }
}
