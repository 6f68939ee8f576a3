//! Text formatting shared by the tray and notifications (the UI has the same rules in ui/src/format.ts).

/// Money from millicents in the service's currency (`eur` → `€0.042`, `usd` → `$1.20`, other
/// codes written out, `1.20 CHF`; unknown: the bare amount). Never assumes the euro.
pub fn money(millicents: u64, currency: Option<&str>) -> String {
    let amount = euros(millicents);
    let bare = amount.trim_start_matches('€');
    match currency.map(str::to_ascii_lowercase).as_deref() {
        Some("eur") => amount,
        Some("usd") => format!("${bare}"),
        Some("gbp") => format!("£{bare}"),
        Some(code) if !code.is_empty() => format!("{bare} {}", code.to_ascii_uppercase()),
        _ => bare.to_string(),
    }
}

/// Money from millicents of a euro: 3 decimals below one euro, else 2 (`€0.042`, `€12.35`).
pub fn euros(millicents: u64) -> String {
    if millicents < 100_000 {
        // thousandths of a euro, rounded half up
        let milli_euros = (millicents + 50) / 100;
        format!("€{}.{:03}", milli_euros / 1000, milli_euros % 1000)
    } else {
        let cents = (millicents + 500) / 1000;
        format!("€{}.{:02}", cents / 100, cents % 100)
    }
}

/// Credits with at most one decimal (`87.5`, `12`).
pub fn credits(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    if (rounded - rounded.trunc()).abs() < f64::EPSILON {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.1}")
    }
}

/// Bytes in binary units with one decimal above 1 KiB (`512 B`, `1.5 MiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A duration as `3 h 12 min`, `12 min`, `45 s` (the two largest units).
pub fn duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min"),
        (0, _, 0) => format!("{h} h"),
        (0, _, _) => format!("{h} h {m} min"),
        (_, 0, _) => format!("{d} d"),
        _ => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money() {
        for (mc, want) in [
            (0, "€0.000"),
            (4_200, "€0.042"),
            (4_249, "€0.042"),
            (4_250, "€0.043"),
            (99_999, "€1.000"),
            (100_000, "€1.00"),
            (1_234_567, "€12.35"),
        ] {
            assert_eq!(euros(mc), want, "{mc}");
        }
        assert_eq!(super::money(4_200, Some("eur")), "€0.042");
        assert_eq!(super::money(120_000, Some("USD")), "$1.20");
        assert_eq!(super::money(120_000, Some("chf")), "1.20 CHF");
        assert_eq!(
            super::money(120_000, None),
            "1.20",
            "never assumes the euro"
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(credits(87.46), "87.5");
        assert_eq!(credits(12.0), "12");
        assert_eq!(credits(0.04), "0");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(duration(45), "45 s");
        assert_eq!(duration(12 * 60 + 5), "12 min");
        assert_eq!(duration(3 * 3600 + 12 * 60 + 59), "3 h 12 min");
        assert_eq!(duration(7200), "2 h");
        assert_eq!(duration(86_400 * 2 + 3600 * 5), "2 d 5 h");
    }
}
