//! bigdecimal (feature `bigdecimal`): `BigDecimal` ⇄ numeric, every digit and the
//! display scale kept. NaN and ±infinity have no `BigDecimal` and are errors that say so.

use std::str::FromStr;

use bigdecimal::BigDecimal;
use bigdecimal::num_bigint::BigInt;
use bytes::BytesMut;

use super::numeric_fast::mantissa_scale;
use super::{BoxError, FromSql, IsNull, Numeric, ToSql, Type, invalid};

/// The plain decimal text of `v` (no exponent), which [`Numeric`] parses exactly; `None`
/// for a scale numeric cannot hold (more than 16,383 digits after the point, or more than
/// 131,072 before it), checked before the text is built so an extreme scale cannot make
/// it enormous.
fn plain_text(v: &BigDecimal) -> Option<String> {
    let (digits, scale) = v.as_bigint_and_exponent();
    if !(-131_072..=16_383).contains(&scale) {
        return None;
    }
    let (negative, mut text) = match digits.sign() {
        bigdecimal::num_bigint::Sign::Minus => (true, (-digits).to_string()),
        _ => (false, digits.to_string()),
    };
    match usize::try_from(scale) {
        Ok(0) => {}
        Ok(scale) => {
            if text.len() <= scale {
                text.insert_str(0, &"0".repeat(scale + 1 - text.len()));
            }
            text.insert(text.len() - scale, '.');
        }
        Err(_) => text.push_str(&"0".repeat(scale.unsigned_abs() as usize)),
    }
    if negative {
        text.insert(0, '-');
    }
    Some(text)
}

impl ToSql for BigDecimal {
    fn sql_type() -> Type {
        Type::NUMERIC
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }

    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let text = plain_text(self)
            .ok_or_else(|| invalid(ty, "a scale beyond numeric's digits".to_owned()))?;
        let n: Numeric = text
            .parse()
            .map_err(|e| invalid(ty, format!("{self} does not fit numeric: {e}")))?;
        n.to_sql(ty, out)
    }

    crate::to_sql_checked!();
}

impl<'a> FromSql<'a> for BigDecimal {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        if *ty == Type::NUMERIC
            && let Some((m, scale)) = mantissa_scale(raw)
        {
            return Ok(BigDecimal::new(BigInt::from(m), i64::from(scale)));
        }
        let n = Numeric::from_sql(ty, raw)?;
        if n.is_nan() || n.is_infinite() {
            let why = format!("{n} does not fit bigdecimal::BigDecimal (no NaN or infinity)");
            return Err(invalid(ty, why));
        }
        BigDecimal::from_str(&n.to_string())
            .map_err(|e| invalid(ty, format!("{n} does not fit bigdecimal::BigDecimal: {e}")))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::test_enc as enc;

    #[test]
    fn every_digit_and_the_scale_round_trip() {
        let big = format!("-{}.{}", "9".repeat(300), "1".repeat(200));
        for text in [
            "0",
            "1.50",
            "-0.001",
            "1e30",
            "12345678901234567890.5",
            big.as_str(),
        ] {
            let v = BigDecimal::from_str(text).unwrap();
            let raw = enc(&v, &Type::NUMERIC);
            let back = BigDecimal::from_sql(&Type::NUMERIC, &raw).unwrap();
            assert_eq!(back, v, "{text}");
            if v.fractional_digit_count() >= 0 {
                assert_eq!(back.to_string(), v.to_string(), "{text} keeps its scale");
            }
            let n = Numeric::from_sql(&Type::NUMERIC, &raw).unwrap();
            assert_eq!(BigDecimal::from_str(&n.to_string()).unwrap(), v, "{text}");
        }
        assert_eq!(
            plain_text(&BigDecimal::from_str("1e3").unwrap()).unwrap(),
            "1000"
        );
        assert_eq!(
            plain_text(&BigDecimal::from_str("-0.05").unwrap()).unwrap(),
            "-0.05"
        );
        let extreme = BigDecimal::new(1.into(), i64::MIN);
        assert!(
            extreme
                .to_sql(&Type::NUMERIC, &mut BytesMut::new())
                .is_err()
        );
    }

    #[test]
    fn nan_and_infinity_are_errors() {
        for n in [Numeric::NAN, Numeric::INFINITY, Numeric::NEG_INFINITY] {
            let err = BigDecimal::from_sql(&Type::NUMERIC, &enc(&n, &Type::NUMERIC)).unwrap_err();
            assert!(err.to_string().contains("does not fit bigdecimal"), "{err}");
        }
        assert!(BigDecimal::from_sql(&Type::INT4, &[0, 0, 0, 1]).is_err());
    }
}
