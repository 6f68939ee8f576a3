//! Spend caps: per session, per local day and per local calendar month, in OrbNET credits or in
//! tunnelbyte money (the service's `cost_currency`, kept as integer millicents). Pure, no I/O:
//! the budget, its validation, the local windows, and the decision "stop before the next
//! deduction would take the spend past a cap".
//!
//! # The margin
//! - **OrbNET** charges `consumption_rate × seconds / 60` per heartbeat and for the seconds sent
//!   with `end`. After every acknowledged heartbeat Ferry checks
//!   `before + spent + rate × (interval + ORBNET_END_SLACK_SECS) / 60 > cap`; when true it ends
//!   the session at once (`user_initiated`), so `end` carries at most the fraction carried plus
//!   the time to send it (under [`ORBNET_END_SLACK_SECS`]), never a whole further heartbeat.
//! - **tunnelbyte** accrues cost continuously; Ferry sees it every status poll. The rate is the
//!   larger of the last interval's rate and the session's average. Ferry stops (`DELETE`) when
//!   `before + cost + rate × (poll + TUNNELBYTE_LAG_SECS) > cap`.
//! - A cap warns once at [`WARN_FRACTION`] of it, and once when the stop is one heartbeat or poll
//!   away (`before + spent + 2 × next_charge > cap`).

use std::time::Duration;

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// The settings key the budget is kept under (JSON of [`Budget`]).
pub const BUDGET_KEY: &str = "budget";
/// Seconds OrbNET's `end` may carry after a stop decided right after a heartbeat (the fraction
/// of a second carried by the meter, rounding, and the request's own latency).
pub const ORBNET_END_SLACK_SECS: f64 = 2.0;
/// Seconds tunnelbyte may keep accruing after the poll Ferry decided on: the poll's age, the
/// `DELETE` round trip and the service's own lag.
pub const TUNNELBYTE_LAG_SECS: f64 = 2.0;
/// The share of a cap at which Ferry warns.
pub const WARN_FRACTION: f64 = 0.8;
/// Millicents per unit of the service's currency.
pub const MILLICENTS_PER_UNIT: u64 = 100_000;

/// A budget or cap that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapError {
    /// The value is not a positive, finite amount.
    #[error("{0}")]
    Invalid(String),
    /// The stored budget is unreadable.
    #[error("the stored budget is unreadable: {0}")]
    Corrupt(String),
}

/// The caps the user set, per service unit. `None`: no cap.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Budget {
    /// OrbNET credits per session.
    pub session_credits: Option<f64>,
    /// OrbNET credits per local day.
    pub day_credits: Option<f64>,
    /// OrbNET credits per local calendar month.
    pub month_credits: Option<f64>,
    /// tunnelbyte money per session, in millicents of the service's currency.
    pub session_millicents: Option<u64>,
    /// tunnelbyte money per local day, in millicents.
    pub day_millicents: Option<u64>,
    /// tunnelbyte money per local calendar month, in millicents.
    pub month_millicents: Option<u64>,
}

impl Budget {
    /// Checks every cap: credits positive and finite, money at least one millicent.
    pub fn validate(&self) -> Result<(), CapError> {
        for (name, v) in [
            ("session credits", self.session_credits),
            ("day credits", self.day_credits),
            ("month credits", self.month_credits),
        ] {
            if let Some(v) = v {
                check_credits(v).map_err(|_| {
                    CapError::Invalid(format!(
                        "the {name} cap must be a positive number of credits"
                    ))
                })?;
            }
        }
        for (name, v) in [
            ("session money", self.session_millicents),
            ("day money", self.day_millicents),
            ("month money", self.month_millicents),
        ] {
            if v == Some(0) {
                return Err(CapError::Invalid(format!(
                    "the {name} cap must be more than zero"
                )));
            }
        }
        Ok(())
    }

    /// Whether no cap is set.
    pub fn is_empty(&self) -> bool {
        *self == Budget::default()
    }

    /// Sets the caps `other` sets, keeping the rest.
    pub fn merge(&mut self, other: &Budget) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            session_credits,
            day_credits,
            month_credits,
            session_millicents,
            day_millicents,
            month_millicents
        );
    }

    /// Reads the stored JSON (`None`: no budget).
    pub fn from_setting(value: Option<&str>) -> Result<Budget, CapError> {
        match value {
            None => Ok(Budget::default()),
            Some(v) => serde_json::from_str(v).map_err(|e| CapError::Corrupt(e.to_string())),
        }
    }

    /// The JSON to store.
    pub fn to_setting(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// Checks a credits amount (positive, finite).
pub fn check_credits(v: f64) -> Result<f64, CapError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(CapError::Invalid(format!(
            "{v} is not a positive number of credits"
        )))
    }
}

