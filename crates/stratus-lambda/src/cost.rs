//! What the recorded usage would cost on AWS
//! (<https://aws.amazon.com/lambda/pricing/>): requests, on-demand duration
//! (billed duration x memory, GB-seconds, by architecture), and provisioned
//! concurrency (GB-seconds allocated, and GB-seconds executed on provisioned
//! environments), at AWS's published us-east-1 rates unless a price file
//! overrides them (`stratus cost --prices FILE`).
//!
//! Each line of a bill is rounded to the cent and the total is the sum of
//! the rounded lines, as the seed's worked example (section 2.3) and AWS's
//! bill do; the exact amounts are kept too (a laptop's usage is far below a
//! cent).
//!
//! Everything here is pure: [`Usage::from_rows`] sums the store's metric rows,
//! [`breakdown`] prices a usage, [`render`] prints it.

use serde::{Deserialize, Serialize};
use stratus_store::MetricRow;

/// Rates of one architecture, in dollars per GB-second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchPrices {
    /// On-demand duration.
    pub duration_gb_second: f64,
    /// Provisioned concurrency allocated (whether it runs or not).
    pub provisioned_concurrency_gb_second: f64,
    /// Duration of invocations that ran on provisioned environments.
    pub provisioned_duration_gb_second: f64,
}

impl ArchPrices {
    /// us-east-1, x86_64.
    pub const X86_64: ArchPrices = ArchPrices {
        duration_gb_second: 0.0000166667,
        provisioned_concurrency_gb_second: 0.0000041667,
        provisioned_duration_gb_second: 0.0000097222,
    };
    /// us-east-1, arm64.
    pub const ARM64: ArchPrices = ArchPrices {
        duration_gb_second: 0.0000133334,
        provisioned_concurrency_gb_second: 0.0000033334,
        provisioned_duration_gb_second: 0.0000077778,
    };
}

impl Default for ArchPrices {
    fn default() -> Self {
        ArchPrices::X86_64
    }
}

/// The price table. A price file is this as JSON; fields left out keep
/// their defaults, e.g. `{"requests_per_million": 0.25, "arm64":
/// {"duration_gb_second": 0.00001}}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Prices {
    /// Dollars per million requests.
    pub requests_per_million: f64,
    pub x86_64: ArchPrices,
    pub arm64: ArchPrices,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            requests_per_million: 0.20,
            x86_64: ArchPrices::X86_64,
            arm64: ArchPrices::ARM64,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ArchOverride {
    duration_gb_second: Option<f64>,
    provisioned_concurrency_gb_second: Option<f64>,
    provisioned_duration_gb_second: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct PricesOverride {
    requests_per_million: Option<f64>,
    x86_64: ArchOverride,
    arm64: ArchOverride,
}

impl Prices {
    /// The defaults with a JSON price file's values on top. Errors: not
    /// JSON, an unknown field, a negative or non-finite price.
    pub fn from_json(text: &str) -> Result<Prices, String> {
        let o: PricesOverride =
            serde_json::from_str(text).map_err(|e| format!("price file: {e}"))?;
        let mut p = Prices::default();
        let set = |dst: &mut f64, v: Option<f64>, name: &str| -> Result<(), String> {
            if let Some(v) = v {
                if !v.is_finite() || v < 0.0 {
                    return Err(format!("price file: {name} must be a price >= 0, got {v}"));
                }
                *dst = v;
            }
            Ok(())
        };
        set(
            &mut p.requests_per_million,
            o.requests_per_million,
            "requests_per_million",
        )?;
        for (dst, src, arch) in [
            (&mut p.x86_64, &o.x86_64, "x86_64"),
            (&mut p.arm64, &o.arm64, "arm64"),
        ] {
            set(
                &mut dst.duration_gb_second,
                src.duration_gb_second,
                &format!("{arch}.duration_gb_second"),
            )?;
            set(
                &mut dst.provisioned_concurrency_gb_second,
                src.provisioned_concurrency_gb_second,
                &format!("{arch}.provisioned_concurrency_gb_second"),
            )?;
            set(
                &mut dst.provisioned_duration_gb_second,
                src.provisioned_duration_gb_second,
                &format!("{arch}.provisioned_duration_gb_second"),
            )?;
        }
        Ok(p)
    }
}

/// What was used. GB-second arrays are indexed `[x86_64, arm64]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Usage {
    pub requests: u64,
    /// Billed duration x memory of on-demand invocations.
    pub gb_seconds: [f64; 2],
    /// Billed duration x memory of invocations on provisioned environments.
    pub provisioned_gb_seconds: [f64; 2],
    /// Provisioned environments x memory x time allocated.
    pub allocated_gb_seconds: [f64; 2],
}

