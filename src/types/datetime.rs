//! Dates and times without extra crates: the raw forms ([`PgDate`], [`PgTime`],
//! [`PgTimeTz`], [`PgTimestamp`], [`PgTimestampTz`], [`Interval`]) that keep every value
//! including ±infinity and print what the server prints; `SystemTime` for timestamps;
//! and [`Date<T>`] / [`Timestamp<T>`] that add infinity to any other date type.
//!
//! On the wire (PostgreSQL's `timestamp_send` & co.) a timestamp is microseconds since
//! 2000-01-01 00:00:00, a date days since 2000-01-01, with the integer extremes meaning
//! ±infinity.

use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};

use super::{BoxError, FromSql, IsNull, ToSql, Type, ensure_accepts, invalid, wrong_type};

/// Days from 1970-01-01 to 2000-01-01.
pub(crate) const UNIX_TO_PG_DAYS: i64 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
pub(crate) const UNIX_TO_PG_MICROS: i64 = UNIX_TO_PG_DAYS * MICROS_PER_DAY;
pub(crate) const MICROS_PER_DAY: i64 = 86_400_000_000;
const MICROS_PER_HOUR: i64 = 3_600_000_000;
const MICROS_PER_MINUTE: i64 = 60_000_000;
const MICROS_PER_SECOND: i64 = 1_000_000;

/// Returns `raw` as exactly `N` bytes, or an InvalidValue naming `ty`.
pub(crate) fn fixed<const N: usize>(ty: &Type, raw: &[u8]) -> Result<[u8; N], BoxError> {
    <[u8; N]>::try_from(raw)
        .map_err(|_| invalid(ty, format!("expected {N} bytes, got {}", raw.len())))
}

/// A finite `timestamp`/`timestamptz`'s microseconds since 2000-01-01; ±infinity is an
/// error that names the Rust type `rust` and the wrapper that reads infinity.
pub(crate) fn finite_timestamp(ty: &Type, raw: &[u8], rust: &str) -> Result<i64, BoxError> {
    match i64::from_be_bytes(fixed(ty, raw)?) {
        i64::MAX | i64::MIN => Err(infinity_error(ty, rust, "Timestamp")),
        m => Ok(m),
    }
}

/// A finite `date`'s days since 2000-01-01; ±infinity is an error as above.
#[cfg(any(feature = "chrono", feature = "time", feature = "jiff"))]
pub(crate) fn finite_date(ty: &Type, raw: &[u8], rust: &str) -> Result<i32, BoxError> {
    match i32::from_be_bytes(fixed(ty, raw)?) {
        i32::MAX | i32::MIN => Err(infinity_error(ty, rust, "Date")),
        d => Ok(d),
    }
}

fn infinity_error(ty: &Type, rust: &str, wrapper: &str) -> BoxError {
    let why = format!("infinity does not fit {rust}; read it as pgkeel::types::{wrapper}<T>");
    invalid(ty, why)
}

/// `m` when it is a finite timestamp: the integer extremes would be read back as
/// ±infinity, so a value that lands on them is out of range.
pub(crate) fn finite_micros(m: Option<i64>) -> Option<i64> {
    m.filter(|m| *m != i64::MAX && *m != i64::MIN)
}

/// `d` when it is a finite date (as [`finite_micros`]).
#[cfg(any(feature = "chrono", feature = "jiff"))]
pub(crate) fn finite_days(d: Option<i32>) -> Option<i32> {
    d.filter(|d| *d != i32::MAX && *d != i32::MIN)
}

/// The proleptic Gregorian (year, month, day) of a day count from 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day count from 1970-01-01 of a proleptic Gregorian date.
#[cfg(any(test, feature = "jiff"))]
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Writes a date as the server does: `2000-01-31`, `0044-03-15 BC` (year 0 is 1 BC).
fn write_date(s: &mut String, pg_days: i64) -> bool {
    let (year, month, day) = civil_from_days(pg_days + UNIX_TO_PG_DAYS);
    let bc = year <= 0;
    let year = if bc { 1 - year } else { year };
    let _ = write!(s, "{year:04}-{month:02}-{day:02}");
    bc
}

