//! Time for certificate work: parsing `--at`/`--now` arguments (RFC 3339 or
//! relative like "+10m"), RFC 3339 rendering, and human spans ("2 min",
//! "29 days") for validity margins. Pure functions; never reads the clock.

use std::time::{Duration, SystemTime};

use rustls::pki_types::UnixTime;
use time::{OffsetDateTime, UtcOffset};

/// Why a time argument could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value:?} is not a time: use RFC 3339 (2026-09-01T00:00:00Z), a date (2026-09-01), \
     \"now\", or an offset from now like +10m or -2h ({reason})"
)]
pub struct TimeError {
    /// The argument as given.
    pub value: String,
    /// What the parser reported.
    pub reason: String,
}

/// Parses a time argument relative to `now`: "now"; "+10m", "-2h", "+3 days"
/// (humantime durations with a sign); RFC 3339 with or without the zone
/// (UTC assumed) or fractional seconds; a bare date (midnight UTC).
pub fn parse_time(value: &str, now: OffsetDateTime) -> Result<OffsetDateTime, TimeError> {
    let error = |reason: String| TimeError {
        value: value.to_owned(),
        reason,
    };
    let trimmed = value.trim();
    if trimmed.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Some((sign, rest)) = trimmed
        .strip_prefix('+')
        .map(|rest| (1, rest))
        .or_else(|| trimmed.strip_prefix('-').map(|rest| (-1, rest)))
    {
        let offset = humantime::parse_duration(rest.trim()).map_err(|e| error(e.to_string()))?;
        let offset = time::Duration::try_from(offset).map_err(|e| error(e.to_string()))?;
        let at = if sign > 0 {
            now.checked_add(offset)
        } else {
            now.checked_sub(offset)
        };
        return at.ok_or_else(|| error("out of range".to_owned()));
    }
    let full = if trimmed.len() == 10 && trimmed.as_bytes().get(4) == Some(&b'-') {
        format!("{trimmed}T00:00:00Z")
    } else {
        trimmed.to_owned()
    };
    let system = humantime::parse_rfc3339_weak(&full).map_err(|e| error(e.to_string()))?;
    Ok(from_system(system))
}

/// `t` in UTC as "2026-09-01T00:00:00Z" (whole seconds, as certificates
/// store times).
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A span of `seconds` for people: "45 s", "2 min", "2 min 30 s",
/// "3 h 5 min", "1 day 4 h", "29 days" (two units at most, rounded down).
pub fn span(seconds: u64) -> String {
    const MIN: u64 = 60;
    const HOUR: u64 = 60 * MIN;
    const DAY: u64 = 24 * HOUR;
    let pair = |big: u64, big_unit: &str, small: u64, small_unit: &str| {
        if small == 0 {
            format!("{big} {big_unit}")
        } else {
            format!("{big} {big_unit} {small} {small_unit}")
        }
    };
    match seconds {
        s if s < MIN => format!("{s} s"),
        s if s < HOUR => pair(s / MIN, "min", s % MIN, "s"),
        s if s < DAY => pair(s / HOUR, "h", s % HOUR / MIN, "min"),
        s if s < 2 * DAY => pair(1, "day", (s - DAY) / HOUR, "h"),
        s => format!("{} days", s / DAY),
    }
}

/// `t` as rustls's [`UnixTime`]; times before 1970 become the epoch.
pub fn unix_time(t: OffsetDateTime) -> UnixTime {
    let secs = u64::try_from(t.unix_timestamp()).unwrap_or(0);
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

/// rustls's [`UnixTime`] as an [`OffsetDateTime`] in UTC.
pub fn from_unix_time(t: UnixTime) -> OffsetDateTime {
    let secs = i64::try_from(t.as_secs()).unwrap_or(i64::MAX);
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A certificate time (seconds since the epoch, possibly negative) in UTC.
pub fn from_timestamp(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The system clock as an [`OffsetDateTime`] in UTC, whole seconds.
pub fn now() -> OffsetDateTime {
    from_system(SystemTime::now())
}

fn from_system(t: SystemTime) -> OffsetDateTime {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    };
    from_timestamp(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        from_timestamp(secs)
    }

    #[test]
    fn parses_rfc3339_dates_and_offsets() {
        let now = at(1_780_000_000);
        let t = parse_time("2026-09-01T00:00:00Z", now).unwrap();
        assert_eq!(rfc3339(t), "2026-09-01T00:00:00Z");
        let t = parse_time("2026-09-01T00:00:00", now).unwrap();
        assert_eq!(rfc3339(t), "2026-09-01T00:00:00Z");
        let t = parse_time("2026-09-01", now).unwrap();
        assert_eq!(rfc3339(t), "2026-09-01T00:00:00Z");
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(
            parse_time("+10m", now).unwrap().unix_timestamp(),
            1_780_000_600
        );
        assert_eq!(
            parse_time("-2h", now).unwrap().unix_timestamp(),
            1_780_000_000 - 7200
        );
        assert_eq!(
            parse_time("+3 days", now).unwrap().unix_timestamp(),
            1_780_000_000 + 3 * 86_400
        );
    }

    #[test]
    fn rejects_garbage_with_the_value_in_the_message() {
        let err = parse_time("yesterday-ish", at(0)).unwrap_err();
        assert_eq!(err.value, "yesterday-ish");
        assert!(
            err.to_string().contains("\"yesterday-ish\" is not a time"),
            "{err}"
        );
        assert!(parse_time("+10 parsecs", at(0)).is_err());
    }

    #[test]
    fn spans_read_like_people_talk() {
        assert_eq!(span(0), "0 s");
        assert_eq!(span(45), "45 s");
        assert_eq!(span(120), "2 min");
        assert_eq!(span(150), "2 min 30 s");
        assert_eq!(span(3 * 3600 + 5 * 60 + 7), "3 h 5 min");
        assert_eq!(span(86_400 + 4 * 3600), "1 day 4 h");
        assert_eq!(span(29 * 86_400 + 3600), "29 days");
    }

    #[test]
    fn unix_time_round_trips() {
        let t = at(1_780_000_000);
        assert_eq!(from_unix_time(unix_time(t)), t);
        assert_eq!(unix_time(at(-5)).as_secs(), 0);
    }
}