/// Parses an amount of the service's currency ("0.5", "12", "0.00125") to millicents (at most
/// five decimals; more than zero).
pub fn parse_money(s: &str) -> Result<u64, CapError> {
    let bad = || {
        CapError::Invalid(format!(
            "{s:?} is not an amount in the service's currency (e.g. 2.50, at most 5 decimals)"
        ))
    };
    let t = s.trim();
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if whole.is_empty() && frac.is_empty()
        || frac.len() > 5
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let w: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let f: u64 = format!("{frac:0<5}").parse().map_err(|_| bad())?;
    let mc = w
        .checked_mul(MILLICENTS_PER_UNIT)
        .and_then(|v| v.checked_add(f))
        .ok_or_else(bad)?;
    if mc == 0 {
        return Err(CapError::Invalid(
            "a money cap must be more than zero".into(),
        ));
    }
    Ok(mc)
}

/// Formats millicents as an amount (up to five decimals, trailing zeros trimmed to two) with
/// the currency code, or "(service currency)" when it is not known yet.
pub fn format_money(millicents: u64, currency: Option<&str>) -> String {
    let whole = millicents / MILLICENTS_PER_UNIT;
    let frac = format!("{:05}", millicents % MILLICENTS_PER_UNIT);
    let trimmed = frac.trim_end_matches('0');
    let frac = if trimmed.len() < 2 {
        &frac[..2]
    } else {
        trimmed
    };
    match currency {
        Some(c) => format!("{whole}.{frac} {}", c.to_uppercase()),
        None => format!("{whole}.{frac} (service currency)"),
    }
}

/// Which window a cap covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapScope {
    /// One session.
    Session,
    /// The local calendar day.
    Day,
    /// The local calendar month.
    Month,
}

impl CapScope {
    /// `session`, `day` or `month`.
    pub fn as_str(self) -> &'static str {
        match self {
            CapScope::Session => "session",
            CapScope::Day => "day",
            CapScope::Month => "month",
        }
    }
}

/// What a cap counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapUnit {
    /// OrbNET credits.
    Credits,
    /// Millicents of the service's currency (tunnelbyte).
    Millicents,
}

/// One cap applied to a session.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cap {
    /// Its window.
    pub scope: CapScope,
    /// Its unit.
    pub unit: CapUnit,
    /// The limit (credits, or millicents).
    pub limit: f64,
    /// Spent in the window before this session (from the history).
    pub before: f64,
    /// When the window resets (`None` for session caps).
    pub resets_at: Option<DateTime<Utc>>,
}

impl Cap {
    /// "day cap of 5 credits", "session cap of 0.50 EUR".
    pub fn describe(&self, currency: Option<&str>) -> String {
        let amount = match self.unit {
            CapUnit::Credits => format!("{} credits", trim_float(self.limit)),
            CapUnit::Millicents => format_money(self.limit.max(0.0).round() as u64, currency),
        };
        format!("{} cap of {amount}", self.scope.as_str())
    }

    /// "resets at 2026-12-07 00:00 (local)" or "n/a (a session cap)".
    pub fn resets_text(&self) -> String {
        match self.resets_at {
            Some(t) => format!(
                "resets at {}",
                t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M %Z")
            ),
            None => "reset n/a (a session cap)".into(),
        }
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// The local day and month around `now`, as UTC instants: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// Local midnight today.
    pub day_start: DateTime<Utc>,
    /// The next local midnight.
    pub day_end: DateTime<Utc>,
    /// The first of this month, local midnight.
    pub month_start: DateTime<Utc>,
    /// The first of next month, local midnight.
    pub month_end: DateTime<Utc>,
}

fn local_midnight<Tz: TimeZone>(tz: &Tz, d: NaiveDate) -> DateTime<Utc> {
    let naive = d.and_hms_opt(0, 0, 0).unwrap_or_default();
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        // Midnight skipped by a DST change: the first instant after it (an hour on).
        LocalResult::None => tz
            .from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()
            .map_or_else(|| naive.and_utc(), |t| t.with_timezone(&Utc)),
    }
}

