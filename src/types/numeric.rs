//! `numeric` as [`Numeric`]: every digit, NaN and ±infinity, kept exactly as the server
//! sends them (base-10000 digits), with `Display`/`FromStr` in PostgreSQL's text form.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use bytes::{BufMut, BytesMut};

use super::{BoxError, FromSql, IsNull, ToSql, Type, ensure_accepts, invalid, wrong_type};

const SIGN_POS: u16 = 0x0000;
const SIGN_NEG: u16 = 0x4000;
const SIGN_NAN: u16 = 0xC000;
const SIGN_PINF: u16 = 0xD000;
const SIGN_NINF: u16 = 0xF000;
/// The largest display scale PostgreSQL stores (NUMERIC_DSCALE_MAX).
const MAX_DSCALE: u16 = 0x3FFF;

/// A PostgreSQL `numeric`: arbitrary precision, lossless both ways.
///
/// `Display` prints what the server prints for `value::text`; `FromStr` reads what the
/// server accepts (`-12.50`, `1e-3`, `NaN`, `Infinity`, `-inf`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Numeric {
    sign: u16,
    weight: i16,
    dscale: u16,
    digits: Vec<i16>,
}

/// Why a string is not a numeric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseNumericError(String);

impl fmt::Display for ParseNumericError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid numeric: {}", self.0)
    }
}

impl std::error::Error for ParseNumericError {}

impl Numeric {
    /// NaN.
    pub const NAN: Numeric = Numeric::special(SIGN_NAN);
    /// +Infinity.
    pub const INFINITY: Numeric = Numeric::special(SIGN_PINF);
    /// -Infinity.
    pub const NEG_INFINITY: Numeric = Numeric::special(SIGN_NINF);

    const fn special(sign: u16) -> Numeric {
        Numeric {
            sign,
            weight: 0,
            dscale: 0,
            digits: Vec::new(),
        }
    }

    /// Whether the value is NaN.
    pub fn is_nan(&self) -> bool {
        self.sign == SIGN_NAN
    }

    /// Whether the value is +Infinity or -Infinity.
    pub fn is_infinite(&self) -> bool {
        matches!(self.sign, SIGN_PINF | SIGN_NINF)
    }

    /// Whether the value is negative (including -Infinity).
    pub fn is_negative(&self) -> bool {
        matches!(self.sign, SIGN_NEG | SIGN_NINF)
    }

    /// The number of decimal digits after the point that the value displays.
    pub fn scale(&self) -> u16 {
        self.dscale
    }

    /// Decodes the binary form (numeric_send).
    fn decode(ty: &Type, raw: &[u8]) -> Result<Numeric, BoxError> {
        let bad = |why: &str| invalid(ty, why.to_owned());
        if raw.len() < 8 {
            return Err(bad("shorter than the 8-byte header"));
        }
        let word = |i: usize| u16::from_be_bytes([raw[2 * i], raw[2 * i + 1]]);
        let ndigits = usize::from(word(0));
        let (weight, sign, dscale) = (word(1) as i16, word(2), word(3));
        if raw.len() != 8 + 2 * ndigits {
            return Err(bad("length does not match the digit count"));
        }
        if !matches!(sign, SIGN_POS | SIGN_NEG | SIGN_NAN | SIGN_PINF | SIGN_NINF) {
            return Err(bad("unknown sign"));
        }
        if dscale > MAX_DSCALE {
            return Err(bad("display scale out of range"));
        }
        let digits: Vec<i16> = (0..ndigits).map(|i| word(4 + i) as i16).collect();
        if digits.iter().any(|d| !(0..10000).contains(d)) {
            return Err(bad("a base-10000 digit out of range"));
        }
        let special = matches!(sign, SIGN_NAN | SIGN_PINF | SIGN_NINF);
        Ok(match special {
            true => Numeric::special(sign),
            false => Numeric {
                sign,
                weight,
                dscale,
                digits,
            },
        })
    }

    /// Appends the binary form (what numeric_recv reads).
    ///
    /// # Errors
    /// More base-10000 digits than the header's count can say (PostgreSQL's own limit is
    /// far lower, so the server would refuse such a value anyway).
    fn encode(&self, out: &mut BytesMut) -> Result<(), BoxError> {
        let ndigits =
            u16::try_from(self.digits.len()).map_err(|_| "numeric with too many digits")?;
        out.put_u16(ndigits);
        out.put_i16(self.weight);
        out.put_u16(self.sign);
        out.put_u16(self.dscale);
        self.digits.iter().for_each(|d| out.put_i16(*d));
        Ok(())
    }

    /// The base-10000 digit worth 10000^(weight - k), zero outside the stored digits.
    fn digit(&self, k: i64) -> i16 {
        usize::try_from(k)
            .ok()
            .and_then(|k| self.digits.get(k).copied())
            .unwrap_or(0)
    }
}