/// Writes `HH:MM:SS` and the fraction without trailing zeros.
fn write_time(s: &mut String, micros: i64) {
    let (h, rest) = (micros / MICROS_PER_HOUR, micros % MICROS_PER_HOUR);
    let (m, rest) = (rest / MICROS_PER_MINUTE, rest % MICROS_PER_MINUTE);
    let _ = write!(s, "{h:02}:{m:02}:");
    write_seconds(s, rest);
}

/// Writes `SS[.ffffff]` of a non-negative microsecond count below one minute.
fn write_seconds(s: &mut String, micros: i64) {
    let (sec, frac) = (micros / MICROS_PER_SECOND, micros % MICROS_PER_SECOND);
    let _ = write!(s, "{sec:02}");
    if frac != 0 {
        let f = format!("{frac:06}");
        let _ = write!(s, ".{}", f.trim_end_matches('0'));
    }
}

/// Writes a UTC offset as the server does: `+02`, `-03:30`, `+05:45:10`.
fn write_offset(s: &mut String, east_secs: i32) {
    let sign = if east_secs < 0 { '-' } else { '+' };
    let a = east_secs.unsigned_abs();
    let _ = write!(s, "{sign}{:02}", a / 3600);
    if !a.is_multiple_of(3600) {
        let _ = write!(s, ":{:02}", a % 3600 / 60);
        if !a.is_multiple_of(60) {
            let _ = write!(s, ":{:02}", a % 60);
        }
    }
}

/// Writes a timestamp (microseconds since 2000-01-01) as the server does.
fn write_timestamp(s: &mut String, micros: i64, utc_suffix: bool) {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let bc = write_date(s, days);
    s.push(' ');
    write_time(s, micros.rem_euclid(MICROS_PER_DAY));
    if utc_suffix {
        s.push_str("+00");
    }
    if bc {
        s.push_str(" BC");
    }
}

/// Declares a raw date/time newtype over the wire integer, with its accepted type.
macro_rules! raw_type {
    ($(#[$doc:meta])* $name:ident($int:ty) as $pg:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub $int);

        impl ToSql for $name {
            fn sql_type() -> Type {
                Type::$pg
            }

            fn accepts(ty: &Type) -> bool {
                *ty == Type::$pg
            }

            fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
                ensure_accepts::<Self>(ty)?;
                out.put_slice(&self.0.to_be_bytes());
                Ok(IsNull::No)
            }

            crate::to_sql_checked!();
        }

        impl<'a> FromSql<'a> for $name {
            fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
                match *ty == Type::$pg {
                    true => Ok($name(<$int>::from_be_bytes(fixed(ty, raw)?))),
                    false => Err(wrong_type::<Self>(ty)),
                }
            }

            fn accepts(ty: &Type) -> bool {
                *ty == Type::$pg
            }
        }
    };
}

raw_type! {
    /// A `date` as days since 2000-01-01; `i32::MAX`/`i32::MIN` are ±infinity.
    PgDate(i32) as DATE
}
raw_type! {
    /// A `time` as microseconds since midnight (0 to 24:00:00).
    PgTime(i64) as TIME
}
raw_type! {
    /// A `timestamp` as microseconds since 2000-01-01 00:00:00; `i64::MAX`/`MIN` are ±infinity.
    PgTimestamp(i64) as TIMESTAMP
}
raw_type! {
    /// A `timestamptz` as microseconds since 2000-01-01 00:00:00 UTC; `i64::MAX`/`MIN` are ±infinity.
    PgTimestampTz(i64) as TIMESTAMPTZ
}

impl PgDate {
    /// `infinity`.
    pub const INFINITY: PgDate = PgDate(i32::MAX);
    /// `-infinity`.
    pub const NEG_INFINITY: PgDate = PgDate(i32::MIN);
}

impl PgTimestamp {
    /// `infinity`.
    pub const INFINITY: PgTimestamp = PgTimestamp(i64::MAX);
    /// `-infinity`.
    pub const NEG_INFINITY: PgTimestamp = PgTimestamp(i64::MIN);
}

