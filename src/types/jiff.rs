//! jiff 0.2 (feature `jiff`): `Timestamp` ⇄ timestamptz, `civil::DateTime` ⇄ timestamp,
//! `civil::Date` ⇄ date, `civil::Time` ⇄ time, `SignedDuration` and `Span` ⇄ interval.
//!
//! As for chrono and time: ±infinity and values outside jiff's range (years beyond
//! ±9999) are errors that say so, and nanoseconds below a microsecond are dropped when
//! sending a point in time. Durations are refused rather than rounded: a
//! `SignedDuration` or `Span` with sub-microsecond nanoseconds, an interval with months
//! or days into `SignedDuration` (a day is not always 24 hours), or an interval past
//! `Span`'s limits.

use bytes::{BufMut, BytesMut};
use jiff::civil::{Date, DateTime, Time};
use jiff::{SignedDuration, Span, Timestamp};

use super::datetime::{
    UNIX_TO_PG_DAYS, UNIX_TO_PG_MICROS, days_from_civil, finite_date, finite_days, finite_micros,
    finite_timestamp, fixed,
};
use super::{BoxError, Interval, PgDate, PgTimestamp, Type, invalid};

const MICROS_PER_DAY: i64 = 86_400_000_000;

fn decode_timestamp(ty: &Type, raw: &[u8]) -> Result<Timestamp, BoxError> {
    let m = finite_timestamp(ty, raw, "jiff")?;
    m.checked_add(UNIX_TO_PG_MICROS)
        .and_then(|unix| Timestamp::from_microsecond(unix).ok())
        .ok_or_else(|| invalid(ty, format!("{} is out of jiff's range", PgTimestamp(m))))
}

fn encode_timestamp(v: &Timestamp, ty: &Type, out: &mut BytesMut) -> Result<(), BoxError> {
    let m = finite_micros(v.as_microsecond().checked_sub(UNIX_TO_PG_MICROS))
        .ok_or_else(|| invalid(ty, format!("{v} is out of range")))?;
    out.put_i64(m);
    Ok(())
}

sql_impl!(
    Timestamp,
    TIMESTAMPTZ,
    [TIMESTAMPTZ],
    encode_timestamp,
    decode_timestamp
);

// Civil date-times reach 9999-12-31 23:59:59.999999, past jiff's `Timestamp` range
// (which keeps every offset within ±9999), so they are computed from days and micros.
sql_impl!(
    DateTime,
    TIMESTAMP,
    [TIMESTAMP],
    |v, ty, out| {
        let days = date_to_pg_days(&v.date());
        let m = days
            .checked_mul(MICROS_PER_DAY)
            .and_then(|d| d.checked_add(time_to_micros(&v.time())));
        let m = finite_micros(m).ok_or_else(|| invalid(ty, format!("{v} is out of range")))?;
        out.put_i64(m);
        Ok(())
    },
    |ty, raw| {
        let m = finite_timestamp(ty, raw, "jiff")?;
        let out_of_range = || invalid(ty, format!("{} is out of jiff's range", PgTimestamp(m)));
        let date = date_from_pg_days(m.div_euclid(MICROS_PER_DAY)).ok_or_else(out_of_range)?;
        let time = time_from_micros(m.rem_euclid(MICROS_PER_DAY)).ok_or_else(out_of_range)?;
        Ok(DateTime::from_parts(date, time))
    }
);

/// Days since 2000-01-01 of a civil date.
fn date_to_pg_days(v: &Date) -> i64 {
    days_from_civil(v.year().into(), v.month() as u32, v.day() as u32) - UNIX_TO_PG_DAYS
}

/// The civil date `days` after 2000-01-01, if jiff can hold it.
fn date_from_pg_days(days: i64) -> Option<Date> {
    let (y, m, d) = super::datetime::civil_from_days(days.checked_add(UNIX_TO_PG_DAYS)?);
    Date::new(i16::try_from(y).ok()?, m as i8, d as i8).ok()
}

/// Microseconds since midnight (sub-µs nanoseconds dropped).
fn time_to_micros(v: &Time) -> i64 {
    let secs = i64::from(v.hour()) * 3600 + i64::from(v.minute()) * 60 + i64::from(v.second());
    secs * 1_000_000 + i64::from(v.subsec_nanosecond() / 1000)
}

/// The time `m` microseconds after midnight, within one day.
fn time_from_micros(m: i64) -> Option<Time> {
    if !(0..MICROS_PER_DAY).contains(&m) {
        return None;
    }
    let (secs, micros) = (m / 1_000_000, (m % 1_000_000) as i32);
    let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    Time::new(h as i8, mi as i8, s as i8, micros * 1000).ok()
}

