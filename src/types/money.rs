//! `money` as [`Money`]: a 64-bit count of the currency's smallest unit.

use std::fmt;

use bytes::BufMut;

use super::datetime::fixed;

/// A `money` value in the currency's smallest unit (cents for two fractional digits).
///
/// `Display` prints the `C`-locale form (`-$1,234.56`); the server's text depends on its
/// `lc_monetary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(pub i64);

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0.unsigned_abs();
        let digits = (a / 100).to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        let sign = if self.0 < 0 { "-" } else { "" };
        write!(f, "{sign}${grouped}.{:02}", a % 100)
    }
}

sql_impl!(
    Money,
    MONEY,
    [MONEY],
    |v, _ty, out| {
        out.put_i64(v.0);
        Ok(())
    },
    |ty, raw| fixed(ty, raw).map(|b| Money(i64::from_be_bytes(b)))
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{FromSql, Type};

    #[test]
    fn money_bytes_and_text() {
        assert_eq!(Money(-123_456).to_string(), "-$1,234.56");
        assert_eq!(Money(5).to_string(), "$0.05");
        assert_eq!(Money(i64::MIN).to_string(), "-$92,233,720,368,547,758.08");
        assert_eq!(
            Money::from_sql(&Type::MONEY, &[0xff; 8]).unwrap(),
            Money(-1)
        );
    }
}