impl Usage {
    /// Sums the `function` rows of the store's metrics (the version and
    /// alias rows count the same invocations again).
    pub fn from_rows<'a>(rows: impl IntoIterator<Item = &'a MetricRow>) -> Usage {
        let mut u = Usage::default();
        for r in rows
            .into_iter()
            .filter(|r| r.dimension == crate::metrics::DIM_FUNCTION)
        {
            u.requests += r.invocations;
            u.gb_seconds[0] += r.gb_seconds_x86_64;
            u.gb_seconds[1] += r.gb_seconds_arm64;
            u.provisioned_gb_seconds[0] += r.provisioned_gb_seconds_x86_64;
            u.provisioned_gb_seconds[1] += r.provisioned_gb_seconds_arm64;
            u.allocated_gb_seconds[0] += r.allocated_gb_seconds_x86_64;
            u.allocated_gb_seconds[1] += r.allocated_gb_seconds_arm64;
        }
        u
    }
}

/// One line of a bill.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// `Requests`, `Duration`, `Provisioned concurrency`, `Provisioned duration`.
    pub item: &'static str,
    /// `x86_64` or `arm64` (none for requests).
    pub architecture: Option<&'static str>,
    pub quantity: f64,
    /// `requests` or `GB-s`.
    pub unit: &'static str,
    /// Dollars per unit (per request for requests).
    pub rate: f64,
    /// Exact amount in dollars.
    pub amount: f64,
    /// The amount rounded to the cent.
    pub billed: f64,
}

/// A priced usage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakdown {
    pub lines: Vec<Line>,
    /// Σ exact amounts.
    pub total: f64,
    /// Σ lines rounded to the cent (what the bill says).
    pub billed_total: f64,
}

impl Breakdown {
    /// The line of an item (and architecture), if the bill has one.
    pub fn line(&self, item: &str, architecture: Option<&str>) -> Option<&Line> {
        self.lines
            .iter()
            .find(|l| l.item == item && l.architecture == architecture)
    }
}

/// Rounds dollars to the cent, halves up (the small epsilon absorbs binary
/// representation error, e.g. 3.335 stored as 3.33499999...).
pub fn round_cents(dollars: f64) -> f64 {
    ((dollars * 100.0) + 1e-7).round() / 100.0
}

/// Prices `u`. Requests always have a line; GB-second items only when used.
pub fn breakdown(u: &Usage, p: &Prices) -> Breakdown {
    let mut lines = Vec::new();
    let mut push = |item, architecture, quantity: f64, unit, rate: f64| {
        let amount = quantity * rate;
        lines.push(Line {
            item,
            architecture,
            quantity,
            unit,
            rate,
            amount,
            billed: round_cents(amount),
        });
    };
    push(
        "Requests",
        None,
        u.requests as f64,
        "requests",
        p.requests_per_million / 1_000_000.0,
    );
    for (i, arch, rates) in [(0, "x86_64", &p.x86_64), (1, "arm64", &p.arm64)] {
        if u.gb_seconds[i] > 0.0 {
            push(
                "Duration",
                Some(arch),
                u.gb_seconds[i],
                "GB-s",
                rates.duration_gb_second,
            );
        }
        if u.provisioned_gb_seconds[i] > 0.0 {
            push(
                "Provisioned duration",
                Some(arch),
                u.provisioned_gb_seconds[i],
                "GB-s",
                rates.provisioned_duration_gb_second,
            );
        }
        if u.allocated_gb_seconds[i] > 0.0 {
            push(
                "Provisioned concurrency",
                Some(arch),
                u.allocated_gb_seconds[i],
                "GB-s",
                rates.provisioned_concurrency_gb_second,
            );
        }
    }
    let total = lines.iter().map(|l| l.amount).sum();
    let billed_total = round_cents(lines.iter().map(|l| l.billed).sum());
    Breakdown {
        lines,
        total,
        billed_total,
    }
}

