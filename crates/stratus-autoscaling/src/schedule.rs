//! Schedule expressions of `PutScheduledAction`
//! (<https://docs.aws.amazon.com/autoscaling/application/userguide/scheduled-scaling-using-cron-expressions.html>):
//!
//! * `at(yyyy-mm-ddThh:mm:ss)`: once, at that wall-clock time in the
//!   action's `Timezone` (UTC when none);
//! * `rate(value unit)`: every `value` minutes, hours or days (`minute`,
//!   `minutes`, `hour`, `hours`, `day`, `days`), counted from the action's
//!   `StartTime`, else from its creation;
//! * `cron(minutes hours day-of-month month day-of-week year)`: AWS's
//!   six-field cron. Day-of-week runs 1-7 from Sunday (`SUN`-`SAT`); one of
//!   day-of-month and day-of-week must be `?`; `L` (last day of the month or
//!   week, `6L` the last Friday), `W` (`15W`: the weekday nearest the 15th),
//!   `#` (`3#2`: the second Tuesday) and years 1970-2199 as AWS documents.
//!
//! Evaluation is a pure function of the expression, a time zone and an
//! instant: [`Schedule::next_after`]. Cron matching is done by the `croner`
//! crate in its Quartz mode (weekdays 1-7 from Sunday), after the syntax
//! has been checked against AWS's rules here.

use std::str::FromStr;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// A parsed schedule expression.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// `at(...)`: one wall-clock time.
    At(DateTime),
    /// `rate(...)`: a fixed period, in milliseconds.
    Rate(i64),
    /// `cron(...)`: the six-field expression as croner evaluates it.
    Cron(Box<Cron>),
}

const MINUTE_MS: i64 = 60_000;

/// Lowest and highest year AWS accepts in the year field.
const YEARS: (u32, u32) = (1970, 2199);

impl Schedule {
    /// Parses an expression; the error is a sentence for a
    /// `ValidationException`.
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let expr = expr.trim();
        let inner = |prefix: &str| {
            expr.strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('('))
                .and_then(|r| r.strip_suffix(')'))
        };
        if let Some(body) = inner("at") {
            parse_at(body).map(Schedule::At)
        } else if let Some(body) = inner("rate") {
            parse_rate(body).map(Schedule::Rate)
        } else if let Some(body) = inner("cron") {
            parse_cron(body).map(|c| Schedule::Cron(Box::new(c)))
        } else {
            Err(format!(
                "Invalid schedule expression '{expr}': it must be at(yyyy-mm-ddThh:mm:ss), rate(value unit) or cron(fields)."
            ))
        }
    }

    /// True for `at(...)`, which fires once.
    pub fn is_one_time(&self) -> bool {
        matches!(self, Schedule::At(_))
    }

    /// The first time (ms since the epoch) strictly after `after_ms` at
    /// which the schedule fires in time zone `tz`, or `None` when it never
    /// fires again. `rate(...)` fires at `anchor_ms + k * period` (k >= 0).
    pub fn next_after(&self, after_ms: i64, anchor_ms: i64, tz: &TimeZone) -> Option<i64> {
        match self {
            Schedule::At(dt) => {
                let t = dt.to_zoned(tz.clone()).ok()?.timestamp().as_millisecond();
                (t > after_ms).then_some(t)
            }
            Schedule::Rate(period) => {
                if anchor_ms > after_ms {
                    return Some(anchor_ms);
                }
                let k = (after_ms - anchor_ms) / period + 1;
                anchor_ms.checked_add(k.checked_mul(*period)?)
            }
            Schedule::Cron(cron) => {
                let start = Timestamp::from_second(after_ms.div_euclid(1000))
                    .ok()?
                    .to_zoned(tz.clone());
                let next: Zoned = cron.find_next_occurrence(&start, false).ok()?;
                let t = next.timestamp().as_millisecond();
                (t > after_ms).then_some(t)
            }
        }
    }
}