sql_impl!(
    Date,
    DATE,
    [DATE],
    |v, ty, out| {
        let days = finite_days(i32::try_from(date_to_pg_days(v)).ok())
            .ok_or_else(|| invalid(ty, format!("{v} is out of range")))?;
        out.put_i32(days);
        Ok(())
    },
    |ty, raw| {
        let days = finite_date(ty, raw, "jiff")?;
        date_from_pg_days(days.into())
            .ok_or_else(|| invalid(ty, format!("{} is out of jiff's range", PgDate(days))))
    }
);

sql_impl!(
    Time,
    TIME,
    [TIME],
    |v, _ty, out| {
        out.put_i64(time_to_micros(v));
        Ok(())
    },
    |ty, raw| {
        let m = i64::from_be_bytes(fixed(ty, raw)?);
        time_from_micros(m).ok_or_else(|| {
            invalid(
                ty,
                format!("{} does not fit jiff::civil::Time", super::PgTime(m)),
            )
        })
    }
);

/// Microseconds of a duration, refusing what does not fit or would be rounded.
fn exact_micros(ty: &Type, nanos: i128, what: &dyn std::fmt::Display) -> Result<i64, BoxError> {
    if nanos % 1000 != 0 {
        let why = format!("{what} has sub-microsecond nanoseconds, which interval cannot hold");
        return Err(invalid(ty, why));
    }
    i64::try_from(nanos / 1000).map_err(|_| invalid(ty, format!("{what} is out of range")))
}

fn put_interval(v: Interval, out: &mut BytesMut) {
    out.put_i64(v.microseconds);
    out.put_i32(v.days);
    out.put_i32(v.months);
}

fn read_interval(ty: &Type, raw: &[u8]) -> Result<Interval, BoxError> {
    let b: [u8; 16] = fixed(ty, raw)?;
    let [
        m0,
        m1,
        m2,
        m3,
        m4,
        m5,
        m6,
        m7,
        d0,
        d1,
        d2,
        d3,
        mo0,
        mo1,
        mo2,
        mo3,
    ] = b;
    Ok(Interval::new(
        i32::from_be_bytes([mo0, mo1, mo2, mo3]),
        i32::from_be_bytes([d0, d1, d2, d3]),
        i64::from_be_bytes([m0, m1, m2, m3, m4, m5, m6, m7]),
    ))
}

sql_impl!(
    SignedDuration,
    INTERVAL,
    [INTERVAL],
    |v, ty, out| {
        let micros = exact_micros(ty, v.as_nanos(), v)?;
        put_interval(Interval::new(0, 0, micros), out);
        Ok(())
    },
    |ty, raw| {
        let i = read_interval(ty, raw)?;
        if i.months != 0 || i.days != 0 {
            let why = format!(
                "{i} has months or days, which SignedDuration cannot hold exactly \
                 (a day is not always 24 hours): read it as jiff::Span or pgkeel::types::Interval"
            );
            return Err(invalid(ty, why));
        }
        Ok(SignedDuration::from_micros(i.microseconds))
    }
);

/// The interval of a span: years and months as months, weeks and days as days, the
/// rest as microseconds; every sum checked.
fn span_to_interval(ty: &Type, v: &Span) -> Result<Interval, BoxError> {
    let too_big = || invalid(ty, format!("{v} is out of interval's range"));
    let months = i64::from(v.get_years()) * 12 + i64::from(v.get_months());
    let days = i64::from(v.get_weeks()) * 7 + i64::from(v.get_days());
    let nanos = i128::from(v.get_hours()) * 3_600_000_000_000
        + i128::from(v.get_minutes()) * 60_000_000_000
        + i128::from(v.get_seconds()) * 1_000_000_000
        + i128::from(v.get_milliseconds()) * 1_000_000
        + i128::from(v.get_microseconds()) * 1_000
        + i128::from(v.get_nanoseconds());
    Ok(Interval::new(
        i32::try_from(months).map_err(|_| too_big())?,
        i32::try_from(days).map_err(|_| too_big())?,
        exact_micros(ty, nanos, v)?,
    ))
}

