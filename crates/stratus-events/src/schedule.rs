//! Scheduled rules (`ScheduleExpression`), as
//! <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html>
//! defines them:
//!
//! * `rate(value unit)`: `value` a positive whole number, `unit` `minute`
//!   when the value is 1 and `minutes` otherwise (likewise `hour(s)`,
//!   `day(s)`); the first firing is one period after the rule is created
//!   (or stratus starts);
//! * `cron(minutes hours day-of-month month day-of-week year)`: AWS's
//!   six-field cron in UTC, with `?`, `L`, `W`, `#` and years 1970-2199
//!   (evaluated by the same cron code as Application Auto Scaling's
//!   scheduled actions).
//!
//! A scheduled rule fires on the default bus with AWS's scheduled event:
//! `source` `aws.events`, `detail-type` `Scheduled Event`, `resources` the
//! rule's ARN, `detail` `{}`, `time` the scheduled time. The clock runs
//! `time_scale` times faster than real time from start-up, so tests can
//! watch `rate(1 minute)` fire every second with `--time-scale 60`.

use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use stratus_autoscaling::schedule::Schedule as Expr;

use crate::Events;
use crate::delivery::Envelope;

/// A parsed `ScheduleExpression`.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// `rate(...)`: the period in ms.
    Rate(i64),
    /// `cron(...)`.
    Cron(Box<Expr>),
}

impl Schedule {
    /// Parses a rule's `ScheduleExpression`.
    ///
    /// Errors: a sentence for a `ValidationException` (AWS starts it with
    /// `Parameter ScheduleExpression is not valid.`).
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let bad = |why: String| format!("Parameter ScheduleExpression is not valid. {why}");
        if expr.chars().count() > 256 {
            return Err(bad("It is longer than 256 characters.".into()));
        }
        if let Some(body) = expr.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
            let (value, unit) = body.split_once(' ').unwrap_or((body, ""));
            let singular = value == "1";
            let unit_ok = match unit {
                "minute" | "hour" | "day" => singular,
                "minutes" | "hours" | "days" => !singular,
                _ => false,
            };
            if !unit_ok && value.chars().all(|c| c.is_ascii_digit()) && !value.is_empty() {
                return Err(bad(format!(
                    "In rate({body}) the unit must be minute, hour or day for a value of 1, and minutes, hours or days otherwise."
                )));
            }
        } else if !expr.starts_with("cron(") {
            return Err(bad(format!(
                "'{expr}' must be rate(value unit) or cron(minutes hours day-of-month month day-of-week year)."
            )));
        }
        match Expr::parse(expr).map_err(bad)? {
            Expr::Rate(ms) => Ok(Schedule::Rate(ms)),
            Expr::Cron(c) => Ok(Schedule::Cron(Box::new(Expr::Cron(c)))),
            Expr::At(_) => Err(bad("Rules take rate() or cron() expressions.".into())),
        }
    }

    /// The first firing after `after_ms` (ms since the epoch, UTC); for a
    /// rate, `after_ms` plus the period.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match self {
            Schedule::Rate(p) => after_ms.checked_add(*p),
            Schedule::Cron(e) => e.next_after(after_ms, 0, &TimeZone::UTC),
        }
    }
}

/// The scheduler: every tick, fires the enabled scheduled rules that are
/// due on the scaled clock.
pub(crate) async fn run(me: Arc<Events>) {
    let tick = Duration::from_millis((1000.0 / me.time_scale).clamp(10.0, 1000.0) as u64);
    loop {
        tokio::time::sleep(tick).await;
        me.fire_due().await;
    }
}

impl Events {
    async fn fire_due(&self) {
        let now = self.schedule_now();
        let rules: Vec<(String, Arc<crate::CompiledRule>)> = {
            let st = self.read_state();
            st.regions
                .iter()
                .flat_map(|(region, buses)| {
                    buses
                        .get(crate::model::DEFAULT_BUS)
                        .into_iter()
                        .flat_map(|b| b.rules.values())
                        .filter(|r| r.rec.enabled() && r.schedule.is_some())
                        .map(move |r| (region.clone(), r.clone()))
                })
                .collect()
        };
        let mut due = Vec::new();
        {
            let mut next = self.next_fire.lock().unwrap_or_else(|p| p.into_inner());
            let keys: std::collections::HashSet<String> =
                rules.iter().map(|(_, r)| schedule_key(r)).collect();
            next.retain(|k, _| keys.contains(k));
            for (region, r) in &rules {
                let Some(s) = &r.schedule else { continue };
                let key = schedule_key(r);
                let Some(at) = next.get(&key).copied() else {
                    if let Some(first) = s.next_after(now) {
                        next.insert(key, first);
                    }
                    continue;
                };
                if at > now {
                    continue;
                }
                due.push((region.clone(), r.clone(), at));
                // Missed firings (a stall, a busy machine) are not replayed.
                let mut n = s.next_after(at);
                if n.is_some_and(|n| n <= now) {
                    n = s.next_after(now);
                }
                match n {
                    Some(n) => next.insert(key, n),
                    None => next.remove(&key),
                };
            }
        }
        for (region, rule, at) in due {
            let env = Envelope::new(
                &self.account,
                &region,
                "aws.events",
                "Scheduled Event",
                vec![rule.rec.arn.clone()],
                "{}".to_string(),
                Some(serde_json::json!({})),
                at,
            );
            let ds = crate::delivery::plan(&region, &rule, &env);
            if let Err(e) = self.enqueue(ds).await {
                tracing::warn!(rule = %rule.rec.arn, error = %e, "scheduled rule could not queue its deliveries");
            }
        }
    }
}