/// Resolves a `Timezone` parameter (an IANA name such as
/// `America/New_York`; `None` is UTC).
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, String> {
    match name {
        None => Ok(TimeZone::UTC),
        Some(n) => TimeZone::get(n)
            .map_err(|_| format!("Timezone '{n}' is not a valid time zone name (use an IANA name such as America/New_York).")),
    }
}

fn parse_at(body: &str) -> Result<DateTime, String> {
    let err = || {
        format!("Invalid at expression 'at({body})': the time must be written yyyy-mm-ddThh:mm:ss.")
    };
    let b = body.as_bytes();
    let shape_ok = b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(err());
    }
    DateTime::strptime("%Y-%m-%dT%H:%M:%S", body).map_err(|_| err())
}

fn parse_rate(body: &str) -> Result<i64, String> {
    let err = |why: &str| format!("Invalid rate expression 'rate({body})': {why}");
    let parts: Vec<&str> = body.split(' ').collect();
    let [value, unit] = parts[..] else {
        return Err(err(
            "it must be rate(value unit), e.g. rate(5 minutes) or rate(1 hour).",
        ));
    };
    if value.is_empty() || !value.chars().all(|c| c.is_ascii_digit()) {
        return Err(err("the value must be a positive whole number."));
    }
    let n: i64 = value.parse().map_err(|_| err("the value is too large."))?;
    if n < 1 {
        return Err(err("the value must be a positive whole number."));
    }
    let unit_ms = match unit {
        "minute" | "minutes" => MINUTE_MS,
        "hour" | "hours" => 60 * MINUTE_MS,
        "day" | "days" => 24 * 60 * MINUTE_MS,
        _ => return Err(err("the unit must be minute(s), hour(s) or day(s).")),
    };
    n.checked_mul(unit_ms)
        .filter(|ms| *ms <= 100 * 365 * 24 * 60 * MINUTE_MS)
        .ok_or_else(|| err("the value is too large."))
}

const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// Replaces three-letter names (case-insensitive) by their numbers:
/// `names[i]` is `i + 1`.
fn replace_names(field: &str, names: &[&str]) -> String {
    let mut out = field.to_ascii_uppercase();
    for (i, n) in names.iter().enumerate() {
        out = out.replace(n, &(i + 1).to_string());
    }
    out
}

/// The numbers written in a field (`1-5/2,7#3` gives 1, 5, 2, 7, 3).
fn numbers(field: &str) -> Vec<&str> {
    field
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect()
}

