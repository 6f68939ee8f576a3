//! Lenient RFC 3339 timestamps as the vendors send them, and unix-millisecond helpers.
//!
//! Accepted: `Z` or a numeric offset, 0 to 9 fraction digits, `T`/`t`/space between date and time,
//! and (leniently, for Python's naive `isoformat()`) no offset at all, read as UTC.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer};

/// A timestamp that is not RFC 3339 in any form Ferry accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 timestamp: {input:?}")]
pub struct TimeParseError {
    /// The text that was rejected (timestamps are not secret).
    pub input: String,
}

/// Parses an RFC 3339 timestamp leniently into UTC.
pub fn parse_rfc3339(input: &str) -> Result<DateTime<Utc>, TimeParseError> {
    let s = input.trim();
    let err = || TimeParseError {
        input: input.chars().take(64).collect(),
    };
    if s.is_empty() {
        return Err(err());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    // Normalise the separator and retry with an explicit format that allows any fraction length.
    let normalised: String = s
        .char_indices()
        .map(|(i, c)| {
            if i == 10 && (c == ' ' || c == 't') {
                'T'
            } else {
                c
            }
        })
        .collect();
    if let Ok(t) = DateTime::parse_from_str(&normalised, "%Y-%m-%dT%H:%M:%S%.f%:z") {
        return Ok(t.with_timezone(&Utc));
    }
    if let Some(stripped) = normalised
        .strip_suffix('Z')
        .or_else(|| normalised.strip_suffix('z'))
    {
        if let Ok(n) = NaiveDateTime::parse_from_str(stripped, "%Y-%m-%dT%H:%M:%S%.f") {
            return Ok(Utc.from_utc_datetime(&n));
        }
    }
    // A naive timestamp (no offset): read as UTC.
    if let Ok(n) = NaiveDateTime::parse_from_str(&normalised, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(Utc.from_utc_datetime(&n));
    }
    Err(err())
}

/// Formats a UTC time as RFC 3339 with a `Z` and whole seconds.
pub fn format_rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Unix milliseconds of a UTC time.
pub fn to_unix_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The UTC time of unix milliseconds (saturating to the epoch when out of range).
pub fn from_unix_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Serde helper: a required lenient RFC 3339 field (`#[serde(with = "timefmt::lenient")]`).
pub mod lenient {
    use super::*;

    /// Deserializes a lenient RFC 3339 string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }

    /// Serializes as RFC 3339 with `Z`.
    pub fn serialize<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_rfc3339(*t))
    }
}

/// Serde helper: an optional lenient RFC 3339 field; null, absent or `""` mean `None`.
/// Use with `#[serde(default, with = "timefmt::lenient_opt")]`.
pub mod lenient_opt {
    use super::*;

    /// Deserializes an optional lenient RFC 3339 string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) if s.trim().is_empty() => Ok(None),
            Some(s) => parse_rfc3339(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }

    /// Serializes as RFC 3339 with `Z`, or null.
    pub fn serialize<S: serde::Serializer>(
        t: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_rfc3339(*t)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_vendor_forms() {
        let want = Utc.with_ymd_and_hms(2026, 3, 5, 14, 30, 0).unwrap();
        for s in [
            "2026-03-05T14:30:00Z",
            "2026-03-05T14:30:00.000Z",
            "2026-03-05T14:30:00+00:00",
            "2026-03-05T16:30:00+02:00",
            "2026-03-05T14:30:00.000000000Z",
            "2026-03-05 14:30:00Z",
            "2026-03-05t14:30:00z",
            "2026-03-05T14:30:00",
        ] {
            assert_eq!(parse_rfc3339(s).unwrap(), want, "{s}");
        }
        let frac = parse_rfc3339("2026-03-05T14:30:00.123456+00:00").unwrap();
        assert_eq!(frac.timestamp_subsec_micros(), 123_456);
        let nine = parse_rfc3339("2026-03-05T14:30:00.123456789Z").unwrap();
        assert_eq!(nine.timestamp_subsec_nanos(), 123_456_789);
        let one = parse_rfc3339("2026-03-05T14:30:00.5-01:00").unwrap();
        assert_eq!(one.timestamp_subsec_millis(), 500);
        assert_eq!(one.hour_utc(), 15);
    }

    trait HourUtc {
        fn hour_utc(&self) -> u32;
    }
    impl HourUtc for DateTime<Utc> {
        fn hour_utc(&self) -> u32 {
            use chrono::Timelike;
            self.hour()
        }
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "yesterday",
            "2026-13-05T14:30:00Z",
            "2026-03-05",
            "12:00:00Z",
        ] {
            assert!(parse_rfc3339(s).is_err(), "{s}");
        }
    }

    #[test]
    fn optional_field_treats_empty_as_none() {
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(default, with = "lenient_opt")]
            at: Option<DateTime<Utc>>,
        }
        let t: T = serde_json::from_str(r#"{"at":""}"#).unwrap();
        assert!(t.at.is_none());
        let t: T = serde_json::from_str(r#"{}"#).unwrap();
        assert!(t.at.is_none());
        let t: T = serde_json::from_str(r#"{"at":null}"#).unwrap();
        assert!(t.at.is_none());
        let t: T = serde_json::from_str(r#"{"at":"2026-02-08T10:30:00Z"}"#).unwrap();
        assert!(t.at.is_some());
        assert!(serde_json::from_str::<T>(r#"{"at":"soon"}"#).is_err());
    }

    #[test]
    fn unix_ms_round_trip() {
        let t = parse_rfc3339("2026-02-08T10:30:00.250Z").unwrap();
        assert_eq!(from_unix_ms(to_unix_ms(t)), t);
        assert_eq!(format_rfc3339(t), "2026-02-08T10:30:00Z");
    }
}