impl PgTimestampTz {
    /// `infinity`.
    pub const INFINITY: PgTimestampTz = PgTimestampTz(i64::MAX);
    /// `-infinity`.
    pub const NEG_INFINITY: PgTimestampTz = PgTimestampTz(i64::MIN);
}

/// Writes `infinity`/`-infinity` for the extremes of an integer, else runs `normal`.
fn infinite_or(
    f: &mut fmt::Formatter<'_>,
    pos: bool,
    neg: bool,
    normal: impl FnOnce(&mut String),
) -> fmt::Result {
    if pos {
        return f.write_str("infinity");
    }
    if neg {
        return f.write_str("-infinity");
    }
    let mut s = String::with_capacity(32);
    normal(&mut s);
    f.write_str(&s)
}

impl fmt::Display for PgDate {
    /// The server's ISO form: `2000-01-31`, `4713-11-24 BC`, `infinity`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (pos, neg) = (self.0 == i32::MAX, self.0 == i32::MIN);
        infinite_or(f, pos, neg, |s| {
            if write_date(s, i64::from(self.0)) {
                s.push_str(" BC");
            }
        })
    }
}

impl fmt::Display for PgTime {
    /// The server's form: `13:45:00`, `23:59:59.5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        infinite_or(f, false, false, |s| write_time(s, self.0))
    }
}

impl fmt::Display for PgTimestamp {
    /// The server's ISO form: `2000-01-01 00:00:00.5`, `infinity`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (pos, neg) = (self.0 == i64::MAX, self.0 == i64::MIN);
        infinite_or(f, pos, neg, |s| write_timestamp(s, self.0, false))
    }
}

impl fmt::Display for PgTimestampTz {
    /// The server's ISO form with `TimeZone` set to UTC: `2000-01-01 00:00:00+00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (pos, neg) = (self.0 == i64::MAX, self.0 == i64::MIN);
        infinite_or(f, pos, neg, |s| write_timestamp(s, self.0, true))
    }
}

/// A `timetz`: microseconds since midnight and the UTC offset in seconds east.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PgTimeTz {
    /// Microseconds since midnight, local time.
    pub micros: i64,
    /// The UTC offset in seconds east of Greenwich (`+02` is 7200).
    pub offset_secs: i32,
}

impl fmt::Display for PgTimeTz {
    /// The server's form: `13:45:00+02`, `01:02:03.25-03:30`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        infinite_or(f, false, false, |s| {
            write_time(s, self.micros);
            write_offset(s, self.offset_secs);
        })
    }
}

impl ToSql for PgTimeTz {
    fn sql_type() -> Type {
        Type::TIMETZ
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMETZ
    }

    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        ensure_accepts::<Self>(ty)?;
        // The server stores the zone as seconds west of Greenwich.
        let west = self.offset_secs.checked_neg();
        let west = west.ok_or_else(|| invalid(ty, "the zone offset is out of range".into()))?;
        out.put_i64(self.micros);
        out.put_i32(west);
        Ok(IsNull::No)
    }

    crate::to_sql_checked!();
}

impl<'a> FromSql<'a> for PgTimeTz {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        if *ty != Type::TIMETZ {
            return Err(wrong_type::<Self>(ty));
        }
        let raw: [u8; 12] = fixed(ty, raw)?;
        let (t, z) = raw.split_at(8);
        let west = i32::from_be_bytes(z.try_into().expect("4 bytes"));
        Ok(PgTimeTz {
            micros: i64::from_be_bytes(t.try_into().expect("8 bytes")),
            offset_secs: west
                .checked_neg()
                .ok_or_else(|| invalid(ty, "bad zone".into()))?,
        })
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMETZ
    }
}

/// An `interval`: months, days and microseconds, kept apart as the server keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Interval {
    /// Whole months (a year is 12).
    pub months: i32,
    /// Whole days.
    pub days: i32,
    /// Microseconds.
    pub microseconds: i64,
}

impl Interval {
    /// An interval of `months`, `days` and `microseconds`.
    pub const fn new(months: i32, days: i32, microseconds: i64) -> Interval {
        Interval {
            months,
            days,
            microseconds,
        }
    }
}

