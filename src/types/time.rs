//! time (feature `time`): `Date` ⇄ date, `Time` ⇄ time, `PrimitiveDateTime` ⇄ timestamp,
//! `OffsetDateTime` ⇄ timestamptz.
//!
//! ±infinity and values outside the crate's range (years beyond ±9999 without its
//! `large-dates` feature) are errors that say so.

use bytes::{BufMut, BytesMut};
use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time};

use super::datetime::{finite_date, finite_micros, finite_timestamp, fixed};
use super::{BoxError, PgDate, PgTimestamp, Type, invalid};

/// 2000-01-01 00:00:00, the server's epoch.
fn pg_epoch() -> PrimitiveDateTime {
    let date = Date::from_calendar_date(2000, Month::January, 1).expect("a valid date");
    PrimitiveDateTime::new(date, Time::MIDNIGHT)
}

fn decode_primitive(ty: &Type, raw: &[u8]) -> Result<PrimitiveDateTime, BoxError> {
    let m = finite_timestamp(ty, raw, "the time crate")?;
    pg_epoch()
        .checked_add(Duration::microseconds(m))
        .ok_or_else(|| {
            invalid(
                ty,
                format!("{} is out of the time crate's range", PgTimestamp(m)),
            )
        })
}

fn encode_primitive(v: &PrimitiveDateTime, ty: &Type, out: &mut BytesMut) -> Result<(), BoxError> {
    let m = finite_micros(i64::try_from((*v - pg_epoch()).whole_microseconds()).ok())
        .ok_or_else(|| invalid(ty, format!("{v} is out of range")))?;
    out.put_i64(m);
    Ok(())
}

sql_impl!(
    PrimitiveDateTime,
    TIMESTAMP,
    [TIMESTAMP],
    encode_primitive,
    decode_primitive
);

sql_impl!(
    OffsetDateTime,
    TIMESTAMPTZ,
    [TIMESTAMPTZ],
    |v, ty, out| {
        let utc = v.to_offset(time::UtcOffset::UTC);
        encode_primitive(&PrimitiveDateTime::new(utc.date(), utc.time()), ty, out)
    },
    |ty, raw| decode_primitive(ty, raw).map(PrimitiveDateTime::assume_utc)
);

/// The Julian day of 2000-01-01.
const PG_EPOCH_JULIAN: i32 = 2_451_545;

sql_impl!(
    Date,
    DATE,
    [DATE],
    |v, _ty, out| {
        out.put_i32(v.to_julian_day() - PG_EPOCH_JULIAN);
        Ok(())
    },
    |ty, raw| {
        let days = finite_date(ty, raw, "the time crate")?;
        let julian = days.checked_add(PG_EPOCH_JULIAN).unwrap_or(i32::MAX);
        Date::from_julian_day(julian).map_err(|_| {
            invalid(
                ty,
                format!("{} is out of the time crate's range", PgDate(days)),
            )
        })
    }
);

sql_impl!(
    Time,
    TIME,
    [TIME],
    |v, _ty, out| {
        out.put_i64((*v - Time::MIDNIGHT).whole_microseconds() as i64);
        Ok(())
    },
    |ty, raw| {
        let m = i64::from_be_bytes(fixed(ty, raw)?);
        let fits = (0..86_400_000_000).contains(&m);
        let time = fits.then(|| Time::MIDNIGHT + Duration::microseconds(m));
        time.ok_or_else(|| {
            invalid(
                ty,
                format!("{} does not fit the time crate", super::PgTime(m)),
            )
        })
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::FromSql;
    use crate::types::test_enc as enc;

    #[test]
    fn a_date_past_the_julian_range_is_an_error_not_a_panic() {
        assert!(Date::from_sql(&Type::DATE, &[0x7f, 0xff, 0xff, 0xfe]).is_err());
    }

    #[test]
    fn time_round_trips_and_limits() {
        let t = pg_epoch() + Duration::microseconds(-1);
        let bytes = enc(&t, &Type::TIMESTAMP);
        assert_eq!(bytes, [0xff; 8]);
        assert_eq!(
            PrimitiveDateTime::from_sql(&Type::TIMESTAMP, &bytes).unwrap(),
            t
        );
        let odt = OffsetDateTime::from_sql(&Type::TIMESTAMPTZ, &[0; 8]).unwrap();
        assert_eq!(odt.unix_timestamp(), 946_684_800);
        let d = Date::from_calendar_date(2000, Month::February, 29).unwrap();
        assert_eq!(enc(&d, &Type::DATE), [0, 0, 0, 59]);
        assert_eq!(Date::from_sql(&Type::DATE, &[0, 0, 0, 59]).unwrap(), d);
        let far = 3_000_000i32.to_be_bytes();
        let err = Date::from_sql(&Type::DATE, &far).unwrap_err();
        assert!(
            err.to_string().contains("out of the time crate's range"),
            "{err}"
        );
        assert!(Date::from_sql(&Type::DATE, &i32::MIN.to_be_bytes()).is_err());
        let noon = Time::from_hms_micro(12, 0, 0, 5).unwrap();
        assert_eq!(enc(&noon, &Type::TIME), 43_200_000_005i64.to_be_bytes());
        assert_eq!(
            Time::from_sql(&Type::TIME, &43_200_000_005i64.to_be_bytes()).unwrap(),
            noon
        );
        assert!(Time::from_sql(&Type::TIMESTAMP, &[0; 8]).is_err());
    }
}
