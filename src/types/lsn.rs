//! `pg_lsn` as [`PgLsn`], with the server's `16/B374D848` text form.

use std::fmt;
use std::str::FromStr;

use bytes::BufMut;

use super::datetime::fixed;
use super::{BoxError, Type, invalid};

/// A `pg_lsn` (write-ahead log position); `Display`/`FromStr` use the server's `16/B374D848`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PgLsn(pub u64);

impl fmt::Display for PgLsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl FromStr for PgLsn {
    type Err = BoxError;

    fn from_str(s: &str) -> Result<PgLsn, BoxError> {
        let bad = || invalid(&Type::PG_LSN, format!("not an LSN: {s:?}"));
        let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
        Ok(PgLsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

sql_impl!(
    PgLsn,
    PG_LSN,
    [PG_LSN],
    |v, _ty, out| {
        out.put_u64(v.0);
        Ok(())
    },
    |ty, raw| fixed(ty, raw).map(|b| PgLsn(u64::from_be_bytes(b)))
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::test_enc as enc;

    #[test]
    fn lsn_bytes_and_text() {
        let lsn: PgLsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn, PgLsn(0x16_B374_D848));
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!(PgLsn(0).to_string(), "0/0");
        assert_eq!(enc(&lsn, &Type::PG_LSN), 0x16_B374_D848u64.to_be_bytes());
        assert!("16-B3".parse::<PgLsn>().is_err());
    }
}