impl fmt::Display for Interval {
    /// The server's default (`IntervalStyle = postgres`) form: `1 year 2 mons -3 days 04:05:06.5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(48);
        let mut before_negative = false;
        let mut zero = true;
        let parts = [
            (i64::from(self.months / 12), "year"),
            (i64::from(self.months % 12), "mon"),
            (i64::from(self.days), "day"),
        ];
        for (value, unit) in parts.into_iter().filter(|(v, _)| *v != 0) {
            let plus = if before_negative && value > 0 {
                "+"
            } else {
                ""
            };
            let space = if zero { "" } else { " " };
            let plural = if value != 1 { "s" } else { "" };
            let _ = write!(s, "{space}{plus}{value} {unit}{plural}");
            before_negative = value < 0;
            zero = false;
        }
        let us = self.microseconds;
        if zero || us != 0 {
            let space = if zero { "" } else { " " };
            let sign = match (us < 0, before_negative) {
                (true, _) => "-",
                (false, true) => "+",
                _ => "",
            };
            let a = us.unsigned_abs();
            let (h, rest) = (a / 3_600_000_000, a % 3_600_000_000);
            let _ = write!(s, "{space}{sign}{h:02}:{:02}:", rest / 60_000_000);
            write_seconds(&mut s, (rest % 60_000_000) as i64);
        }
        f.write_str(&s)
    }
}

impl ToSql for Interval {
    fn sql_type() -> Type {
        Type::INTERVAL
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }

    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        ensure_accepts::<Self>(ty)?;
        out.put_i64(self.microseconds);
        out.put_i32(self.days);
        out.put_i32(self.months);
        Ok(IsNull::No)
    }

    crate::to_sql_checked!();
}

impl<'a> FromSql<'a> for Interval {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        if *ty != Type::INTERVAL {
            return Err(wrong_type::<Self>(ty));
        }
        let raw: [u8; 16] = fixed(ty, raw)?;
        let word = |a: usize| i32::from_be_bytes(raw[a..a + 4].try_into().expect("4 bytes"));
        Ok(Interval {
            microseconds: i64::from_be_bytes(raw[..8].try_into().expect("8 bytes")),
            days: word(8),
            months: word(12),
        })
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

/// Whether `ty` is a timestamp type that `SystemTime` and friends accept.
fn timestamp_type(ty: &Type) -> bool {
    *ty == Type::TIMESTAMP || *ty == Type::TIMESTAMPTZ
}

impl ToSql for SystemTime {
    fn sql_type() -> Type {
        Type::TIMESTAMPTZ
    }

    fn accepts(ty: &Type) -> bool {
        timestamp_type(ty)
    }

    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        ensure_accepts::<Self>(ty)?;
        let unix = match self.duration_since(UNIX_EPOCH) {
            Ok(d) => i128::try_from(d.as_micros()).ok(),
            Err(e) => i128::try_from(e.duration().as_micros()).ok().map(|m| -m),
        };
        let pg = unix.and_then(|m| i64::try_from(m - i128::from(UNIX_TO_PG_MICROS)).ok());
        let pg =
            finite_micros(pg).ok_or_else(|| invalid(ty, format!("{self:?} is out of range")))?;
        out.put_i64(pg);
        Ok(IsNull::No)
    }

    crate::to_sql_checked!();
}

impl<'a> FromSql<'a> for SystemTime {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        if !timestamp_type(ty) {
            return Err(wrong_type::<Self>(ty));
        }
        let pg = finite_timestamp(ty, raw, "SystemTime")?;
        let unix = i128::from(pg) + i128::from(UNIX_TO_PG_MICROS);
        let d = Duration::from_micros(unix.unsigned_abs() as u64);
        let t = match unix >= 0 {
            true => UNIX_EPOCH.checked_add(d),
            false => UNIX_EPOCH.checked_sub(d),
        };
        t.ok_or_else(|| invalid(ty, "out of SystemTime's range".into()))
    }

    fn accepts(ty: &Type) -> bool {
        timestamp_type(ty)
    }
}