fn parse_cron(body: &str) -> Result<Cron, String> {
    let err = |why: String| format!("Invalid cron expression 'cron({body})': {why}");
    let fields: Vec<&str> = body.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(err(format!(
            "it must have 6 fields (minutes hours day-of-month month day-of-week year), found {}.",
            fields.len()
        )));
    }
    let (dom, dow) = (fields[2], fields[4]);
    if (dom == "?") == (dow == "?") {
        return Err(err(
            "one of day-of-month and day-of-week must be '?' and the other must not.".to_string(),
        ));
    }
    let month = replace_names(fields[3], &MONTHS);
    let mut dow = replace_names(dow, &DAYS);
    // `L` alone in day-of-week is the last day of the week: Saturday.
    if dow == "L" {
        dow = "7".to_string();
    }
    let specs: [(&str, &str, &str, (u32, u32)); 6] = [
        ("minutes", fields[0], "0123456789,-*/", (0, 59)),
        ("hours", fields[1], "0123456789,-*/", (0, 23)),
        ("day-of-month", dom, "0123456789,-*/?LW", (1, 31)),
        ("month", &month, "0123456789,-*/", (1, 12)),
        ("day-of-week", &dow, "0123456789,-*?L#", (1, 7)),
        ("year", fields[5], "0123456789,-*/", YEARS),
    ];
    for (name, value, allowed, (lo, hi)) in specs {
        if let Some(c) = value.chars().find(|c| !allowed.contains(*c)) {
            return Err(err(format!("'{c}' is not allowed in the {name} field.")));
        }
        if value.contains('?') && value != "?" {
            return Err(err(format!("'?' must stand alone in the {name} field.")));
        }
        for n in numbers(value) {
            let in_range = n.parse::<u32>().is_ok_and(|v| (lo..=hi).contains(&v));
            // After '/' comes a step and after '#' an occurrence (1-5).
            let is_step = value.contains(&format!("/{n}"));
            let is_nth = value.contains(&format!("#{n}"));
            if is_nth {
                if !n.parse::<u32>().is_ok_and(|v| (1..=5).contains(&v)) {
                    return Err(err(format!("'#{n}' in the {name} field must be #1 to #5.")));
                }
            } else if !is_step && !in_range {
                return Err(err(format!(
                    "{n} is outside {lo}-{hi} in the {name} field."
                )));
            }
        }
    }
    // croner: seconds first (always 0: AWS schedules have minute resolution).
    let pattern = format!(
        "0 {} {} {} {} {} {}",
        fields[0], fields[1], dom, month, dow, fields[5]
    );
    let parser = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Required)
        .alternative_weekdays(true)
        .sloppy_ranges(true)
        .build();
    parser.parse(&pattern).map_err(|e| err(e.to_string()))
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Schedule::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ms since the epoch of a UTC wall-clock time.
    fn utc(s: &str) -> i64 {
        let dt: DateTime = s.parse().unwrap();
        dt.to_zoned(TimeZone::UTC)
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    fn iso(ms: i64) -> String {
        Timestamp::from_millisecond(ms)
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string()
    }

    /// The next `n` firing times after `from` (UTC).
    fn next_n(expr: &str, from: &str, n: usize) -> Vec<String> {
        let s = Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let mut t = utc(from);
        let mut out = Vec::new();
        for _ in 0..n {
            match s.next_after(t, 0, &TimeZone::UTC) {
                Some(next) => {
                    out.push(iso(next));
                    t = next;
                }
                None => break,
            }
        }
        out
    }

    #[test]
    fn cron_daily_with_question_mark() {
        assert_eq!(
            next_n("cron(0 8 * * ? *)", "2024-03-01T07:59:00", 2),
            ["2024-03-01T08:00:00", "2024-03-02T08:00:00"]
        );
        // Exactly at a firing time: the next one is strictly after it.
        assert_eq!(
            next_n("cron(0 8 * * ? *)", "2024-03-01T08:00:00", 1),
            ["2024-03-02T08:00:00"]
        );
        // The seed's night scale-down.
        assert_eq!(
            next_n("cron(0 22 * * ? *)", "2024-03-01T22:30:00", 1),
            ["2024-03-02T22:00:00"]
        );
    }

    #[test]
    fn cron_weekdays_are_one_to_seven_from_sunday() {
        // 2024-03-02 is a Saturday.
        assert_eq!(
            next_n("cron(0 8 ? * MON-FRI *)", "2024-03-02T00:00:00", 2),
            ["2024-03-04T08:00:00", "2024-03-05T08:00:00"]
        );
        // 1 is Sunday, 7 Saturday.
        assert_eq!(
            next_n("cron(30 6 ? * 1 *)", "2024-03-01T00:00:00", 1),
            ["2024-03-03T06:30:00"]
        );
        assert_eq!(
            next_n("cron(30 6 ? * 7 *)", "2024-03-01T00:00:00", 1),
            ["2024-03-02T06:30:00"]
        );
    }

    #[test]
    fn cron_last_day_and_last_weekday() {
        // L in day-of-month: the last day (2024 is a leap year).
        assert_eq!(
            next_n("cron(0 12 L * ? *)", "2024-02-01T00:00:00", 2),
            ["2024-02-29T12:00:00", "2024-03-31T12:00:00"]
        );
        // 6L in day-of-week: the last Friday of the month.
        assert_eq!(
            next_n("cron(0 12 ? * 6L *)", "2024-03-01T00:00:00", 2),
            ["2024-03-29T12:00:00", "2024-04-26T12:00:00"]
        );
        // L alone in day-of-week: the last day of the week, Saturday.
        assert_eq!(
            next_n("cron(0 12 ? * L *)", "2024-03-04T00:00:00", 1),
            ["2024-03-09T12:00:00"]
        );
    }

    #[test]
    fn cron_nearest_weekday() {
        // 2024-06-15 is a Saturday: 15W is Friday the 14th.
        assert_eq!(
            next_n("cron(0 9 15W * ? *)", "2024-06-01T00:00:00", 1),
            ["2024-06-14T09:00:00"]
        );
        // 2024-09-15 is a Sunday: Monday the 16th.
        assert_eq!(
            next_n("cron(0 9 15W * ? *)", "2024-09-01T00:00:00", 1),
            ["2024-09-16T09:00:00"]
        );
        // 2024-05-15 is a Wednesday: that day.
        assert_eq!(
            next_n("cron(0 9 15W * ? *)", "2024-05-01T00:00:00", 1),
            ["2024-05-15T09:00:00"]
        );
    }

    #[test]
    fn cron_nth_weekday() {
        // 2#1: the first Monday. April 2024 starts on a Monday.
        assert_eq!(
            next_n("cron(0 10 ? * 2#1 *)", "2024-03-05T00:00:00", 2),
            ["2024-04-01T10:00:00", "2024-05-06T10:00:00"]
        );
        // 3#2: the second Tuesday (AWS's own example).
        assert_eq!(
            next_n("cron(0 10 ? * 3#2 *)", "2024-03-01T00:00:00", 1),
            ["2024-03-12T10:00:00"]
        );
    }

    #[test]
    fn cron_year_field_and_steps() {
        assert_eq!(
            next_n("cron(0 0 1 1 ? 2030)", "2024-03-01T00:00:00", 2),
            ["2030-01-01T00:00:00"]
        );
        assert_eq!(
            next_n("cron(0 0 1 JAN ? 2025-2026)", "2024-03-01T00:00:00", 3),
            ["2025-01-01T00:00:00", "2026-01-01T00:00:00"]
        );
        // A year that is over: never again.
        assert!(next_n("cron(0 0 1 1 ? 2020)", "2024-03-01T00:00:00", 1).is_empty());
        assert_eq!(
            next_n("cron(0/15 * * * ? *)", "2024-03-01T10:07:00", 3),
            [
                "2024-03-01T10:15:00",
                "2024-03-01T10:30:00",
                "2024-03-01T10:45:00"
            ]
        );
        assert_eq!(
            next_n("cron(5,35 14 * 2 ? *)", "2024-03-01T00:00:00", 2),
            ["2025-02-01T14:05:00", "2025-02-01T14:35:00"]
        );
    }

    #[test]
    fn cron_in_a_time_zone() {
        let s = Schedule::parse("cron(0 8 * * ? *)").unwrap();
        let ny = time_zone(Some("America/New_York")).unwrap();
        // 08:00 EST is 13:00 UTC; after the DST change (2024-03-10) 12:00 UTC.
        let t = s.next_after(utc("2024-03-01T00:00:00"), 0, &ny).unwrap();
        assert_eq!(iso(t), "2024-03-01T13:00:00");
        let t = s.next_after(utc("2024-03-11T00:00:00"), 0, &ny).unwrap();
        assert_eq!(iso(t), "2024-03-11T12:00:00");
        assert!(time_zone(Some("Mars/Olympus_Mons")).is_err());
    }

    #[test]
    fn cron_errors() {
        for bad in [
            "cron(0 8 * * *)",      // 5 fields
            "cron(0 8 * * ? * *)",  // 7 fields
            "cron(0 8 * * 2 *)",    // neither is ?
            "cron(0 8 ? * ? *)",    // both are ?
            "cron(? 8 * * ? *)",    // ? in minutes
            "cron(60 8 * * ? *)",   // minute out of range
            "cron(0 24 * * ? *)",   // hour out of range
            "cron(0 8 32 * ? *)",   // day out of range
            "cron(0 8 * 13 ? *)",   // month out of range
            "cron(0 8 ? * 0 *)",    // weekdays are 1-7
            "cron(0 8 ? * 8 *)",    // weekdays are 1-7
            "cron(0 8 ? * 2#6 *)",  // #1-#5
            "cron(0 8 * * ? 1969)", // years 1970-2199
            "cron(0 8 * * ? 2200)", // years 1970-2199
            "cron(0 8 * * ? x)",    // letters
            "cron(0 8 1W ? * *)",   // wrong order: W in month
            "cron(0 8 * * ?)",      // 5 fields
            "cron()",
            "cron(0 8 * * ? *",
            "crontab(0 8 * * ? *)",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn rate_expressions() {
        let s = Schedule::parse("rate(5 minutes)").unwrap();
        let anchor = utc("2024-03-01T10:00:00");
        let tz = TimeZone::UTC;
        // Before the anchor: the anchor itself.
        assert_eq!(s.next_after(anchor - 1, anchor, &tz), Some(anchor));
        assert_eq!(s.next_after(anchor, anchor, &tz), Some(anchor + 300_000));
        assert_eq!(
            s.next_after(anchor + 301_000, anchor, &tz),
            Some(anchor + 600_000)
        );
        assert!(matches!(
            Schedule::parse("rate(1 minute)"),
            Ok(Schedule::Rate(60_000))
        ));
        assert!(matches!(
            Schedule::parse("rate(2 hours)"),
            Ok(Schedule::Rate(7_200_000))
        ));
        assert!(matches!(
            Schedule::parse("rate(1 day)"),
            Ok(Schedule::Rate(86_400_000))
        ));
        for bad in [
            "rate(0 minutes)",
            "rate(-1 minutes)",
            "rate(5 weeks)",
            "rate(5)",
            "rate(five minutes)",
            "rate(1.5 hours)",
            "rate(5  minutes)",
            "rate(99999999999999999999 days)",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn at_expressions() {
        let s = Schedule::parse("at(2024-03-01T08:30:00)").unwrap();
        assert!(s.is_one_time());
        let tz = TimeZone::UTC;
        let t = utc("2024-03-01T08:30:00");
        assert_eq!(s.next_after(t - 1, 0, &tz), Some(t));
        assert_eq!(s.next_after(t, 0, &tz), None);
        // In a time zone: 08:30 in Tokyo is 23:30 UTC the day before.
        let tokyo = time_zone(Some("Asia/Tokyo")).unwrap();
        assert_eq!(
            s.next_after(0, 0, &tokyo).map(iso).as_deref(),
            Some("2024-02-29T23:30:00")
        );
        for bad in [
            "at(2024-03-01 08:30:00)",
            "at(2024-03-01T08:30)",
            "at(2024-02-30T08:30:00)",
            "at(2024-03-01T24:00:00)",
            "at(24-03-01T08:30:00)",
            "at()",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    proptest::proptest! {
        /// Whatever the input, parsing never panics, and a schedule that
        /// parses gives a strictly later time (or none).
        #[test]
        fn parse_never_panics(s in "(cron|rate|at)\\([ -~]{0,40}\\)", after in 0i64..4_000_000_000_000) {
            if let Ok(sched) = Schedule::parse(&s)
                && let Some(t) = sched.next_after(after, 0, &TimeZone::UTC) {
                proptest::prop_assert!(t > after);
            }
        }

        /// Fields drawn from AWS's alphabet: never a panic.
        #[test]
        fn cron_fields_never_panic(f in proptest::collection::vec("[0-9*?LW#,/-]{1,6}", 6)) {
            let expr = format!("cron({})", f.join(" "));
            if let Ok(sched) = Schedule::parse(&expr) {
                let _ = sched.next_after(1_700_000_000_000, 0, &TimeZone::UTC);
            }
        }
    }
}
