//! `json` and `jsonb`: [`RawJson`] (the text, no extra crate), `String`/`&str` when
//! reading, and with feature `serde_json` [`Json<T>`] for any serde type and
//! `serde_json::Value`.
//!
//! jsonb's binary form is a version byte (1) and the JSON text; json's is the text.

use bytes::{BufMut, BytesMut};

use super::{BoxError, Type, invalid};

/// The jsonb binary format version this crate reads and writes.
const JSONB_VERSION: u8 = 1;

/// Whether `ty` is json or jsonb.
pub(super) fn is_json(ty: &Type) -> bool {
    *ty == Type::JSON || *ty == Type::JSONB
}

/// The JSON text of a json or jsonb value (after jsonb's version byte).
pub(super) fn json_text<'a>(ty: &Type, raw: &'a [u8]) -> Result<&'a [u8], BoxError> {
    if *ty != Type::JSONB {
        return Ok(raw);
    }
    match raw.split_first() {
        Some((&JSONB_VERSION, text)) => Ok(text),
        Some((v, _)) => Err(invalid(ty, format!("unknown jsonb version {v}"))),
        None => Err(invalid(ty, "empty jsonb value".into())),
    }
}

/// Writes jsonb's version byte when `ty` is jsonb.
fn put_header(ty: &Type, out: &mut BytesMut) {
    if *ty == Type::JSONB {
        out.put_u8(JSONB_VERSION);
    }
}

/// JSON text sent and read as it is: the server checks it when it arrives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RawJson(pub String);

sql_impl!(
    RawJson,
    JSONB,
    [JSONB, JSON],
    |v, ty, out| {
        put_header(ty, out);
        out.put_slice(v.0.as_bytes());
        Ok(())
    },
    |ty, raw| {
        let text = json_text(ty, raw)?;
        let s =
            std::str::from_utf8(text).map_err(|e| invalid(ty, format!("invalid UTF-8: {e}")))?;
        Ok(RawJson(s.to_owned()))
    }
);

#[cfg(feature = "serde_json")]
mod serde_impls {
    use std::fmt;

    use serde::{Serialize, de::DeserializeOwned};

    use super::*;
    use crate::types::{FromSql, IsNull, ToSql, ensure_accepts, wrong_type};

    /// A serde value sent and read as json or jsonb (feature `serde_json`).
    #[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
    pub struct Json<T>(pub T);

    impl<T: Serialize + fmt::Debug + Sync> ToSql for Json<T> {
        fn sql_type() -> Type {
            Type::JSONB
        }

        fn accepts(ty: &Type) -> bool {
            is_json(ty)
        }

        fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
            ensure_accepts::<Self>(ty)?;
            put_header(ty, out);
            serde_json::to_writer((&mut *out).writer(), &self.0)?;
            Ok(IsNull::No)
        }

        crate::to_sql_checked!();
    }

    impl<'a, T: DeserializeOwned> FromSql<'a> for Json<T> {
        fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
            if !is_json(ty) {
                return Err(wrong_type::<Self>(ty));
            }
            Ok(Json(serde_json::from_slice(json_text(ty, raw)?)?))
        }

        fn accepts(ty: &Type) -> bool {
            is_json(ty)
        }
    }

    sql_impl!(
        serde_json::Value,
        JSONB,
        [JSONB, JSON],
        |v, ty, out| {
            put_header(ty, out);
            serde_json::to_writer(out.writer(), v)?;
            Ok(())
        },
        |ty, raw| Ok(serde_json::from_slice(json_text(ty, raw)?)?)
    );
}

#[cfg(feature = "serde_json")]
pub use serde_impls::Json;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{FromSql, ToSql};

    #[test]
    fn raw_json_bytes() {
        let v = RawJson(r#"{"a":1}"#.into());
        let mut out = BytesMut::new();
        v.to_sql(&Type::JSONB, &mut out).unwrap();
        assert_eq!(&out[..], b"\x01{\"a\":1}");
        assert_eq!(RawJson::from_sql(&Type::JSONB, &out).unwrap(), v);
        let mut out = BytesMut::new();
        v.to_sql(&Type::JSON, &mut out).unwrap();
        assert_eq!(&out[..], b"{\"a\":1}");
        assert!(RawJson::from_sql(&Type::JSONB, b"\x02{}").is_err());
        assert!(RawJson::from_sql(&Type::JSONB, b"").is_err());
        assert_eq!(String::from_sql(&Type::JSONB, b"\x01[]").unwrap(), "[]");
        assert_eq!(<&str>::from_sql(&Type::JSON, b"[]").unwrap(), "[]");
    }

    #[cfg(feature = "serde_json")]
    #[test]
    fn serde_json_bytes() {
        let mut out = BytesMut::new();
        Json(vec![1, 2]).to_sql(&Type::JSONB, &mut out).unwrap();
        assert_eq!(&out[..], b"\x01[1,2]");
        let back = Json::<Vec<i32>>::from_sql(&Type::JSONB, &out).unwrap();
        assert_eq!(back.0, [1, 2]);
        let value = serde_json::Value::from_sql(&Type::JSON, b"{\"k\":null}").unwrap();
        assert_eq!(value["k"], serde_json::Value::Null);
        assert!(Json::<u8>::from_sql(&Type::JSON, b"300").is_err());
    }
}