/// A `timestamp`/`timestamptz` that may be ±infinity, over any timestamp type `T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timestamp<T> {
    /// `infinity`.
    PosInfinity,
    /// `-infinity`.
    NegInfinity,
    /// A finite value.
    Value(T),
}

/// A `date` that may be ±infinity, over any date type `T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Date<T> {
    /// `infinity`.
    PosInfinity,
    /// `-infinity`.
    NegInfinity,
    /// A finite value.
    Value(T),
}

/// Implements ToSql/FromSql for an infinity wrapper whose sentinels are `$int` extremes.
macro_rules! infinity_wrapper {
    ($wrapper:ident, $int:ty) => {
        impl<T: ToSql> ToSql for $wrapper<T> {
            fn sql_type() -> Type {
                T::sql_type()
            }

            fn accepts(ty: &Type) -> bool {
                T::accepts(ty)
            }

            fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
                ensure_accepts::<Self>(ty)?;
                match self {
                    $wrapper::PosInfinity => out.put_slice(&<$int>::MAX.to_be_bytes()),
                    $wrapper::NegInfinity => out.put_slice(&<$int>::MIN.to_be_bytes()),
                    $wrapper::Value(v) => return v.to_sql(ty, out),
                }
                Ok(IsNull::No)
            }

            crate::to_sql_checked!();
        }

        impl<'a, T: FromSql<'a>> FromSql<'a> for $wrapper<T> {
            fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
                if raw == <$int>::MAX.to_be_bytes() {
                    Ok($wrapper::PosInfinity)
                } else if raw == <$int>::MIN.to_be_bytes() {
                    Ok($wrapper::NegInfinity)
                } else {
                    T::from_sql(ty, raw).map($wrapper::Value)
                }
            }

            fn accepts(ty: &Type) -> bool {
                T::accepts(ty)
            }
        }
    };
}

infinity_wrapper!(Timestamp, i64);
infinity_wrapper!(Date, i32);

#[cfg(test)]
mod tests {
    #[test]
    fn a_zone_offset_that_cannot_be_negated_is_an_error_not_a_panic() {
        use crate::types::{ToSql, Type};
        let v = super::PgTimeTz {
            micros: 0,
            offset_secs: i32::MIN,
        };
        let mut out = bytes::BytesMut::new();
        assert!(v.to_sql(&Type::TIMETZ, &mut out).is_err());
    }

    use super::*;

