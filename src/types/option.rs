//! `Option<T>` (SQL NULL) and forwarding impls for `&T` and `Box<T>`.

use bytes::BytesMut;

use super::{BoxError, FromSql, IsNull, ToSql, Type, ensure_accepts};

impl<T: ToSql> ToSql for Option<T> {
    fn sql_type() -> Type {
        T::sql_type()
    }

    fn accepts(ty: &Type) -> bool {
        T::accepts(ty)
    }

    fn mismatch(ty: &Type) -> Option<String> {
        <T as ToSql>::mismatch(ty)
    }

    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Some(value) => value.to_sql(ty, out),
            None => {
                // A NULL of the wrong type is rejected like a value would be.
                ensure_accepts::<T>(ty)?;
                Ok(IsNull::Yes)
            }
        }
    }

    crate::to_sql_checked!();
}

impl<'a, T: FromSql<'a>> FromSql<'a> for Option<T> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        T::from_sql(ty, raw).map(Some)
    }

    fn from_sql_null(_ty: &Type) -> Result<Self, BoxError> {
        Ok(None)
    }

    fn accepts(ty: &Type) -> bool {
        T::accepts(ty)
    }

    fn mismatch(ty: &Type) -> Option<String> {
        T::mismatch(ty)
    }
}

impl<T: ToSql> ToSql for &T {
    fn sql_type() -> Type {
        T::sql_type()
    }

    fn accepts(ty: &Type) -> bool {
        T::accepts(ty)
    }

    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        T::to_sql(self, ty, out)
    }

    crate::to_sql_checked!();
}

impl<T: ToSql> ToSql for Box<T> {
    fn sql_type() -> Type {
        T::sql_type()
    }

