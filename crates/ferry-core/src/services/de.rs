//! Lenient serde helpers for vendor JSON: numbers that arrive as floats or strings, a string
//! or a list, null for defaults.

use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum Num {
    U(u64),
    I(i64),
    F(f64),
    S(String),
}

fn num_to_f64(n: Num) -> Option<f64> {
    match n {
        Num::U(u) => Some(u as f64),
        Num::I(i) => Some(i as f64),
        Num::F(f) => Some(f),
        Num::S(s) => s.trim().parse::<f64>().ok(),
    }
}

/// An `i64` id that may arrive as a number or a numeric string.
pub fn id<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match Num::deserialize(d)? {
        Num::U(u) => i64::try_from(u).map_err(serde::de::Error::custom),
        Num::I(i) => Ok(i),
        Num::F(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        Num::S(s) => s.trim().parse().map_err(serde::de::Error::custom),
        Num::F(f) => Err(serde::de::Error::custom(format!("{f} is not an id"))),
    }
}

/// An optional `i64` id (null or absent → `None`).
pub fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct W(#[serde(deserialize_with = "id")] i64);
    Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
}

/// A non-negative count (bytes, seconds, millicents): accepts integers, whole floats and numeric
/// strings; null → 0. Negative or fractional values are rejected (never silently clamped).
pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(opt_count(d)?.unwrap_or(0))
}

/// An optional non-negative count; null or absent → `None`.
pub fn opt_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let Some(n) = Option::<Num>::deserialize(d)? else {
        return Ok(None);
    };
    match n {
        Num::U(u) => Ok(Some(u)),
        Num::I(i) => u64::try_from(i)
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("negative count {i}"))),
        other => {
            let f = num_to_f64(other)
                .ok_or_else(|| serde::de::Error::custom("count is not a number"))?;
            if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 {
                Ok(Some(f as u64))
            } else {
                Err(serde::de::Error::custom(format!("{f} is not a count")))
            }
        }
    }
}

/// Credits as `f64`, from integers, floats or numeric strings; null → 0.
pub fn credits<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(opt_credits(d)?.unwrap_or(0.0))
}

/// Optional credits as `f64`.
pub fn opt_credits<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Option::<Num>::deserialize(d)? {
        None => Ok(None),
        Some(n) => {
            let f = num_to_f64(n).ok_or_else(|| serde::de::Error::custom("not a number"))?;
            if f.is_finite() {
                Ok(Some(f))
            } else {
                Err(serde::de::Error::custom("credits are not finite"))
            }
        }
    }
}

/// A string, or null → empty.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// A bool, or null → false.
pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

/// A list of strings that may arrive as one string (comma-separated) or a list; null → empty.
pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::Many(v)) => v,
        Some(OneOrMany::One(s)) => s
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct T {
        #[serde(default, deserialize_with = "count")]
        c: u64,
        #[serde(default, deserialize_with = "credits")]
        f: f64,
        #[serde(default, deserialize_with = "strings")]
        s: Vec<String>,
    }

    #[test]
    fn lenient_numbers() {
        let t: T =
            serde_json::from_str(r#"{"c": 12.0, "f": 4910, "s": "1.1.1.1, 1.0.0.1"}"#).unwrap();
        assert_eq!((t.c, t.f, t.s.len()), (12, 4910.0, 2));
        let t: T = serde_json::from_str(r#"{"c": "7", "f": "1.5", "s": ["a"]}"#).unwrap();
        assert_eq!((t.c, t.f, t.s), (7, 1.5, vec!["a".to_string()]));
        let t: T = serde_json::from_str(r#"{"c": null, "f": null, "s": null}"#).unwrap();
        assert_eq!((t.c, t.f, t.s.len()), (0, 0.0, 0));
        assert!(serde_json::from_str::<T>(r#"{"c": -1}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"c": 1.5}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"c": "many"}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"f": true}"#).is_err());
    }
}
