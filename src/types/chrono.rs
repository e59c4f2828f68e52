//! chrono (feature `chrono`): `NaiveDate` ⇄ date, `NaiveTime` ⇄ time, `NaiveDateTime` ⇄
//! timestamp, `DateTime<Utc | FixedOffset | Local>` ⇄ timestamptz.
//!
//! ±infinity and values outside chrono's range (years beyond ±262,142) are errors that
//! say so; wrap the type in [`Date`](super::Date) or [`Timestamp`](super::Timestamp) to
//! read infinity. Nanoseconds below a microsecond are dropped when sending, as the
//! server's precision is one microsecond.

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, FixedOffset, Local, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};

use super::datetime::{finite_date, finite_days, finite_micros, finite_timestamp, fixed};
use super::{BoxError, Type, invalid};

/// 2000-01-01 00:00:00, the server's epoch.
fn pg_epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a valid date")
}

fn decode_naive(ty: &Type, raw: &[u8]) -> Result<NaiveDateTime, BoxError> {
    let m = finite_timestamp(ty, raw, "chrono")?;
    pg_epoch()
        .checked_add_signed(TimeDelta::microseconds(m))
        .ok_or_else(|| {
            invalid(
                ty,
                format!("{} is out of chrono's range", super::PgTimestamp(m)),
            )
        })
}

fn encode_naive(v: &NaiveDateTime, ty: &Type, out: &mut BytesMut) -> Result<(), BoxError> {
    let m = finite_micros(v.signed_duration_since(pg_epoch()).num_microseconds())
        .ok_or_else(|| invalid(ty, format!("{v} is out of range")))?;
    out.put_i64(m);
    Ok(())
}

sql_impl!(
    NaiveDateTime,
    TIMESTAMP,
    [TIMESTAMP],
    encode_naive,
    decode_naive
);

sql_impl!(
    DateTime<Utc>,
    TIMESTAMPTZ,
    [TIMESTAMPTZ],
    |v, ty, out| encode_naive(&v.naive_utc(), ty, out),
    |ty, raw| decode_naive(ty, raw).map(|n| n.and_utc())
);

sql_impl!(
    DateTime<FixedOffset>,
    TIMESTAMPTZ,
    [TIMESTAMPTZ],
    |v, ty, out| encode_naive(&v.naive_utc(), ty, out),
    |ty, raw| decode_naive(ty, raw).map(|n| n.and_utc().fixed_offset())
);

sql_impl!(
    DateTime<Local>,
    TIMESTAMPTZ,
    [TIMESTAMPTZ],
    |v, ty, out| encode_naive(&v.naive_utc(), ty, out),
    |ty, raw| decode_naive(ty, raw).map(|n| n.and_utc().with_timezone(&Local))
);

sql_impl!(
    NaiveDate,
    DATE,
    [DATE],
    |v, ty, out| {
        let days = v.signed_duration_since(pg_epoch().date()).num_days();
        let days = finite_days(i32::try_from(days).ok())
            .ok_or_else(|| invalid(ty, format!("{v} is out of range")))?;
        out.put_i32(days);
        Ok(())
    },
    |ty, raw| {
        let days = finite_date(ty, raw, "chrono")?;
        pg_epoch()
            .date()
            .checked_add_signed(TimeDelta::days(days.into()))
            .ok_or_else(|| {
                let why = format!("{} is out of chrono's range", super::PgDate(days));
                invalid(ty, why)
            })
    }
);

sql_impl!(
    NaiveTime,
    TIME,
    [TIME],
    |v, _ty, out| {
        let since = v.signed_duration_since(NaiveTime::MIN);
        out.put_i64(since.num_microseconds().unwrap_or_default());
        Ok(())
    },
    |ty, raw| {
        let m = i64::from_be_bytes(fixed(ty, raw)?);
        let (secs, micros) = (m.div_euclid(1_000_000), m.rem_euclid(1_000_000));
        u32::try_from(secs)
            .ok()
            .and_then(|s| NaiveTime::from_num_seconds_from_midnight_opt(s, micros as u32 * 1000))
            .ok_or_else(|| invalid(ty, format!("{} does not fit chrono", super::PgTime(m))))
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::test_enc as enc;
    use crate::types::{FromSql, Timestamp};

    #[test]
    fn chrono_round_trips_and_limits() {
        let t = pg_epoch() + TimeDelta::microseconds(1);
        assert_eq!(enc(&t, &Type::TIMESTAMP), [0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            NaiveDateTime::from_sql(&Type::TIMESTAMP, &enc(&t, &Type::TIMESTAMP)).unwrap(),
            t
        );
        assert!(NaiveDateTime::from_sql(&Type::TIMESTAMPTZ, &[0; 8]).is_err());
        let utc = DateTime::<Utc>::from_sql(&Type::TIMESTAMPTZ, &[0; 8]).unwrap();
        assert_eq!(utc.to_rfc3339(), "2000-01-01T00:00:00+00:00");
        let d = NaiveDate::from_ymd_opt(2000, 2, 29).unwrap();
        assert_eq!(enc(&d, &Type::DATE), [0, 0, 0, 59]);
        let far = (i32::MAX - 1).to_be_bytes();
        let err = NaiveDate::from_sql(&Type::DATE, &far).unwrap_err();
        assert!(err.to_string().contains("out of chrono's range"), "{err}");
        let inf = i64::MAX.to_be_bytes();
        let err = NaiveDateTime::from_sql(&Type::TIMESTAMP, &inf).unwrap_err();
        assert!(err.to_string().contains("infinity"), "{err}");
        let w = Timestamp::<NaiveDateTime>::from_sql(&Type::TIMESTAMP, &inf).unwrap();
        assert_eq!(w, Timestamp::PosInfinity);
        let noon = NaiveTime::from_hms_micro_opt(12, 0, 0, 5).unwrap();
        let bytes = enc(&noon, &Type::TIME);
        assert_eq!(bytes, 43_200_000_005i64.to_be_bytes());
        assert_eq!(NaiveTime::from_sql(&Type::TIME, &bytes).unwrap(), noon);
        let midnight24 = 86_400_000_000i64.to_be_bytes();
        assert!(NaiveTime::from_sql(&Type::TIME, &midnight24).is_err());
    }
}