/// The windows of `now` in the time zone `tz` (the user's local time in the app).
pub fn windows<Tz: TimeZone>(now: DateTime<Utc>, tz: &Tz) -> Windows {
    let today = now.with_timezone(tz).date_naive();
    let tomorrow = today.succ_opt().unwrap_or(today);
    let first = today.with_day(1).unwrap_or(today);
    let next_first = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    }
    .unwrap_or(first);
    Windows {
        day_start: local_midnight(tz, today),
        day_end: local_midnight(tz, tomorrow),
        month_start: local_midnight(tz, first),
        month_end: local_midnight(tz, next_first),
    }
}

/// Builds the caps of one session: the per-session cap (the one-off override, else the
/// budget's), the day and month caps with what the history says was spent in their windows.
pub fn caps_for(
    unit: CapUnit,
    limits: [Option<f64>; 3],
    spent_day: f64,
    spent_month: f64,
    w: &Windows,
) -> Vec<Cap> {
    let [session, day, month] = limits;
    let mut caps = Vec::new();
    let mut push = |scope, limit: Option<f64>, before, resets_at| {
        if let Some(limit) = limit {
            caps.push(Cap {
                scope,
                unit,
                limit,
                before,
                resets_at,
            });
        }
    };
    push(CapScope::Session, session, 0.0, None);
    push(CapScope::Day, day, spent_day, Some(w.day_end));
    push(CapScope::Month, month, spent_month, Some(w.month_end));
    caps
}

/// The first cap already reached before the session starts (refuse to connect).
pub fn reached(caps: &[Cap]) -> Option<&Cap> {
    caps.iter().find(|c| c.before >= c.limit)
}

/// What a cap check tells.
#[derive(Debug, Clone, PartialEq)]
pub enum CapNote {
    /// The spend passed [`WARN_FRACTION`] of a cap (once per cap and session).
    Warn {
        /// The cap.
        cap: Cap,
        /// Percent of it spent, window total.
        percent: f64,
    },
    /// The stop is one heartbeat or poll away (once per session).
    Near {
        /// The cap that will stop it.
        cap: Cap,
    },
    /// Stop now: the next deduction would pass this cap.
    Stop {
        /// The cap.
        cap: Cap,
    },
}

/// The caps of one running session and the warnings already given.
#[derive(Debug, Clone, Default)]
pub struct CapTracker {
    caps: Vec<Cap>,
    warned: Vec<bool>,
    near_sent: bool,
    stopped: bool,
}

impl CapTracker {
    /// A tracker over these caps (all of one unit).
    pub fn new(caps: Vec<Cap>) -> Self {
        let warned = vec![false; caps.len()];
        Self {
            caps,
            warned,
            near_sent: false,
            stopped: false,
        }
    }

    /// Whether there is no cap at all.
    pub fn is_empty(&self) -> bool {
        self.caps.is_empty()
    }

    /// The caps.
    pub fn caps(&self) -> &[Cap] {
        &self.caps
    }

    /// The tightest cap with less than `min_charge` left (the least a started session costs):
    /// starting would pass it.
    pub fn too_tight(&self, min_charge: f64) -> Option<&Cap> {
        self.caps
            .iter()
            .filter(|c| c.limit - c.before < min_charge)
            .min_by(|a, b| (a.limit - a.before).total_cmp(&(b.limit - b.before)))
    }

    /// Checks after new figures: `spent` is this session's spend so far, `next_charge` the
    /// most the service can charge before the next check can act (see the module docs). A
    /// `Stop` is given once; after it nothing more.
    pub fn check(&mut self, spent: f64, next_charge: f64) -> Vec<CapNote> {
        if self.stopped || self.caps.is_empty() {
            return Vec::new();
        }
        let spent = spent.max(0.0);
        let next_charge = next_charge.max(0.0);
        let mut notes = Vec::new();
        for (cap, warned) in self.caps.iter().zip(self.warned.iter_mut()) {
            let total = cap.before + spent;
            if !*warned && total >= WARN_FRACTION * cap.limit {
                *warned = true;
                notes.push(CapNote::Warn {
                    cap: cap.clone(),
                    percent: 100.0 * total / cap.limit,
                });
            }
        }
        // The tightest cap decides.
        let tightest = self.caps.iter().min_by(|a, b| {
            let ha = a.limit - a.before;
            let hb = b.limit - b.before;
            ha.total_cmp(&hb)
        });
        if let Some(cap) = tightest {
            let total = cap.before + spent;
            if total + next_charge > cap.limit {
                self.stopped = true;
                notes.push(CapNote::Stop { cap: cap.clone() });
            } else if !self.near_sent && total + 2.0 * next_charge > cap.limit {
                self.near_sent = true;
                notes.push(CapNote::Near { cap: cap.clone() });
            }
        }
        notes
    }
}

