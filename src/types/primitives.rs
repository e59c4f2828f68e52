//! Fixed-width types: bool, "char" (i8), int2/int4/int8, oid (u32) and float4/float8.

use bytes::{BufMut, BytesMut};

use super::{BoxError, FromSql, IsNull, ToSql, Type, ensure_accepts, invalid, wrong_type};

/// Returns `raw` as an array of exactly `N` bytes, or an [`InvalidValue`](super::InvalidValue) naming `ty`.
fn fixed<const N: usize>(ty: &Type, raw: &[u8]) -> Result<[u8; N], BoxError> {
    <[u8; N]>::try_from(raw)
        .map_err(|_| invalid(ty, format!("expected {N} bytes, got {}", raw.len())))
}

impl ToSql for bool {
    fn sql_type() -> Type {
        Type::BOOL
    }

    fn accepts(ty: &Type) -> bool {
        ty == Type::BOOL
    }

    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        ensure_accepts::<Self>(ty)?;
        out.put_u8(u8::from(*self));
        Ok(IsNull::No)
    }

    crate::to_sql_checked!();
}

impl<'a> FromSql<'a> for bool {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        if ty != Type::BOOL {
            return Err(wrong_type::<Self>(ty));
        }
        // Like the server's boolrecv: any non-zero byte is true.
        let [byte] = fixed::<1>(ty, raw)?;
        Ok(byte != 0)
    }

    fn accepts(ty: &Type) -> bool {
        ty == Type::BOOL
    }
}

/// Implements ToSql for a number type sent as its own big-endian bytes for exactly one PostgreSQL type.
macro_rules! number_to_sql {
    ($($rust:ty => $pg:ident),* $(,)?) => {$(
        impl ToSql for $rust {
            fn sql_type() -> Type {
                Type::$pg
            }

            fn accepts(ty: &Type) -> bool {
                ty == Type::$pg
            }

            fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
                ensure_accepts::<Self>(ty)?;
                out.put_slice(&self.to_be_bytes());
                Ok(IsNull::No)
            }

            crate::to_sql_checked!();
        }
    )*};
}

number_to_sql! {
    i8 => CHAR,
    i16 => INT2,
    i32 => INT4,
    i64 => INT8,
    u32 => OID,
    f32 => FLOAT4,
    f64 => FLOAT8,
}

/// Implements FromSql for a number type, widening losslessly from each listed PostgreSQL type.
macro_rules! number_from_sql {
    ($($rust:ty => { $($pg:ident: $wire:ty),+ $(,)? }),* $(,)?) => {$(
        impl<'a> FromSql<'a> for $rust {
            fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
                $(
                    if ty == Type::$pg {
                        return Ok(<$wire>::from_be_bytes(fixed(ty, raw)?).into());
                    }
                )+
                Err(wrong_type::<Self>(ty))
            }

            fn accepts(ty: &Type) -> bool {
                $(ty == Type::$pg)||+
            }
        }
    )*};
}

number_from_sql! {
    i8 => { CHAR: i8 },
    i16 => { INT2: i16 },
    i32 => { INT2: i16, INT4: i32 },
    i64 => { INT2: i16, INT4: i32, INT8: i64 },
    u32 => { OID: u32 },
    f32 => { FLOAT4: f32 },
    f64 => { FLOAT4: f32, FLOAT8: f64 },
}

#[cfg(test)]
mod tests {
    use super::super::{InvalidValue, WasNull, WrongType};
    use super::*;

    /// Encodes `value` as `ty`, checks the exact bytes, and decodes it back.
    fn round_trip<T>(value: T, ty: &Type, bytes: &[u8]) -> T
    where
        T: ToSql + for<'a> FromSql<'a>,
    {
        let mut out = BytesMut::new();
        assert_eq!(value.to_sql(ty, &mut out).unwrap(), IsNull::No);
        assert_eq!(&out[..], bytes, "encoding of {value:?} as {ty}");
        T::from_sql(ty, &out).unwrap()
    }

    #[test]
    fn bool_round_trip() {
        assert!(round_trip(true, &Type::BOOL, &[1]));
        assert!(!round_trip(false, &Type::BOOL, &[0]));
        assert!(bool::from_sql(&Type::BOOL, &[2]).unwrap());
    }