impl fmt::Display for Numeric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sign {
            SIGN_NAN => return f.write_str("NaN"),
            SIGN_PINF => return f.write_str("Infinity"),
            SIGN_NINF => return f.write_str("-Infinity"),
            _ => {}
        }
        let mut s = String::with_capacity(self.digits.len() * 4 + 8);
        if self.sign == SIGN_NEG {
            s.push('-');
        }
        let weight = i64::from(self.weight);
        if weight < 0 {
            s.push('0');
        }
        for k in 0..=weight {
            let _ = match k {
                0 => write!(s, "{}", self.digit(k)),
                _ => write!(s, "{:04}", self.digit(k)),
            };
        }
        if self.dscale > 0 {
            s.push('.');
            let end = s.len() + usize::from(self.dscale);
            let mut k = weight + 1;
            while s.len() < end {
                let _ = write!(s, "{:04}", self.digit(k));
                k += 1;
            }
            s.truncate(end);
        }
        f.write_str(&s)
    }
}

impl fmt::Debug for Numeric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Numeric({self})")
    }
}

impl FromStr for Numeric {
    type Err = ParseNumericError;

    fn from_str(s: &str) -> Result<Numeric, ParseNumericError> {
        let err = |why: &str| ParseNumericError(format!("{why}: {s:?}"));
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "nan" => return Ok(Numeric::NAN),
            "infinity" | "+infinity" | "inf" | "+inf" => return Ok(Numeric::INFINITY),
            "-infinity" | "-inf" => return Ok(Numeric::NEG_INFINITY),
            _ => {}
        }
        let (neg, t) = match t.as_bytes().first() {
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            _ => (false, t),
        };
        let (mantissa, exp) = match t.find(['e', 'E']) {
            Some(i) => {
                let exp: i64 = t[i + 1..].parse().map_err(|_| err("bad exponent"))?;
                (&t[..i], exp)
            }
            None => (t, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() && frac.is_empty() || !all_digits(int) || !all_digits(frac) {
            return Err(err("not a number"));
        }
        if exp.abs() > 1_000_000 {
            return Err(err("exponent out of range"));
        }
        let dscale = (frac.len() as i64 - exp).max(0);
        let dscale = u16::try_from(dscale)
            .ok()
            .filter(|d| *d <= MAX_DSCALE)
            .ok_or_else(|| err("too many digits after the decimal point"))?;
        let decimal: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
        let point = int.len() as i64 + exp;
        let (weight, digits) = to_base_10000(&decimal, point);
        let weight = i16::try_from(weight).map_err(|_| err("value out of range"))?;
        let sign = match neg && !digits.is_empty() {
            true => SIGN_NEG,
            false => SIGN_POS,
        };
        Ok(Numeric {
            sign,
            weight,
            dscale,
            digits,
        })
    }
}

/// Groups decimal digits (the point after `point` of them) into base-10000 digits,
/// without leading or trailing zero groups; returns the first group's weight.
fn to_base_10000(decimal: &[u8], point: i64) -> (i64, Vec<i16>) {
    let len = decimal.len() as i64;
    let at = |j: i64| match usize::try_from(j) {
        Ok(j) if j < decimal.len() => i16::from(decimal[j]),
        _ => 0,
    };
    let w_max = (point + 3).div_euclid(4) - 1;
    let w_min = (point - len).div_euclid(4);
    let mut groups = Vec::new();
    let mut weight = w_max;
    for w in (w_min..=w_max).rev() {
        let start = point - 4 * (w + 1);
        let group = (0..4).fold(0i16, |acc, t| acc * 10 + at(start + t));
        if groups.is_empty() && group == 0 {
            weight = w - 1;
            continue;
        }
        groups.push(group);
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    match groups.is_empty() {
        true => (0, groups),
        false => (weight, groups),
    }
}

impl ToSql for Numeric {
    fn sql_type() -> Type {
        Type::NUMERIC
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }

    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        ensure_accepts::<Self>(ty)?;
        self.encode(out)?;
        Ok(IsNull::No)
    }

    crate::to_sql_checked!();
}

impl<'a> FromSql<'a> for Numeric {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        match *ty == Type::NUMERIC {
            true => Numeric::decode(ty, raw),
            false => Err(wrong_type::<Self>(ty)),
        }
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

#[cfg(feature = "rust_decimal")]
mod decimal {
    use super::*;
    use rust_decimal::Decimal;

    impl ToSql for Decimal {
        fn sql_type() -> Type {
            Type::NUMERIC
        }

        fn accepts(ty: &Type) -> bool {
            *ty == Type::NUMERIC
        }

        fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
            let n: Numeric = self.to_string().parse()?;
            n.to_sql(ty, out)
        }

        crate::to_sql_checked!();
    }