/// The span of an interval: months as years and months, days as days, microseconds as
/// hours, minutes, seconds and microseconds (so it prints as the server would).
fn interval_to_span(ty: &Type, i: Interval) -> Result<Span, BoxError> {
    // A span has one sign for all its units: setting a negative unit on a positive
    // span would silently negate the rest.
    let signs = [i64::from(i.months), i64::from(i.days), i.microseconds].map(i64::signum);
    if signs.contains(&1) && signs.contains(&-1) {
        let why = format!(
            "{i} mixes signs, which jiff::Span cannot hold (one sign for the whole span): \
             read it as pgkeel::types::Interval"
        );
        return Err(invalid(ty, why));
    }
    let m = i.microseconds;
    let hours = m / 3_600_000_000;
    let minutes = m / 60_000_000 % 60;
    let seconds = m / 1_000_000 % 60;
    Span::new()
        .try_years(i.months / 12)
        .and_then(|s| s.try_months(i.months % 12))
        .and_then(|s| s.try_days(i.days))
        .and_then(|s| s.try_hours(hours))
        .and_then(|s| s.try_minutes(minutes))
        .and_then(|s| s.try_seconds(seconds))
        .and_then(|s| s.try_microseconds(m % 1_000_000))
        .map_err(|e| invalid(ty, format!("{i} does not fit jiff::Span: {e}")))
}

sql_impl!(
    Span,
    INTERVAL,
    [INTERVAL],
    |v, ty, out| {
        put_interval(span_to_interval(ty, v)?, out);
        Ok(())
    },
    |ty, raw| interval_to_span(ty, read_interval(ty, raw)?)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::test_enc as enc;
    use crate::types::{FromSql, ToSql};

    #[test]
    fn points_in_time_round_trip_and_refuse_infinity() {
        let ts = Timestamp::from_microsecond(UNIX_TO_PG_MICROS + 1).unwrap();
        assert_eq!(enc(&ts, &Type::TIMESTAMPTZ), 1i64.to_be_bytes());
        assert_eq!(
            Timestamp::from_sql(&Type::TIMESTAMPTZ, &1i64.to_be_bytes()).unwrap(),
            ts
        );
        let err = Timestamp::from_sql(&Type::TIMESTAMPTZ, &i64::MAX.to_be_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("infinity does not fit jiff"),
            "{err}"
        );
        let far = (i64::MAX - 1).to_be_bytes();
        let err = DateTime::from_sql(&Type::TIMESTAMP, &far).unwrap_err();
        assert!(err.to_string().contains("out of jiff's range"), "{err}");
        let leap = Date::new(2000, 2, 29).unwrap();
        assert_eq!(enc(&leap, &Type::DATE), 59i32.to_be_bytes());
        assert_eq!(
            Date::from_sql(&Type::DATE, &59i32.to_be_bytes()).unwrap(),
            leap
        );
        assert!(Date::from_sql(&Type::DATE, &i32::MIN.to_be_bytes()).is_err());
        let t = Time::new(23, 59, 59, 999_999_000).unwrap();
        let bytes = enc(&t, &Type::TIME);
        assert_eq!(bytes, (MICROS_PER_DAY - 1).to_be_bytes());
        assert_eq!(Time::from_sql(&Type::TIME, &bytes).unwrap(), t);
        assert!(Time::from_sql(&Type::TIME, &MICROS_PER_DAY.to_be_bytes()).is_err());
    }

    #[test]
    fn durations_are_exact_or_refused() {
        let d = SignedDuration::from_micros(-1_500_000);
        let bytes = enc(&d, &Type::INTERVAL);
        assert_eq!(
            SignedDuration::from_sql(&Type::INTERVAL, &bytes).unwrap(),
            d
        );
        let mut out = BytesMut::new();
        let nanos = SignedDuration::from_nanos(1);
        assert!(nanos.to_sql(&Type::INTERVAL, &mut out).is_err());
        let mut day = BytesMut::new();
        put_interval(Interval::new(0, 1, 0), &mut day);
        let err = SignedDuration::from_sql(&Type::INTERVAL, &day).unwrap_err();
        assert!(
            err.to_string().contains("a day is not always 24 hours"),
            "{err}"
        );
        let span = Span::new()
            .years(1)
            .months(2)
            .weeks(1)
            .days(1)
            .hours(-0)
            .minutes(3);
        let back = Span::from_sql(&Type::INTERVAL, &enc(&span, &Type::INTERVAL)).unwrap();
        assert_eq!(
            back.fieldwise(),
            Span::new()
                .years(1)
                .months(2)
                .days(8)
                .minutes(3)
                .fieldwise()
        );
        let mut huge = BytesMut::new();
        put_interval(Interval::new(i32::MAX, 0, 0), &mut huge);
        assert!(Span::from_sql(&Type::INTERVAL, &huge).is_err());
        let mut mixed = BytesMut::new();
        put_interval(Interval::new(1, -2, 0), &mut mixed);
        let err = Span::from_sql(&Type::INTERVAL, &mixed).unwrap_err();
        assert!(err.to_string().contains("mixes signs"), "{err}");
    }
}