    fn enc<T: ToSql>(v: T, ty: &Type) -> Vec<u8> {
        let mut out = BytesMut::new();
        v.to_sql(ty, &mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn calendar_round_trips() {
        for days in [
            -2_451_545 - 10_957,
            -1,
            0,
            59,
            60,
            10_957,
            2_000_000,
            100_000_000,
        ] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(UNIX_TO_PG_DAYS + 59), (2000, 2, 29));
    }

    #[test]
    fn dates_print_like_the_server() {
        assert_eq!(PgDate(0).to_string(), "2000-01-01");
        assert_eq!(PgDate(59).to_string(), "2000-02-29");
        assert_eq!(PgDate(-1).to_string(), "1999-12-31");
        assert_eq!(PgDate(-2_451_545).to_string(), "4714-11-24 BC");
        let max = days_from_civil(5_874_897, 12, 31) - UNIX_TO_PG_DAYS;
        assert_eq!(PgDate(max as i32).to_string(), "5874897-12-31");
        assert_eq!(PgDate::INFINITY.to_string(), "infinity");
        assert_eq!(PgDate::NEG_INFINITY.to_string(), "-infinity");
        assert_eq!(enc(PgDate(1), &Type::DATE), [0, 0, 0, 1]);
        assert_eq!(
            PgDate::from_sql(&Type::DATE, &[0xff; 4]).unwrap(),
            PgDate(-1)
        );
    }

    #[test]
    fn timestamps_print_like_the_server() {
        assert_eq!(PgTimestamp(0).to_string(), "2000-01-01 00:00:00");
        assert_eq!(PgTimestamp(500_000).to_string(), "2000-01-01 00:00:00.5");
        assert_eq!(PgTimestamp(-1).to_string(), "1999-12-31 23:59:59.999999");
        let min = -211_813_488_000_000_000;
        assert_eq!(PgTimestamp(min).to_string(), "4714-11-24 00:00:00 BC");
        assert_eq!(PgTimestampTz(0).to_string(), "2000-01-01 00:00:00+00");
        assert_eq!(PgTimestampTz::INFINITY.to_string(), "infinity");
        assert_eq!(
            enc(PgTimestampTz(1), &Type::TIMESTAMPTZ),
            [0, 0, 0, 0, 0, 0, 0, 1]
        );
        assert!(PgTimestamp::from_sql(&Type::TIMESTAMPTZ, &[0; 8]).is_err());
    }

    #[test]
    fn times_and_intervals_print_like_the_server() {
        assert_eq!(PgTime(0).to_string(), "00:00:00");
        assert_eq!(PgTime(MICROS_PER_DAY).to_string(), "24:00:00");
        assert_eq!(PgTime(45_296_000_001).to_string(), "12:34:56.000001");
        let tz = PgTimeTz {
            micros: 0,
            offset_secs: -(3 * 3600 + 1800),
        };
        assert_eq!(tz.to_string(), "00:00:00-03:30");
        let bytes = enc(tz, &Type::TIMETZ);
        assert_eq!(bytes, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x31, 0x38]);
        assert_eq!(PgTimeTz::from_sql(&Type::TIMETZ, &bytes).unwrap(), tz);
        let cases = [
            (Interval::new(0, 0, 0), "00:00:00"),
            (
                Interval::new(14, 3, 14_706_000_000),
                "1 year 2 mons 3 days 04:05:06",
            ),
            (
                Interval::new(-1, -1, -1),
                "-1 mons -1 days -00:00:00.000001",
            ),
            (Interval::new(-12, 1, 1_000_000), "-1 years +1 day 00:00:01"),
            (Interval::new(0, -2, 3_600_000_000), "-2 days +01:00:00"),
            (Interval::new(1, 0, 0), "1 mon"),
            (Interval::new(0, 0, 360_000_000_000), "100:00:00"),
        ];
        for (iv, text) in cases {
            assert_eq!(iv.to_string(), text);
        }
        let bytes = enc(Interval::new(1, 2, 3), &Type::INTERVAL);
        assert_eq!(bytes, [0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 1]);
        assert_eq!(
            Interval::from_sql(&Type::INTERVAL, &bytes).unwrap(),
            Interval::new(1, 2, 3)
        );
    }

    #[test]
    fn system_time_and_infinity() {
        let t = UNIX_EPOCH + Duration::from_secs(946_684_800);
        assert_eq!(enc(t, &Type::TIMESTAMPTZ), [0; 8]);
        let before = UNIX_EPOCH - Duration::from_micros(1);
        let bytes = enc(before, &Type::TIMESTAMPTZ);
        assert_eq!(
            SystemTime::from_sql(&Type::TIMESTAMPTZ, &bytes).unwrap(),
            before
        );
        let inf = i64::MAX.to_be_bytes();
        let err = SystemTime::from_sql(&Type::TIMESTAMPTZ, &inf).unwrap_err();
        assert!(err.to_string().contains("infinity"), "{err}");
        let w = Timestamp::<SystemTime>::from_sql(&Type::TIMESTAMPTZ, &inf).unwrap();
        assert_eq!(w, Timestamp::PosInfinity);
        let neg = Timestamp::<SystemTime>::NegInfinity;
        assert_eq!(enc(neg, &Type::TIMESTAMPTZ), i64::MIN.to_be_bytes());
        let d = Date::<PgDate>::from_sql(&Type::DATE, &[0, 0, 0, 5]).unwrap();
        assert_eq!(d, Date::Value(PgDate(5)));
        assert_eq!(
            enc(Date::<PgDate>::PosInfinity, &Type::DATE),
            i32::MAX.to_be_bytes()
        );
        assert!(SystemTime::from_sql(&Type::DATE, &[0; 8]).is_err());
    }
}