fn schedule_key(r: &crate::CompiledRule) -> String {
    format!(
        "{}|{}|{}",
        r.rec.arn,
        r.rec.schedule.as_deref().unwrap_or(""),
        r.rec.created_ms
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> i64 {
        let t =
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap();
        (t.unix_timestamp_nanos() / 1_000_000) as i64
    }

    fn next_n(expr: &str, from: &str, n: usize) -> Vec<String> {
        let s = Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let mut t = utc(from);
        let mut out = Vec::new();
        for _ in 0..n {
            let Some(next) = s.next_after(t) else { break };
            out.push(crate::model::event_time(next));
            t = next;
        }
        out
    }

    // Examples of the "Cron expressions" table of
    // https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html
    #[test]
    fn documented_cron_examples() {
        // 10:15 AM (UTC) every day.
        assert_eq!(
            next_n("cron(15 10 * * ? *)", "2024-03-01T11:00:00Z", 2),
            ["2024-03-02T10:15:00Z", "2024-03-03T10:15:00Z"]
        );
        // 6:00 PM Monday through Friday (2024-03-01 is a Friday).
        assert_eq!(
            next_n("cron(0 18 ? * MON-FRI *)", "2024-03-01T19:00:00Z", 2),
            ["2024-03-04T18:00:00Z", "2024-03-05T18:00:00Z"]
        );
        // 8:00 AM on the first day of the month.
        assert_eq!(
            next_n("cron(0 8 1 * ? *)", "2024-03-01T09:00:00Z", 1),
            ["2024-04-01T08:00:00Z"]
        );
        // Every 10 min on weekdays.
        assert_eq!(
            next_n("cron(0/10 * ? * MON-FRI *)", "2024-03-01T23:55:00Z", 1),
            ["2024-03-04T00:00:00Z"]
        );
        // Every 5 minutes between 8:00 AM and 5:55 PM weekdays.
        assert_eq!(
            next_n("cron(0/5 8-17 ? * MON-FRI *)", "2024-03-04T17:56:00Z", 1),
            ["2024-03-05T08:00:00Z"]
        );
        // 9:00 AM on the first Monday of each month.
        assert_eq!(
            next_n("cron(0 9 ? * 2#1 *)", "2024-03-01T00:00:00Z", 2),
            ["2024-03-04T09:00:00Z", "2024-04-01T09:00:00Z"]
        );
        // L: the last day of the month; W: the nearest weekday.
        assert_eq!(
            next_n("cron(0 12 L * ? *)", "2024-02-01T00:00:00Z", 1),
            ["2024-02-29T12:00:00Z"]
        );
        assert_eq!(
            next_n("cron(0 9 15W * ? *)", "2024-06-01T00:00:00Z", 1),
            ["2024-06-14T09:00:00Z"]
        );
        // The year field.
        assert_eq!(
            next_n("cron(0 0 1 1 ? 2030)", "2024-03-01T00:00:00Z", 2),
            ["2030-01-01T00:00:00Z"]
        );
    }

    #[test]
    fn rates() {
        assert!(matches!(
            Schedule::parse("rate(1 minute)"),
            Ok(Schedule::Rate(60_000))
        ));
        assert!(matches!(
            Schedule::parse("rate(5 minutes)"),
            Ok(Schedule::Rate(300_000))
        ));
        assert!(matches!(
            Schedule::parse("rate(1 day)"),
            Ok(Schedule::Rate(86_400_000))
        ));
        assert_eq!(
            next_n("rate(2 hours)", "2024-03-01T00:00:00Z", 2),
            ["2024-03-01T02:00:00Z", "2024-03-01T04:00:00Z"]
        );
    }

    #[test]
    fn invalid_expressions() {
        for bad in [
            "rate(1 minutes)",
            "rate(5 minute)",
            "rate(0 minutes)",
            "rate(5 weeks)",
            "rate(5)",
            "at(2024-03-01T08:30:00)",
            "cron(0 8 * * *)",
            "cron(0 8 * * 2 *)",
            "cron(0 8 ? * ? *)",
            "cron(60 8 * * ? *)",
            "cron(0 8 ? * 8 *)",
            "cron(0 8 * * ? 2200)",
            "every day",
            "",
        ] {
            let err = Schedule::parse(bad).expect_err(bad);
            assert!(
                err.starts_with("Parameter ScheduleExpression is not valid."),
                "{bad}: {err}"
            );
        }
    }
}
