//! Text types (`String`, `&str`) and bytea (`Vec<u8>`, `&[u8]`); their binary format is the bytes themselves.

use bytes::{BufMut, BytesMut};

use super::{BoxError, FromSql, IsNull, ToSql, Type, ensure_accepts, invalid, wrong_type};

/// Whether a Rust string can be sent as a parameter of type `ty`.
fn text_param(ty: &Type) -> bool {
    ty.is_text_like()
}

/// Whether a Rust string can be decoded from a column of type `ty` (json's binary format
/// is its text, jsonb's a version byte and its text).
fn text_column(ty: &Type) -> bool {
    text_param(ty) || super::json::is_json(ty)
}

/// Fails unless a value of `len` bytes fits the protocol's signed 32-bit length prefix.
fn check_len(ty: &Type, len: usize) -> Result<(), BoxError> {
    match i32::try_from(len) {
        Ok(_) => Ok(()),
        Err(_) => Err(invalid(
            ty,
            format!("{len} bytes exceeds the maximum of {} bytes", i32::MAX),
        )),
    }
}

/// Appends `bytes` as the value of a parameter that `T` encodes as type `ty`.
fn put_bytes<T: ToSql>(ty: &Type, bytes: &[u8], out: &mut BytesMut) -> Result<IsNull, BoxError> {
    ensure_accepts::<T>(ty)?;
    check_len(ty, bytes.len())?;
    out.put_slice(bytes);
    Ok(IsNull::No)
}

/// Checks that `T` decodes `ty` and that `raw` is valid UTF-8.
fn get_str<'a, T>(ty: &Type, raw: &'a [u8]) -> Result<&'a str, BoxError> {
    if !text_column(ty) {
        return Err(wrong_type::<T>(ty));
    }
    let raw = super::json::json_text(ty, raw)?;
    std::str::from_utf8(raw).map_err(|e| invalid(ty, format!("invalid UTF-8: {e}")))
}

/// Checks that `T` decodes `ty`, which must be bytea.
fn get_bytes<'a, T>(ty: &Type, raw: &'a [u8]) -> Result<&'a [u8], BoxError> {
    if bytea(ty) {
        Ok(raw)
    } else {
        Err(wrong_type::<T>(ty))
    }
}

/// Whether `ty` is bytea, the only type Rust byte strings are sent as or decoded from.
fn bytea(ty: &Type) -> bool {
    ty == Type::BYTEA
}

/// Implements ToSql for a type sent as its `AsRef<[u8]>` bytes.
macro_rules! bytes_to_sql {
    ($($rust:ty => $pg:ident, $accepts:ident;)*) => {$(
        impl ToSql for $rust {
            fn sql_type() -> Type {
                Type::$pg
            }

            fn accepts(ty: &Type) -> bool {
                $accepts(ty)
            }

            fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
                put_bytes::<Self>(ty, AsRef::<[u8]>::as_ref(self), out)
            }

            crate::to_sql_checked!();
        }
    )*};
}

bytes_to_sql! {
    String => TEXT, text_param;
    &str => TEXT, text_param;
    Vec<u8> => BYTEA, bytea;
    &[u8] => BYTEA, bytea;
}

impl<'a> FromSql<'a> for String {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        get_str::<Self>(ty, raw).map(str::to_owned)
    }

    fn accepts(ty: &Type) -> bool {
        text_column(ty)
    }
}

impl<'a> FromSql<'a> for &'a str {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        get_str::<Self>(ty, raw)
    }

    fn accepts(ty: &Type) -> bool {
        text_column(ty)
    }
}

impl<'a> FromSql<'a> for Vec<u8> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        get_bytes::<Self>(ty, raw).map(<[u8]>::to_vec)
    }

    fn accepts(ty: &Type) -> bool {
        bytea(ty)
    }
}