    fn accepts(ty: &Type) -> bool {
        T::accepts(ty)
    }

    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        T::to_sql(self, ty, out)
    }

    crate::to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::super::{InvalidValue, WrongType};
    use super::*;

    /// Encodes `value` as `ty`, returning the NULL flag and the bytes written.
    fn encode<T: ToSql + ?Sized>(value: &T, ty: &Type) -> (IsNull, Vec<u8>) {
        let mut out = BytesMut::new();
        let is_null = value.to_sql_checked(ty, &mut out).unwrap();
        (is_null, out.to_vec())
    }

    #[test]
    fn option_to_sql() {
        assert_eq!(
            encode(&Some(1i32), &Type::INT4),
            (IsNull::No, vec![0, 0, 0, 1])
        );
        assert_eq!(encode(&None::<i32>, &Type::INT4), (IsNull::Yes, vec![]));
        assert_eq!(
            encode(&Some("é"), &Type::TEXT),
            (IsNull::No, vec![0xc3, 0xa9])
        );
        assert_eq!(
            encode(&None::<String>, &Type::VARCHAR),
            (IsNull::Yes, vec![])
        );
        assert_eq!(
            encode(&Some(Some(true)), &Type::BOOL),
            (IsNull::No, vec![1])
        );
        assert_eq!(
            encode(&Some(None::<bool>), &Type::BOOL),
            (IsNull::Yes, vec![])
        );
        let mut out = BytesMut::new();
        let err = None::<i32>.to_sql(&Type::INT8, &mut out).unwrap_err();
        assert!(err.downcast_ref::<WrongType>().is_some());
        let err = Some(1i32).to_sql(&Type::INT8, &mut out).unwrap_err();
        assert!(err.downcast_ref::<WrongType>().is_some() && out.is_empty());
    }

    #[test]
    fn option_from_sql() {
        assert_eq!(
            Option::<i32>::from_sql_nullable(&Type::INT4, None).unwrap(),
            None
        );
        let raw: &[u8] = &[0, 0, 0, 5];
        assert_eq!(
            Option::<i32>::from_sql_nullable(&Type::INT4, Some(raw)).unwrap(),
            Some(5)
        );
        assert_eq!(
            Option::<i64>::from_sql(&Type::INT2, &[0xff, 0xff]).unwrap(),
            Some(-1)
        );
        let s = Option::<&str>::from_sql_nullable(&Type::TEXT, Some(b"")).unwrap();
        assert_eq!(s, Some(""));
        assert_eq!(Option::<String>::from_sql_null(&Type::TEXT).unwrap(), None);
        let err = Option::<i32>::from_sql(&Type::INT4, &[0, 0, 1]).unwrap_err();
        assert!(err.downcast_ref::<InvalidValue>().is_some());
        assert!(Option::<String>::from_sql(&Type::TEXT, &[0xff]).is_err());
    }

    #[test]
    fn option_accepts_and_types() {
        assert_eq!(<Option<i32> as ToSql>::sql_type(), &Type::INT4);
        assert_eq!(<Option<&str> as ToSql>::sql_type(), &Type::TEXT);
        assert!(<Option<i32> as ToSql>::accepts(&Type::INT4));
        assert!(!<Option<i32> as ToSql>::accepts(&Type::INT2));
        assert!(<Option<i64> as FromSql>::accepts(&Type::INT2));
        assert!(!<Option<i64> as FromSql>::accepts(&Type::TEXT));
        assert!(<Option<String> as FromSql>::accepts(&Type::JSON));
        let value: Option<i16> = None;
        assert_eq!(value.dyn_sql_type(), &Type::INT2);
        assert!(value.dyn_accepts(&Type::INT2) && !value.dyn_accepts(&Type::INT4));
        assert_eq!(value.rust_type_name(), "core::option::Option<i16>");
    }

    #[test]
    fn references_forward() {
        let n = 7i64;
        let bytes = vec![0, 0, 0, 0, 0, 0, 0, 7];
        assert_eq!(encode(&&n, &Type::INT8), (IsNull::No, bytes.clone()));
        assert_eq!(encode(&&&n, &Type::INT8), (IsNull::No, bytes));
        let s = String::from("ab");
        assert_eq!(encode(&&s, &Type::TEXT), (IsNull::No, b"ab".to_vec()));
        assert_eq!(encode(&&"ab", &Type::TEXT), (IsNull::No, b"ab".to_vec()));
        assert_eq!(<&i64 as ToSql>::sql_type(), &Type::INT8);
        assert!(<&i64 as ToSql>::accepts(&Type::INT8) && !<&i64 as ToSql>::accepts(&Type::INT4));
        assert_eq!(<&i64 as ToSql>::dyn_sql_type(&&n), &Type::INT8);
        assert_eq!(<&i64 as ToSql>::rust_type_name(&&n), "&i64");
        assert_eq!(<&Option<bool> as ToSql>::sql_type(), &Type::BOOL);
        assert_eq!(encode(&&None::<bool>, &Type::BOOL), (IsNull::Yes, vec![]));
    }

    #[test]
    fn boxes_forward() {
        let boxed = Box::new(1.5f32);
        assert_eq!(
            encode(&boxed, &Type::FLOAT4),
            (IsNull::No, vec![0x3f, 0xc0, 0, 0])
        );
        assert_eq!(<Box<f32> as ToSql>::sql_type(), &Type::FLOAT4);
        assert!(<Box<f32> as ToSql>::accepts(&Type::FLOAT4));
        assert!(!<Box<f32> as ToSql>::accepts(&Type::FLOAT8));
        let boxed_str: Box<String> = Box::new("x".into());
        assert_eq!(encode(&boxed_str, &Type::NAME), (IsNull::No, b"x".to_vec()));
        assert_eq!(boxed_str.dyn_sql_type(), &Type::TEXT);
        let boxed_none: Box<Option<u32>> = Box::new(None);
        assert_eq!(encode(&boxed_none, &Type::OID), (IsNull::Yes, vec![]));
    }

    #[test]
    fn dyn_parameters() {
        let a = 1i32;
        let b = "two";
        let c: Option<Vec<u8>> = None;
        let params: [&(dyn ToSql + Sync); 3] = [&a, &b, &c];
        let types: Vec<Type> = params.iter().map(|p| p.dyn_sql_type()).collect();
        assert_eq!(types, [&Type::INT4, &Type::TEXT, &Type::BYTEA]);
        assert_eq!(
            encode(params[1], &Type::TEXT),
            (IsNull::No, b"two".to_vec())
        );
        assert_eq!(encode(params[2], &Type::BYTEA), (IsNull::Yes, vec![]));
        assert!(!params[0].dyn_accepts(&Type::TEXT));
    }
}