/// Prints a breakdown as a table under `title`.
pub fn render(title: &str, b: &Breakdown) -> String {
    let mut s = format!("{title}\n");
    s.push_str(&format!(
        "  {:<36} {:>22} {:>20} {:>14} {:>9}\n",
        "item", "quantity", "rate", "amount", "billed"
    ));
    for l in &b.lines {
        let item = match l.architecture {
            Some(a) => format!("{} ({a})", l.item),
            None => l.item.to_string(),
        };
        let (qty, rate) = if l.unit == "requests" {
            (
                format!("{} requests", l.quantity as u64),
                format!("${:.2}/1M", l.rate * 1_000_000.0),
            )
        } else {
            (
                format!("{:.6} GB-s", l.quantity),
                format!("${:.10}/GB-s", l.rate),
            )
        };
        s.push_str(&format!(
            "  {item:<36} {qty:>22} {rate:>20} {:>14} {:>9}\n",
            format!("${:.8}", l.amount),
            format!("${:.2}", l.billed)
        ));
    }
    s.push_str(&format!(
        "  {:<36} {:>22} {:>20} {:>14} {:>9}\n",
        "Total",
        "",
        "",
        format!("${:.8}", b.total),
        format!("${:.2}", b.billed_total)
    ));
    s
}

/// Parses `--since`: an RFC 3339 time (`2026-11-29T10:00:00Z`), a date
/// (`2026-11-29`, UTC midnight), seconds since the epoch, or an age such as
/// `30m`, `12h`, `7d` (`s`, `m`, `h`, `d`, `w`). Returns ms since the epoch.
pub fn parse_since(s: &str, now_ms: i64) -> Result<i64, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "--since '{s}': expected an RFC 3339 time, a date (YYYY-MM-DD), epoch seconds or an age like 30m, 12h, 7d"
        )
    };
    if let Ok(secs) = s.parse::<i64>() {
        return Ok(secs.saturating_mul(1000));
    }
    if let Some(unit) = s.chars().last().filter(char::is_ascii_alphabetic)
        && let Ok(n) = s[..s.len() - 1].parse::<i64>()
    {
        let ms = match unit {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 7 * 86_400_000,
            _ => return Err(bad()),
        };
        return Ok(now_ms - n.saturating_mul(ms));
    }
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s, &fmt) {
        return Ok(d.midnight().assume_utc().unix_timestamp() * 1000);
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's worked example (section 2.3): 1 GB, 200 ms, 1,000,000
    /// requests a month; on demand, then with 50 provisioned environments
    /// for 30 days. Expected amounts are the seed's.
    #[test]
    fn seed_worked_example() {
        let p = Prices::default();
        // On demand: $0.20 + $3.33 = $3.53.
        let on_demand = Usage {
            requests: 1_000_000,
            gb_seconds: [1_000_000.0 * 0.2 * 1.0, 0.0],
            ..Default::default()
        };
        let b = breakdown(&on_demand, &p);
        assert_eq!(b.line("Requests", None).unwrap().billed, 0.20);
        assert_eq!(b.line("Duration", Some("x86_64")).unwrap().billed, 3.33);
        assert_eq!(b.billed_total, 3.53);
        // Provisioned: $0.20 + $1.94 + $540.00 = $542.14.
        let provisioned = Usage {
            requests: 1_000_000,
            provisioned_gb_seconds: [1_000_000.0 * 0.2 * 1.0, 0.0],
            allocated_gb_seconds: [50.0 * 30.0 * 24.0 * 3600.0 * 1.0, 0.0],
            ..Default::default()
        };
        let b = breakdown(&provisioned, &p);
        assert_eq!(b.line("Requests", None).unwrap().billed, 0.20);
        assert_eq!(
            b.line("Provisioned duration", Some("x86_64"))
                .unwrap()
                .billed,
            1.94
        );
        assert_eq!(
            b.line("Provisioned concurrency", Some("x86_64"))
                .unwrap()
                .billed,
            540.00
        );
        assert_eq!(b.billed_total, 542.14);
        assert!(b.line("Duration", Some("x86_64")).is_none());
    }

    #[test]
    fn arm_and_overrides() {
        let u = Usage {
            requests: 10,
            gb_seconds: [0.0, 2.0],
            ..Default::default()
        };
        let b = breakdown(&u, &Prices::default());
        let l = b.line("Duration", Some("arm64")).unwrap();
        assert!((l.amount - 2.0 * 0.0000133334).abs() < 1e-15);
        assert!((b.line("Requests", None).unwrap().amount - 0.000002).abs() < 1e-15);
        let p = Prices::from_json(
            r#"{"requests_per_million": 1.0, "arm64": {"duration_gb_second": 0.5}}"#,
        )
        .unwrap();
        assert_eq!(p.x86_64, ArchPrices::X86_64);
        assert_eq!(p.arm64.duration_gb_second, 0.5);
        assert_eq!(
            p.arm64.provisioned_concurrency_gb_second,
            ArchPrices::ARM64.provisioned_concurrency_gb_second
        );
        let b = breakdown(&u, &p);
        assert_eq!(b.line("Duration", Some("arm64")).unwrap().amount, 1.0);
        assert!(Prices::from_json(r#"{"request": 1}"#).is_err());
        assert!(Prices::from_json(r#"{"requests_per_million": -1}"#).is_err());
        assert!(Prices::from_json("nope").is_err());
    }

    #[test]
    fn usage_counts_function_rows_only() {
        let f = MetricRow {
            dimension: "function".into(),
            invocations: 3,
            gb_seconds_x86_64: 0.3,
            allocated_gb_seconds_arm64: 5.0,
            ..Default::default()
        };
        let v = MetricRow {
            dimension: "version".into(),
            ..f.clone()
        };
        let u = Usage::from_rows([&f, &v, &f]);
        assert_eq!(u.requests, 6);
        assert!((u.gb_seconds[0] - 0.6).abs() < 1e-12);
        assert_eq!(u.allocated_gb_seconds[1], 10.0);
    }

    #[test]
    fn since() {
        let now = 1_000_000_000_000;
        assert_eq!(parse_since("30m", now).unwrap(), now - 1_800_000);
        assert_eq!(parse_since("2d", now).unwrap(), now - 172_800_000);
        assert_eq!(parse_since("1700000000", now).unwrap(), 1_700_000_000_000);
        assert_eq!(
            parse_since("2023-11-14T22:13:20Z", now).unwrap(),
            1_700_000_000_000
        );
        assert_eq!(parse_since("1970-01-02", now).unwrap(), 86_400_000);
        assert!(parse_since("yesterday", now).is_err());
        assert!(parse_since("5y", now).is_err());
    }

    #[test]
    fn cents() {
        assert_eq!(round_cents(3.33334), 3.33);
        assert_eq!(round_cents(540.00432), 540.0);
        assert_eq!(round_cents(0.005), 0.01);
        assert_eq!(round_cents(0.0000004), 0.0);
    }
}