impl<'a> FromSql<'a> for &'a [u8] {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        get_bytes::<Self>(ty, raw)
    }

    fn accepts(ty: &Type) -> bool {
        bytea(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{InvalidValue, WasNull, WrongType};
    use super::*;

    /// Encodes `value` as `ty` and returns the bytes written.
    fn encode<T: ToSql>(value: T, ty: &Type) -> BytesMut {
        let mut out = BytesMut::new();
        assert_eq!(value.to_sql(ty, &mut out).unwrap(), IsNull::No);
        out
    }

    #[test]
    fn string_round_trips() {
        for s in ["", "hello", "héllo wörld ✓ 🐘", "nul\0inside", "trailing  "] {
            for ty in [
                &Type::TEXT,
                &Type::VARCHAR,
                &Type::BPCHAR,
                &Type::NAME,
                &Type::UNKNOWN,
            ] {
                let out = encode(s, ty);
                assert_eq!(&out[..], s.as_bytes());
                assert_eq!(&encode(s.to_owned(), ty)[..], s.as_bytes());
                assert_eq!(<&str>::from_sql(ty, &out).unwrap(), s);
                assert_eq!(String::from_sql(ty, &out).unwrap(), s);
            }
        }
        assert_eq!(&encode("é", &Type::TEXT)[..], &[0xc3, 0xa9]);
        assert!(encode("", &Type::TEXT).is_empty());
        let json = br#"{"a": [1, 2]}"#;
        assert_eq!(
            String::from_sql(&Type::JSON, json).unwrap(),
            r#"{"a": [1, 2]}"#
        );
    }

    #[test]
    fn borrowed_decoding_does_not_copy() {
        let raw = b"borrowed";
        let s = <&str>::from_sql(&Type::TEXT, raw).unwrap();
        assert!(std::ptr::eq(s.as_ptr(), raw.as_ptr()));
        let b = <&[u8]>::from_sql(&Type::BYTEA, raw).unwrap();
        assert!(std::ptr::eq(b.as_ptr(), raw.as_ptr()));
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let cases: [&[u8]; 4] = [&[0xff], &[b'a', 0xc3], &[0xed, 0xa0, 0x80], &[0xc0, 0x80]];
        for raw in cases {
            let err = String::from_sql(&Type::TEXT, raw).unwrap_err();
            let invalid = err.downcast_ref::<InvalidValue>().expect("InvalidValue");
            assert_eq!(invalid.ty, &Type::TEXT);
            assert!(
                err.to_string()
                    .starts_with("invalid binary value for text: invalid UTF-8")
            );
            assert!(<&str>::from_sql(&Type::VARCHAR, raw).is_err());
        }
    }

    #[test]
    fn byte_round_trips() {
        let empty: &[u8] = &[];
        assert!(encode(empty, &Type::BYTEA).is_empty());
        assert_eq!(
            Vec::<u8>::from_sql(&Type::BYTEA, &[]).unwrap(),
            Vec::<u8>::new()
        );
        let small = vec![0u8, 1, 0xff, 0x80];
        assert_eq!(
            &encode(small.clone(), &Type::BYTEA)[..],
            &[0, 1, 0xff, 0x80]
        );
        let big: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
        let out = encode(&big[..], &Type::BYTEA);
        assert_eq!(out.len(), 1024 * 1024);
        assert_eq!(Vec::<u8>::from_sql(&Type::BYTEA, &out).unwrap(), big);
        assert_eq!(<&[u8]>::from_sql(&Type::BYTEA, &out).unwrap(), &big[..]);
        assert_eq!(&encode(big.clone(), &Type::BYTEA)[..], &big[..]);
    }

    #[test]
    fn null_is_an_error() {
        let err = String::from_sql_nullable(&Type::TEXT, None).unwrap_err();
        assert!(err.downcast_ref::<WasNull>().is_some());
        assert!(<&[u8]>::from_sql_nullable(&Type::BYTEA, None).is_err());
    }

    #[test]
    fn accepts_tables() {
        let texts = [
            &Type::TEXT,
            &Type::VARCHAR,
            &Type::BPCHAR,
            &Type::NAME,
            &Type::UNKNOWN,
        ];
        for ty in texts {
            assert!(
                <String as ToSql>::accepts(ty) && <&str as ToSql>::accepts(ty),
                "{ty}"
            );
            assert!(
                <String as FromSql>::accepts(ty) && <&str as FromSql>::accepts(ty),
                "{ty}"
            );
            assert!(!<Vec<u8> as ToSql>::accepts(ty) && !<&[u8] as FromSql>::accepts(ty));
        }
        assert!(!<String as ToSql>::accepts(&Type::JSON) && !<&str as ToSql>::accepts(&Type::JSON));
        assert!(
            <String as FromSql>::accepts(&Type::JSON) && <&str as FromSql>::accepts(&Type::JSON)
        );
        assert!(
            !<String as ToSql>::accepts(&Type::JSONB) && <String as FromSql>::accepts(&Type::JSONB)
        );
        for ty in [&Type::BYTEA, &Type::INT4, &Type::CHAR, &Type::TEXT_ARRAY] {
            assert!(!<String as ToSql>::accepts(ty) && !<String as FromSql>::accepts(ty));
        }
        for ty in [&Type::TEXT, &Type::INT4, &Type::UNKNOWN, &Type::BYTEA_ARRAY] {
            assert!(!<Vec<u8> as ToSql>::accepts(ty) && !<Vec<u8> as FromSql>::accepts(ty));
            assert!(!<&[u8] as ToSql>::accepts(ty));
        }
        assert!(
            <Vec<u8> as ToSql>::accepts(&Type::BYTEA) && <&[u8] as ToSql>::accepts(&Type::BYTEA)
        );
        assert!(<Vec<u8> as FromSql>::accepts(&Type::BYTEA));
        assert!(<&[u8] as FromSql>::accepts(&Type::BYTEA));
        assert_eq!(<String as ToSql>::sql_type(), &Type::TEXT);
        assert_eq!(<&str as ToSql>::sql_type(), &Type::TEXT);
        assert_eq!(<Vec<u8> as ToSql>::sql_type(), &Type::BYTEA);
        assert_eq!(<&[u8] as ToSql>::sql_type(), &Type::BYTEA);
    }

    #[test]
    fn mismatches_and_limits() {
        let mut out = BytesMut::new();
        let err = "x".to_sql(&Type::JSONB, &mut out).unwrap_err();
        assert!(err.downcast_ref::<WrongType>().is_some() && out.is_empty());
        let err = String::from_sql(&Type::BYTEA, b"x").unwrap_err();
        assert!(err.downcast_ref::<WrongType>().is_some());
        let err = Vec::<u8>::from_sql(&Type::TEXT, b"x").unwrap_err();
        assert!(err.downcast_ref::<WrongType>().is_some());
        let max = i32::MAX as usize;
        assert!(check_len(&Type::BYTEA, max).is_ok());
        let err = check_len(&Type::BYTEA, max + 1).unwrap_err();
        let msg = "invalid binary value for bytea: 2147483648 bytes exceeds the maximum of 2147483647 bytes";
        assert_eq!(err.to_string(), msg);
    }
}