    #[test]
    fn integer_round_trips() {
        assert_eq!(round_trip(1i32, &Type::INT4, &[0, 0, 0, 1]), 1);
        assert_eq!(round_trip(0i32, &Type::INT4, &[0; 4]), 0);
        assert_eq!(round_trip(-1i32, &Type::INT4, &[0xff; 4]), -1);
        assert_eq!(
            round_trip(i32::MIN, &Type::INT4, &[0x80, 0, 0, 0]),
            i32::MIN
        );
        assert_eq!(
            round_trip(i32::MAX, &Type::INT4, &[0x7f, 0xff, 0xff, 0xff]),
            i32::MAX
        );
        assert_eq!(round_trip(i16::MIN, &Type::INT2, &[0x80, 0]), i16::MIN);
        assert_eq!(round_trip(i16::MAX, &Type::INT2, &[0x7f, 0xff]), i16::MAX);
        assert_eq!(round_trip(0i16, &Type::INT2, &[0, 0]), 0);
        let min = [0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(round_trip(i64::MIN, &Type::INT8, &min), i64::MIN);
        let max = [0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(round_trip(i64::MAX, &Type::INT8, &max), i64::MAX);
        assert_eq!(round_trip(0i64, &Type::INT8, &[0; 8]), 0);
        assert_eq!(round_trip(i8::MIN, &Type::CHAR, &[0x80]), i8::MIN);
        assert_eq!(round_trip(i8::MAX, &Type::CHAR, &[0x7f]), i8::MAX);
        assert_eq!(round_trip(0u32, &Type::OID, &[0; 4]), 0);
        assert_eq!(round_trip(u32::MAX, &Type::OID, &[0xff; 4]), u32::MAX);
    }

    #[test]
    fn float_round_trips() {
        assert_eq!(round_trip(1.5f32, &Type::FLOAT4, &[0x3f, 0xc0, 0, 0]), 1.5);
        assert_eq!(round_trip(0.0f64, &Type::FLOAT8, &[0; 8]).to_bits(), 0);
        let neg_zero = round_trip(-0.0f64, &Type::FLOAT8, &[0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(neg_zero.to_bits(), (-0.0f64).to_bits());
        assert_eq!(
            round_trip(f32::MIN, &Type::FLOAT4, &f32::MIN.to_be_bytes()),
            f32::MIN
        );
        assert_eq!(
            round_trip(f32::MAX, &Type::FLOAT4, &[0x7f, 0x7f, 0xff, 0xff]),
            f32::MAX
        );
        assert_eq!(
            round_trip(f64::MIN, &Type::FLOAT8, &f64::MIN.to_be_bytes()),
            f64::MIN
        );
        assert_eq!(
            round_trip(f64::MAX, &Type::FLOAT8, &f64::MAX.to_be_bytes()),
            f64::MAX
        );
        let inf = [0x7f, 0xf0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            round_trip(f64::INFINITY, &Type::FLOAT8, &inf),
            f64::INFINITY
        );
        let neg_inf = [0xff, 0xf0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            round_trip(f64::NEG_INFINITY, &Type::FLOAT8, &neg_inf),
            f64::NEG_INFINITY
        );
        let inf = [0x7f, 0x80, 0, 0];
        assert_eq!(
            round_trip(f32::INFINITY, &Type::FLOAT4, &inf),
            f32::INFINITY
        );
        let neg_inf = [0xff, 0x80, 0, 0];
        assert_eq!(
            round_trip(f32::NEG_INFINITY, &Type::FLOAT4, &neg_inf),
            f32::NEG_INFINITY
        );
        let nan = [0x7f, 0xf8, 0, 0, 0, 0, 0, 0];
        assert!(round_trip(f64::NAN, &Type::FLOAT8, &nan).is_nan());
        assert!(round_trip(f32::NAN, &Type::FLOAT4, &[0x7f, 0xc0, 0, 0]).is_nan());
    }

    #[test]
    fn widening_reads_the_column_width() {
        assert_eq!(i32::from_sql(&Type::INT2, &[0xff, 0xfe]).unwrap(), -2);
        assert_eq!(i64::from_sql(&Type::INT2, &[0x80, 0]).unwrap(), -32768);
        assert_eq!(i64::from_sql(&Type::INT4, &[0, 1, 0, 0]).unwrap(), 65536);
        assert_eq!(
            f64::from_sql(&Type::FLOAT4, &[0x3f, 0xc0, 0, 0]).unwrap(),
            1.5
        );
        assert!(
            f64::from_sql(&Type::FLOAT4, &[0x7f, 0xc0, 0, 0])
                .unwrap()
                .is_nan()
        );
        // An int2 column must not be read with the width of the Rust type.
        assert!(i64::from_sql(&Type::INT2, &[0; 8]).is_err());
    }

    #[test]
    fn wrong_lengths_are_invalid_values() {
        let err = i32::from_sql(&Type::INT4, &[0, 0, 1]).unwrap_err();
        let invalid = err.downcast_ref::<InvalidValue>().unwrap();
        assert_eq!(invalid.ty, &Type::INT4);
        let msg = "invalid binary value for int4: expected 4 bytes, got 3";
        assert_eq!(err.to_string(), msg);
        let too_long: &[u8] = &[0; 9];
        for (ty, cut) in [
            (&Type::INT2, 1),
            (&Type::INT4, 5),
            (&Type::INT8, 7),
            (&Type::INT8, 9),
        ] {
            let err = i64::from_sql(ty, &too_long[..cut]).unwrap_err();
            assert!(err.downcast_ref::<InvalidValue>().is_some(), "{ty} {cut}");
        }
        assert!(bool::from_sql(&Type::BOOL, &[]).is_err());
        assert!(bool::from_sql(&Type::BOOL, &[0, 1]).is_err());
        assert!(i8::from_sql(&Type::CHAR, &[]).is_err());
        assert!(u32::from_sql(&Type::OID, &[0; 8]).is_err());
        assert!(f32::from_sql(&Type::FLOAT4, &[0; 8]).is_err());
        assert!(f64::from_sql(&Type::FLOAT8, &[0; 4]).is_err());
    }

    #[test]
    fn null_is_an_error() {
        let err = i32::from_sql_nullable(&Type::INT4, None).unwrap_err();
        assert!(err.downcast_ref::<WasNull>().is_some());
        assert!(bool::from_sql_nullable(&Type::BOOL, None).is_err());
        assert_eq!(
            i32::from_sql_nullable(&Type::INT4, Some(&[0, 0, 0, 7])).unwrap(),
            7
        );
    }

    #[test]
    fn accepts_tables() {
        use Type as T;
        let all = [
            T::BOOL,
            T::CHAR,
            T::INT2,
            T::INT4,
            T::INT8,
            T::OID,
            T::FLOAT4,
            T::FLOAT8,
        ];
        let check = |name: &str, to: fn(&Type) -> bool, from: fn(&Type) -> bool, ok: &[Type]| {
            for ty in &all {
                assert_eq!(to(ty), ok.first() == Some(ty), "{name} to_sql {ty}");
                assert_eq!(from(ty), ok.contains(ty), "{name} from_sql {ty}");
            }
            assert!(!to(&T::TEXT) && !from(&T::TEXT) && !to(&T::NUMERIC) && !from(&T::NUMERIC));
        };
        check(
            "bool",
            <bool as ToSql>::accepts,
            <bool as FromSql>::accepts,
            &[T::BOOL],
        );
        check(
            "i8",
            <i8 as ToSql>::accepts,
            <i8 as FromSql>::accepts,
            &[T::CHAR],
        );
        check(
            "i16",
            <i16 as ToSql>::accepts,
            <i16 as FromSql>::accepts,
            &[T::INT2],
        );
        let ok = [T::INT4, T::INT2];
        check(
            "i32",
            <i32 as ToSql>::accepts,
            <i32 as FromSql>::accepts,
            &ok,
        );
        let ok = [T::INT8, T::INT2, T::INT4];
        check(
            "i64",
            <i64 as ToSql>::accepts,
            <i64 as FromSql>::accepts,
            &ok,
        );
        check(
            "u32",
            <u32 as ToSql>::accepts,
            <u32 as FromSql>::accepts,
            &[T::OID],
        );
        check(
            "f32",
            <f32 as ToSql>::accepts,
            <f32 as FromSql>::accepts,
            &[T::FLOAT4],
        );
        let ok = [T::FLOAT8, T::FLOAT4];
        check(
            "f64",
            <f64 as ToSql>::accepts,
            <f64 as FromSql>::accepts,
            &ok,
        );
    }

    #[test]
    fn sql_types_and_mismatches() {
        assert_eq!(<bool as ToSql>::sql_type(), &Type::BOOL);
        assert_eq!(<i8 as ToSql>::sql_type(), &Type::CHAR);
        assert_eq!(<i16 as ToSql>::sql_type(), &Type::INT2);
        assert_eq!(<i32 as ToSql>::sql_type(), &Type::INT4);
        assert_eq!(<i64 as ToSql>::sql_type(), &Type::INT8);
        assert_eq!(<u32 as ToSql>::sql_type(), &Type::OID);
        assert_eq!(<f32 as ToSql>::sql_type(), &Type::FLOAT4);
        assert_eq!(<f64 as ToSql>::sql_type(), &Type::FLOAT8);
        assert_eq!(5i64.dyn_sql_type(), &Type::INT8);
        assert_eq!(5i64.rust_type_name(), "i64");
        let mut out = BytesMut::new();
        let err = 1i32.to_sql(&Type::INT8, &mut out).unwrap_err();
        assert!(err.downcast_ref::<WrongType>().is_some());
        assert!(out.is_empty(), "nothing is written for a rejected type");
        let err = i32::from_sql(&Type::INT8, &[0; 8]).unwrap_err();
        assert!(err.downcast_ref::<WrongType>().is_some());
    }
}