/// OrbNET: the most the next heartbeat plus a following `end` can charge, in credits.
pub fn orbnet_next_charge(rate_per_minute: f64, interval: Duration) -> f64 {
    rate_per_minute.max(0.0) * (interval.as_secs_f64() + ORBNET_END_SLACK_SECS) / 60.0
}

/// tunnelbyte: the cost rate in millicents per second: the larger of the rate since the last
/// sample (`prev`: seconds since connected and cost then) and the session's average.
pub fn tunnelbyte_rate(prev: Option<(f64, u64)>, secs: f64, cost: u64) -> f64 {
    let avg = if secs > 0.0 { cost as f64 / secs } else { 0.0 };
    let last = match prev {
        Some((ps, pc)) if secs > ps => cost.saturating_sub(pc) as f64 / (secs - ps),
        _ => 0.0,
    };
    avg.max(last)
}

/// tunnelbyte: the most the service can add before the stop after the next poll lands.
pub fn tunnelbyte_next_charge(rate_per_sec: f64, poll: Duration) -> f64 {
    rate_per_sec.max(0.0) * (poll.as_secs_f64() + TUNNELBYTE_LAG_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn w() -> Windows {
        windows(Utc::now(), &Utc)
    }

    #[test]
    fn money_parses_to_millicents_and_back() {
        assert_eq!(parse_money("0.5").unwrap(), 50_000);
        assert_eq!(parse_money("12").unwrap(), 1_200_000);
        assert_eq!(parse_money("0.00125").unwrap(), 125);
        assert_eq!(parse_money(".01").unwrap(), 1000);
        for bad in ["", "0", "0.000001", "-1", "1,5", "abc", "1.2.3", "."] {
            assert!(parse_money(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format_money(50_000, Some("eur")), "0.50 EUR");
        assert_eq!(format_money(125, Some("usd")), "0.00125 USD");
        assert_eq!(format_money(1_200_000, None), "12.00 (service currency)");
    }

    #[test]
    fn budget_validates_merges_and_round_trips() {
        let mut b = Budget {
            day_credits: Some(5.0),
            ..Budget::default()
        };
        assert!(b.validate().is_ok());
        b.merge(&Budget {
            month_millicents: Some(100),
            ..Budget::default()
        });
        assert_eq!(b.day_credits, Some(5.0));
        assert_eq!(b.month_millicents, Some(100));
        let back = Budget::from_setting(Some(&b.to_setting())).unwrap();
        assert_eq!(back, b);
        assert!(Budget::from_setting(None).unwrap().is_empty());
        assert!(Budget::from_setting(Some("nope")).is_err());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let b = Budget {
                session_credits: Some(bad),
                ..Budget::default()
            };
            assert!(b.validate().is_err(), "{bad}");
        }
        let b = Budget {
            day_millicents: Some(0),
            ..Budget::default()
        };
        assert!(b.validate().is_err());
    }

    #[test]
    fn local_windows_follow_the_time_zone() {
        // 2026-12-31 23:30 UTC is already 2027-01-01 00:30 in UTC+1.
        let now = Utc.with_ymd_and_hms(2026, 12, 31, 23, 30, 0).unwrap();
        let plus1 = FixedOffset::east_opt(3600).unwrap();
        let w = windows(now, &plus1);
        assert_eq!(
            w.day_start,
            Utc.with_ymd_and_hms(2026, 12, 31, 23, 0, 0).unwrap()
        );
        assert_eq!(
            w.day_end,
            Utc.with_ymd_and_hms(2027, 1, 1, 23, 0, 0).unwrap()
        );
        assert_eq!(w.month_start, w.day_start);
        assert_eq!(
            w.month_end,
            Utc.with_ymd_and_hms(2027, 1, 31, 23, 0, 0).unwrap()
        );
        let w = windows(now, &Utc);
        assert_eq!(
            w.month_end,
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            w.month_start,
            Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn caps_are_built_with_history_and_reached_is_refused() {
        let w = w();
        let caps = caps_for(CapUnit::Credits, [Some(1.0), Some(5.0), None], 5.0, 7.0, &w);
        assert_eq!(caps.len(), 2);
        assert_eq!(caps[0].resets_at, None);
        assert_eq!(caps[1].resets_at, Some(w.day_end));
        let r = reached(&caps).unwrap();
        assert_eq!(r.scope, CapScope::Day);
        assert_eq!(r.describe(None), "day cap of 5 credits");
        assert!(r.resets_text().starts_with("resets at "));
        assert!(caps[0].resets_text().contains("n/a"));
        let under = caps_for(CapUnit::Credits, [None, Some(5.0), None], 4.99, 0.0, &w);
        assert!(reached(&under).is_none());
    }

    #[test]
    fn orbnet_stops_before_the_next_heartbeat_would_pass_the_cap() {
        // 1.5 credits/min, 60 s heartbeats: 1.5 per heartbeat, 0.05 for the end slack.
        let charge = orbnet_next_charge(1.5, Duration::from_secs(60));
        assert!((charge - 1.55).abs() < 1e-9);
        let caps = caps_for(CapUnit::Credits, [Some(5.0), None, None], 0.0, 0.0, &w());
        let mut t = CapTracker::new(caps);
        assert!(t
            .too_tight(orbnet_next_charge(1.5, Duration::ZERO))
            .is_none());
        let tight = CapTracker::new(caps_for(
            CapUnit::Credits,
            [None, Some(5.0), None],
            4.99,
            0.0,
            &w(),
        ));
        let cap = tight
            .too_tight(orbnet_next_charge(1.5, Duration::ZERO))
            .unwrap();
        assert_eq!(
            cap.scope,
            CapScope::Day,
            "0.01 left < 0.05 for the end's margin"
        );
        assert!(t.check(1.5, charge).is_empty());
        // 3.0 + 1.55 = 4.55 <= 5 but 3.0 + 3.1 > 5: one heartbeat away.
        let n = t.check(3.0, charge);
        assert!(matches!(&n[..], [CapNote::Near { .. }]), "{n:?}");
        // 4.5: 80 % warning (90 %), and 4.5 + 1.55 > 5: stop now.
        let n = t.check(4.5, charge);
        assert!(matches!(&n[0], CapNote::Warn { percent, .. } if (*percent - 90.0).abs() < 1e-9));
        assert!(matches!(&n[1], CapNote::Stop { cap } if cap.scope == CapScope::Session));
        // Once stopped, nothing more; what the service charged stays <= the cap.
        assert!(t.check(4.6, charge).is_empty());
        let end_charge = orbnet_next_charge(1.5, Duration::ZERO);
        assert!(4.5 + end_charge <= 5.0, "the end after the stop fits");
    }

    #[test]
    fn warnings_fire_once_and_the_tightest_cap_decides() {
        let caps = caps_for(
            CapUnit::Credits,
            [Some(10.0), Some(4.0), Some(100.0)],
            2.0,
            50.0,
            &w(),
        );
        let mut t = CapTracker::new(caps);
        // Day: 2 + 1.3 = 3.3 >= 3.2 (80 % of 4): warns once; 3.3 + 0.5 <= 4, 3.3 + 1.0 > 4: near.
        let n = t.check(1.3, 0.5);
        assert_eq!(n.len(), 2, "{n:?}");
        assert!(matches!(&n[0], CapNote::Warn { cap, .. } if cap.scope == CapScope::Day));
        assert!(matches!(&n[1], CapNote::Near { cap } if cap.scope == CapScope::Day));
        assert!(t.check(1.4, 0.5).is_empty(), "no repeats");
        let n = t.check(1.6, 0.5);
        assert!(matches!(&n[..], [CapNote::Stop { cap }] if cap.scope == CapScope::Day));
    }

    #[test]
    fn tunnelbyte_rate_and_margin() {
        // 1000 millicents/min = 16.67/s; first sample: the average.
        let r = tunnelbyte_rate(None, 60.0, 1000);
        assert!((r - 1000.0 / 60.0).abs() < 1e-9);
        // A faster last interval wins over the average.
        let r = tunnelbyte_rate(Some((60.0, 1000)), 70.0, 1500);
        assert!((r - 50.0).abs() < 1e-9);
        let charge = tunnelbyte_next_charge(50.0, Duration::from_secs(10));
        assert!((charge - 600.0).abs() < 1e-9);
        let caps = caps_for(
            CapUnit::Millicents,
            [Some(2000.0), None, None],
            0.0,
            0.0,
            &w(),
        );
        let mut t = CapTracker::new(caps);
        let n = t.check(1500.0, charge);
        assert!(
            n.iter().any(|n| matches!(n, CapNote::Stop { .. })),
            "1500 + 600 > 2000: {n:?}"
        );
    }
}
