//! A fast path from numeric's binary form to an integer mantissa and a decimal scale,
//! for the decimal crates' `FromSql`: no `Numeric`, no text, no allocation. Values it
//! does not cover (NaN, infinities, more than 38 digits, a malformed header) return
//! `None` and take the exact path through [`super::Numeric`].
//!
//! The binary form (numeric_send): ndigits, weight, sign, dscale (four i16/u16), then
//! `ndigits` base-10000 digits; the value is Σ digit[i] · 10000^(weight − i).

const SIGN_POS: u16 = 0x0000;
const SIGN_NEG: u16 = 0x4000;
/// 10000^9 exceeds i128's 38 digits once multiplied out; larger weights go the slow way.
const MAX_WEIGHT: i16 = 8;
/// Above this scale the fractional groups alone could overflow; the slow path decides.
const MAX_SCALE: u16 = 28;

/// The value of a finite numeric as `(mantissa, scale)`: value = mantissa · 10^−scale,
/// with `scale` the numeric's display scale. `None` when the fast path does not apply.
pub(super) fn mantissa_scale(raw: &[u8]) -> Option<(i128, u32)> {
    let word = |i: usize| {
        raw.get(2 * i..2 * i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let (ndigits, weight) = (usize::from(word(0)?), word(1)? as i16);
    let (sign, dscale) = (word(2)?, word(3)?);
    if raw.len() != 8 + 2 * ndigits || !matches!(sign, SIGN_POS | SIGN_NEG) {
        return None;
    }
    if weight > MAX_WEIGHT || dscale > MAX_SCALE {
        return None;
    }
    // Base-10000 groups from `top` (the units group or higher) down to the last
    // fractional group that the display scale reaches.
    let groups_after_point = (i32::from(dscale) + 3) / 4;
    let top = i32::from(weight).max(0);
    let mut m: i128 = 0;
    for pos in (-groups_after_point..=top).rev() {
        let index = i32::from(weight) - pos;
        let digit = match usize::try_from(index).ok().filter(|i| *i < ndigits) {
            Some(i) => word(4 + i)?,
            None => 0,
        };
        if digit >= 10_000 {
            return None;
        }
        m = m.checked_mul(10_000)?.checked_add(i128::from(digit))?;
    }
    // A digit past the display scale would be dropped: leave that to the exact path.
    let last_index = i32::from(weight) + groups_after_point;
    if last_index + 1 < ndigits as i32 {
        return None;
    }
    let extra = (groups_after_point * 4 - i32::from(dscale)) as u32;
    let unit = 10i128.pow(extra);
    if m % unit != 0 {
        return None;
    }
    let m = m / unit;
    Some((if sign == SIGN_NEG { -m } else { m }, u32::from(dscale)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Numeric, Type, test_enc};

    #[test]
    fn agrees_with_the_exact_path() {
        let cases = [
            "0",
            "0.00",
            "1",
            "-12.5",
            "10000",
            "0.0001",
            "123456789.987654321",
            "1.25",
            "-0.000000000000000000000000001",
            "99999999999999999999999999.99",
            "1e20",
            "100000000",
            "0.5000",
            "79228162514264337593543950335",
        ];
        for text in cases {
            let n: Numeric = text.parse().unwrap();
            let raw = test_enc(&n, &Type::NUMERIC);
            let (m, scale) = mantissa_scale(&raw).unwrap_or_else(|| panic!("{text}"));
            let back: Numeric = format!("{m}e-{scale}").parse().unwrap();
            assert_eq!(back.to_string(), n.to_string(), "{text}");
        }
    }

    #[test]
    fn leaves_the_rest_to_the_exact_path() {
        for text in ["NaN", "Infinity", "1e40", "0.00000000000000000000000000001"] {
            let n: Numeric = text.parse().unwrap();
            assert_eq!(
                mantissa_scale(&test_enc(&n, &Type::NUMERIC)),
                None,
                "{text}"
            );
        }
        assert_eq!(mantissa_scale(&[0, 1, 0, 0, 0, 0, 0, 0]), None, "truncated");
        assert_eq!(mantissa_scale(&[0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10]), None);
    }
}