    impl<'a> FromSql<'a> for Decimal {
        fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
            if *ty == Type::NUMERIC
                && let Some((m, s)) = super::super::numeric_fast::mantissa_scale(raw)
                && let Ok(d) = Decimal::try_from_i128_with_scale(m, s)
            {
                return Ok(d);
            }
            let n = Numeric::from_sql(ty, raw)?;
            if n.is_nan() || n.is_infinite() {
                let why = format!("{n} does not fit rust_decimal::Decimal (no NaN or infinity)");
                return Err(invalid(ty, why));
            }
            Decimal::from_str_exact(&n.to_string())
                .map_err(|e| invalid(ty, format!("{n} does not fit rust_decimal::Decimal: {e}")))
        }

        fn accepts(ty: &Type) -> bool {
            *ty == Type::NUMERIC
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_digits_than_the_header_can_count_is_an_error_not_a_wrapped_count() {
        let huge = Numeric {
            sign: SIGN_POS,
            weight: 0,
            dscale: 0,
            digits: vec![1; usize::from(u16::MAX) + 1],
        };
        let mut out = BytesMut::new();
        assert!(huge.to_sql(&Type::NUMERIC, &mut out).is_err());
    }

    fn bytes(n: &Numeric) -> Vec<u8> {
        let mut out = BytesMut::new();
        n.to_sql(&Type::NUMERIC, &mut out).unwrap();
        out.to_vec()
    }

    fn words(w: &[u16]) -> Vec<u8> {
        w.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn golden_bytes() {
        let cases: [(&str, &[u16]); 8] = [
            ("0", &[0, 0, 0, 0]),
            ("0.00", &[0, 0, 0, 2]),
            ("1", &[1, 0, 0, 0, 1]),
            ("-12.5", &[2, 0, 0x4000, 1, 12, 5000]),
            ("10000", &[1, 1, 0, 0, 1]),
            ("0.0001", &[1, 0xffff, 0, 4, 1]),
            (
                "123456789.987654321",
                &[6, 2, 0, 9, 1, 2345, 6789, 9876, 5432, 1000],
            ),
            ("NaN", &[0, 0, 0xC000, 0]),
        ];
        for (text, w) in cases {
            let n: Numeric = text.parse().unwrap();
            let expected = words(w);
            assert_eq!(bytes(&n), expected, "{text}");
            assert_eq!(Numeric::from_sql(&Type::NUMERIC, &expected).unwrap(), n);
            assert_eq!(n.to_string(), text);
        }
        assert_eq!(bytes(&Numeric::INFINITY), words(&[0, 0, 0xD000, 0]));
        assert_eq!(bytes(&Numeric::NEG_INFINITY), words(&[0, 0, 0xF000, 0]));
    }

    #[test]
    fn text_forms_match_the_server() {
        let cases = [
            ("1e3", "1000"),
            ("1.5e-3", "0.0015"),
            ("-0", "0"),
            ("-0.000", "0.000"),
            ("+7", "7"),
            ("00012.3400", "12.3400"),
            ("inf", "Infinity"),
            ("-Infinity", "-Infinity"),
            ("nan", "NaN"),
            (".5", "0.5"),
            ("5.", "5"),
            ("12345678", "12345678"),
            ("0.1e1", "1"),
        ];
        for (input, shown) in cases {
            let n: Numeric = input.parse().unwrap();
            assert_eq!(n.to_string(), shown, "{input}");
        }
        let thousand = "9".repeat(1000) + "." + &"1".repeat(1000);
        assert_eq!(thousand.parse::<Numeric>().unwrap().to_string(), thousand);
        for bad in ["", "-", "1.2.3", "abc", "1e", "١", "1e99999999"] {
            assert!(bad.parse::<Numeric>().is_err(), "{bad}");
        }
    }

    #[test]
    fn invalid_binary_is_an_error() {
        let t = &Type::NUMERIC;
        assert!(Numeric::from_sql(t, &[0; 7]).is_err());
        assert!(Numeric::from_sql(t, &words(&[1, 0, 0, 0])).is_err());
        assert!(Numeric::from_sql(t, &words(&[1, 0, 0, 0, 10000])).is_err());
        assert!(Numeric::from_sql(t, &words(&[0, 0, 0x1234, 0])).is_err());
        assert!(Numeric::from_sql(&Type::INT4, &[0; 8]).is_err());
        assert!(!<Numeric as ToSql>::accepts(&Type::FLOAT8));
    }

    #[cfg(feature = "rust_decimal")]
    #[test]
    fn rust_decimal_fits_or_fails_clearly() {
        use rust_decimal::Decimal;
        let n: Numeric = "-12.345".parse().unwrap();
        let d = Decimal::from_sql(&Type::NUMERIC, &bytes(&n)).unwrap();
        assert_eq!(d.to_string(), "-12.345");
        let mut out = BytesMut::new();
        d.to_sql(&Type::NUMERIC, &mut out).unwrap();
        assert_eq!(&out[..], &bytes(&n)[..]);
        let err = Decimal::from_sql(&Type::NUMERIC, &bytes(&Numeric::NAN)).unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
        let big: Numeric = "1e40".parse().unwrap();
        assert!(Decimal::from_sql(&Type::NUMERIC, &bytes(&big)).is_err());
    }
}
