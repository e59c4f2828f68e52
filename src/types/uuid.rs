//! `uuid` as [`PgUuid`] (16 bytes, no extra crate) and, with feature `uuid`, `uuid::Uuid`.

use std::fmt;
use std::str::FromStr;

use bytes::BufMut;

use super::datetime::fixed;
use super::{Type, invalid};

/// A `uuid` as its 16 bytes; `Display`/`FromStr` use the server's lowercase hyphenated form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PgUuid(pub [u8; 16]);

impl fmt::Display for PgUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for PgUuid {
    type Err = super::BoxError;

    /// Reads `a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11`, with or without hyphens or braces.
    fn from_str(s: &str) -> Result<PgUuid, Self::Err> {
        let hex: Vec<u8> = s
            .trim_matches(|c| c == '{' || c == '}')
            .bytes()
            .filter(|b| *b != b'-')
            .collect();
        let bad = || invalid(&Type::UUID, format!("not a uuid: {s:?}"));
        if hex.len() != 32 {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        for (i, pair) in hex.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(text, 16).map_err(|_| bad())?;
        }
        Ok(PgUuid(out))
    }
}

sql_impl!(
    PgUuid,
    UUID,
    [UUID],
    |v, _ty, out| {
        out.put_slice(&v.0);
        Ok(())
    },
    |ty, raw| fixed(ty, raw).map(PgUuid)
);

#[cfg(feature = "uuid")]
sql_impl!(
    uuid::Uuid,
    UUID,
    [UUID],
    |v, _ty, out| {
        out.put_slice(v.as_bytes());
        Ok(())
    },
    |ty, raw| fixed(ty, raw).map(uuid::Uuid::from_bytes)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{FromSql, ToSql};
    use bytes::BytesMut;

    #[test]
    fn uuid_bytes_and_text() {
        let text = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        let u: PgUuid = text.parse().unwrap();
        assert_eq!(u.to_string(), text);
        let mut out = BytesMut::new();
        u.to_sql(&Type::UUID, &mut out).unwrap();
        assert_eq!(&out[..4], &[0xa0, 0xee, 0xbc, 0x99]);
        assert_eq!(PgUuid::from_sql(&Type::UUID, &out).unwrap(), u);
        assert!(PgUuid::from_sql(&Type::UUID, &out[..15]).is_err());
        assert!(PgUuid::from_sql(&Type::TEXT, &out).is_err());
        assert!("a0eebc99".parse::<PgUuid>().is_err());
        assert!(
            "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
                .parse::<PgUuid>()
                .is_err()
        );
        #[cfg(feature = "uuid")]
        {
            let v = uuid::Uuid::from_sql(&Type::UUID, &out).unwrap();
            assert_eq!(v.to_string(), text);
            let mut again = BytesMut::new();
            v.to_sql(&Type::UUID, &mut again).unwrap();
            assert_eq!(again, out);
        }
    }
}
