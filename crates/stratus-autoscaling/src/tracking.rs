//! Target tracking on `ProvisionedConcurrencyUtilization`: the metric, its
//! alarms and the scaling decision, as a pure function of samples and time.
//!
//! How AWS does it: the metric is published at one-minute resolution; a
//! target tracking policy creates two CloudWatch alarms on it with the
//! `Average` statistic, `AlarmHigh` (3 datapoints of 1 minute above the
//! target: scale out) and `AlarmLow` (15 datapoints of 1 minute below it:
//! scale in), and the new capacity is `ceil(current * metric / target)`
//! within `[MinCapacity, MaxCapacity]`, subject to `ScaleOutCooldown` /
//! `ScaleInCooldown`.
//!
//! stratus does the same, with these particulars (see docs/autoscaling.md):
//!
//! * a sample is `busy / allocated` provisioned environments of the
//!   version or alias, taken at every engine tick (about 10 per period);
//!   a datapoint is the average (or maximum / minimum, for a customized
//!   metric with that statistic) of the samples of one period; a period
//!   without samples (nothing allocated) is missing data;
//! * the period is 60 s divided by `--time-scale`, and so are cooldowns;
//! * `AlarmHigh` is in ALARM when the last 3 consecutive datapoints are
//!   above the target; `AlarmLow` when the last 15 are below 90% of it;
//! * alarms are evaluated once per completed period; the metric value used
//!   is the average of the datapoints the alarm evaluated;
//! * with several policies the largest scale-out wins, and scale-in happens
//!   only when every policy that may scale in asks for it (AWS's rule).

use std::collections::VecDeque;

/// Datapoints `AlarmHigh` evaluates (AWS: 3 of 1 minute).
pub const HIGH_DATAPOINTS: usize = 3;
/// Datapoints `AlarmLow` evaluates (AWS: 15 of 1 minute).
pub const LOW_DATAPOINTS: usize = 15;
/// `AlarmLow`'s threshold, as a fraction of the target value.
pub const LOW_THRESHOLD: f64 = 0.9;
/// Comparisons with thresholds ignore differences below this (an average
/// of samples equal to the target is not above it).
const EPSILON: f64 = 1e-9;
/// The metric's period at time scale 1 (CloudWatch's 1 minute).
pub const PERIOD_MS: i64 = 60_000;

/// Which statistic of a period's samples makes its datapoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statistic {
    Average,
    Maximum,
    Minimum,
}

/// One completed period of the metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Datapoint {
    /// Period number (`time / period`).
    pub period: i64,
    pub average: f64,
    pub maximum: f64,
    pub minimum: f64,
}

impl Datapoint {
    fn value(&self, s: Statistic) -> f64 {
        match s {
            Statistic::Average => self.average,
            Statistic::Maximum => self.maximum,
            Statistic::Minimum => self.minimum,
        }
    }
}

/// The utilization metric of one scalable target and the state of its
/// alarms and cooldowns.
#[derive(Debug, Clone)]
pub struct Tracker {
    period_ms: i64,
    /// Period the open accumulation belongs to.
    open: Option<i64>,
    sum: f64,
    count: u32,
    max: f64,
    min: f64,
    datapoints: VecDeque<Datapoint>,
    /// Last period whose datapoint the alarms have evaluated.
    evaluated: Option<i64>,
    /// When the last scale-out / scale-in by a policy happened.
    pub last_scale_out_ms: Option<i64>,
    pub last_scale_in_ms: Option<i64>,
}

impl Tracker {
    /// A tracker whose datapoints span `period_ms`.
    pub fn new(period_ms: i64) -> Tracker {
        Tracker {
            period_ms: period_ms.max(1),
            open: None,
            sum: 0.0,
            count: 0,
            max: f64::MIN,
            min: f64::MAX,
            datapoints: VecDeque::new(),
            evaluated: None,
            last_scale_out_ms: None,
            last_scale_in_ms: None,
        }
    }

    /// The period of the metric.
    pub fn period_ms(&self) -> i64 {
        self.period_ms
    }

    /// Closes the open period if `now_ms` is past it.
    pub fn roll(&mut self, now_ms: i64) {
        let p = now_ms.div_euclid(self.period_ms);
        if let Some(open) = self.open
            && open < p
        {
            if self.count > 0 {
                self.datapoints.push_back(Datapoint {
                    period: open,
                    average: self.sum / self.count as f64,
                    maximum: self.max,
                    minimum: self.min,
                });
                while self.datapoints.len() > LOW_DATAPOINTS {
                    self.datapoints.pop_front();
                }
            }
            self.open = None;
            self.sum = 0.0;
            self.count = 0;
            self.max = f64::MIN;
            self.min = f64::MAX;
        }
    }

    /// Records one utilization sample (0.0-1.0) taken at `now_ms`.
    pub fn observe(&mut self, now_ms: i64, value: f64) {
        self.roll(now_ms);
        self.open = Some(now_ms.div_euclid(self.period_ms));
        self.sum += value;
        self.count += 1;
        self.max = self.max.max(value);
        self.min = self.min.min(value);
    }

    /// True when a period has closed with a datapoint that the alarms
    /// have not evaluated yet.
    pub fn has_new_datapoint(&mut self, now_ms: i64) -> bool {
        self.roll(now_ms);
        let last_complete = now_ms.div_euclid(self.period_ms) - 1;
        self.evaluated != Some(last_complete)
            && self.datapoints.back().map(|d| d.period) == Some(last_complete)
    }

    /// Completed datapoints, oldest first.
    pub fn datapoints(&self) -> impl Iterator<Item = &Datapoint> {
        self.datapoints.iter()
    }

    /// The last `n` datapoints if they are consecutive periods ending with
    /// the period before `now_ms`'s.
    fn recent(&self, now_ms: i64, n: usize) -> Option<Vec<Datapoint>> {
        if self.datapoints.len() < n {
            return None;
        }
        let last_complete = now_ms.div_euclid(self.period_ms) - 1;
        let tail: Vec<Datapoint> = self.datapoints.iter().rev().take(n).copied().collect();
        let consecutive = tail
            .iter()
            .enumerate()
            .all(|(i, d)| d.period == last_complete - i as i64);
        consecutive.then_some(tail)
    }
}

/// What a target tracking policy asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyParams {
    pub name: String,
    pub target_value: f64,
    pub statistic: Statistic,
    pub scale_out_cooldown_ms: i64,
    pub scale_in_cooldown_ms: i64,
    pub disable_scale_in: bool,
    pub alarm_high: String,
    pub alarm_low: Option<String>,
}

/// A decision to change capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The new capacity.
    pub desired: u32,
    /// True for a scale-out.
    pub out: bool,
    /// The policy and alarm that caused it.
    pub policy: String,
    pub alarm: String,
    /// The metric value that was used.
    pub metric: f64,
}

/// The target's bounds and current capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub current: u32,
    pub min: u32,
    pub max: u32,
    pub scale_out_suspended: bool,
    pub scale_in_suspended: bool,
}

/// `ceil(current * metric / target)`, guarding against float noise
/// (2 * 0.7 / 0.7 is 2, not 3).
pub fn proportional(current: u32, metric: f64, target: f64) -> u32 {
    if target <= 0.0 || !metric.is_finite() {
        return current;
    }
    let x = current as f64 * metric / target;
    (x - 1e-9).ceil().clamp(0.0, u32::MAX as f64) as u32
}

/// Evaluates the policies' alarms once per completed period. Returns a
/// decision when capacity should change; updates the tracker's cooldown
/// clocks when it does (the caller applies it).
pub fn evaluate(
    t: &mut Tracker,
    policies: &[PolicyParams],
    b: Bounds,
    now_ms: i64,
) -> Option<Decision> {
    t.roll(now_ms);
    let last_complete = now_ms.div_euclid(t.period_ms) - 1;
    if t.evaluated == Some(last_complete) || policies.is_empty() {
        return None;
    }
    // Only a period that produced a datapoint counts as an evaluation.
    if t.datapoints.back().map(|d| d.period) != Some(last_complete) {
        return None;
    }
    t.evaluated = Some(last_complete);

    // Scale out: the largest capacity any policy in ALARM asks for.
    let mut best: Option<Decision> = None;
    if !b.scale_out_suspended {
        for p in policies {
            let Some(dps) = t.recent(now_ms, HIGH_DATAPOINTS) else {
                break;
            };
            if !dps
                .iter()
                .all(|d| d.value(p.statistic) > p.target_value + EPSILON)
            {
                continue;
            }
            if t.last_scale_out_ms
                .is_some_and(|last| now_ms < last + p.scale_out_cooldown_ms)
            {
                continue;
            }
            let metric = mean(&dps, p.statistic);
            let desired = proportional(b.current, metric, p.target_value)
                .max(b.current.saturating_add(1))
                .clamp(b.min, b.max.max(b.min));
            if desired > b.current && best.as_ref().is_none_or(|d| desired > d.desired) {
                best = Some(Decision {
                    desired,
                    out: true,
                    policy: p.name.clone(),
                    alarm: p.alarm_high.clone(),
                    metric,
                });
            }
        }
    }
    if let Some(d) = best {
        t.last_scale_out_ms = Some(now_ms);
        return Some(d);
    }

    // Scale in: every policy that may scale in must be in ALARM on its low
    // alarm; the largest of their capacities is kept.
    if b.scale_in_suspended {
        return None;
    }
    let voters: Vec<&PolicyParams> = policies.iter().filter(|p| !p.disable_scale_in).collect();
    if voters.is_empty() {
        return None;
    }
    let dps = t.recent(now_ms, LOW_DATAPOINTS)?;
    let mut keep: Option<Decision> = None;
    for p in voters {
        if !dps
            .iter()
            .all(|d| d.value(p.statistic) < p.target_value * LOW_THRESHOLD - EPSILON)
        {
            return None;
        }
        if t.last_scale_in_ms
            .is_some_and(|last| now_ms < last + p.scale_in_cooldown_ms)
        {
            return None;
        }
        let metric = mean(&dps, p.statistic);
        let desired =
            proportional(b.current, metric, p.target_value).clamp(b.min, b.max.max(b.min));
        if keep.as_ref().is_none_or(|d| desired > d.desired) {
            keep = Some(Decision {
                desired,
                out: false,
                policy: p.name.clone(),
                alarm: p.alarm_low.clone().unwrap_or_default(),
                metric,
            });
        }
    }
    let d = keep?;
    if d.desired >= b.current {
        return None;
    }
    t.last_scale_in_ms = Some(now_ms);
    Some(d)
}

fn mean(dps: &[Datapoint], s: Statistic) -> f64 {
    dps.iter().map(|d| d.value(s)).sum::<f64>() / dps.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: i64 = 60_000;

    fn policy(target: f64) -> PolicyParams {
        PolicyParams {
            name: "pol".into(),
            target_value: target,
            statistic: Statistic::Average,
            scale_out_cooldown_ms: 0,
            scale_in_cooldown_ms: 0,
            disable_scale_in: false,
            alarm_high: "high".into(),
            alarm_low: Some("low".into()),
        }
    }

    fn bounds(current: u32, min: u32, max: u32) -> Bounds {
        Bounds {
            current,
            min,
            max,
            scale_out_suspended: false,
            scale_in_suspended: false,
        }
    }

    /// Feeds `periods` whole periods of samples with `value` (6 samples
    /// each) starting at period `from`, evaluating after each; returns the
    /// decisions with the period they came at.
    fn run(
        t: &mut Tracker,
        pols: &[PolicyParams],
        b: &mut Bounds,
        from: i64,
        periods: i64,
        value: f64,
    ) -> Vec<(i64, Decision)> {
        let mut out = Vec::new();
        for p in from..from + periods {
            for s in 0..6 {
                t.observe(p * P + s * 10_000, value);
            }
            if let Some(d) = evaluate(t, pols, *b, (p + 1) * P + 1) {
                b.current = d.desired;
                out.push((p + 1, d));
            }
        }
        out
    }

    #[test]
    fn proportional_rounds_up_without_float_noise() {
        assert_eq!(proportional(2, 0.7, 0.7), 2);
        assert_eq!(proportional(2, 1.0, 0.7), 3);
        assert_eq!(proportional(10, 1.0, 0.7), 15);
        assert_eq!(proportional(10, 0.0, 0.7), 0);
        assert_eq!(proportional(3, 0.5, 0.5), 3);
    }

    #[test]
    fn datapoints_average_each_period() {
        let mut t = Tracker::new(P);
        t.observe(0, 1.0);
        t.observe(30_000, 0.0);
        t.observe(60_000, 0.5);
        t.roll(120_000);
        let dps: Vec<_> = t.datapoints().copied().collect();
        assert_eq!(dps.len(), 2);
        assert_eq!(
            (dps[0].period, dps[0].average, dps[0].maximum),
            (0, 0.5, 1.0)
        );
        assert_eq!(dps[1].average, 0.5);
    }

    #[test]
    fn scale_out_after_three_datapoints_above_target() {
        let mut t = Tracker::new(P);
        let pols = [policy(0.7)];
        let mut b = bounds(2, 1, 10);
        // Two periods above the target: not yet.
        assert!(run(&mut t, &pols, &mut b, 0, 2, 1.0).is_empty());
        // The third: ceil(2 * 1.0 / 0.7) = 3.
        let d = run(&mut t, &pols, &mut b, 2, 1, 1.0);
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].0, d[0].1.desired, d[0].1.out), (3, 3, true));
        assert_eq!(d[0].1.alarm, "high");
        // Still saturated next period: ceil(3 / 0.7) = 5, then 8, then max.
        let d = run(&mut t, &pols, &mut b, 3, 3, 1.0);
        let caps: Vec<u32> = d.iter().map(|(_, d)| d.desired).collect();
        assert_eq!(caps, [5, 8, 10]);
        // At max: nothing more.
        assert!(run(&mut t, &pols, &mut b, 6, 2, 1.0).is_empty());
    }

    #[test]
    fn at_or_below_target_does_nothing() {
        let mut t = Tracker::new(P);
        let pols = [policy(0.7)];
        let mut b = bounds(4, 1, 10);
        assert!(run(&mut t, &pols, &mut b, 0, 10, 0.7).is_empty());
        // Between 90% of the target and the target: no scale-in either.
        assert!(run(&mut t, &pols, &mut b, 10, 20, 0.65).is_empty());
    }

    #[test]
    fn scale_out_cooldown() {
        let mut t = Tracker::new(P);
        let mut p = policy(0.5);
        p.scale_out_cooldown_ms = 3 * P;
        let pols = [p];
        let mut b = bounds(1, 1, 100);
        let d = run(&mut t, &pols, &mut b, 0, 8, 1.0);
        // Out at period 3, then not before 6 (3 periods later).
        let at: Vec<i64> = d.iter().map(|(p, _)| *p).collect();
        assert_eq!(at, [3, 6]);
        assert_eq!(b.current, 4);
    }

    #[test]
    fn scale_in_after_fifteen_low_datapoints_and_cooldown() {
        let mut t = Tracker::new(P);
        let mut p = policy(0.7);
        p.scale_in_cooldown_ms = 5 * P;
        let pols = [p];
        let mut b = bounds(10, 2, 20);
        // 14 idle periods: not yet.
        assert!(run(&mut t, &pols, &mut b, 0, 14, 0.0).is_empty());
        // The 15th: to MinCapacity.
        let d = run(&mut t, &pols, &mut b, 14, 1, 0.0);
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].1.desired, d[0].1.out, d[0].1.alarm.as_str()),
            (2, false, "low")
        );
        // Partly used: ceil(10 * 0.35 / 0.7) = 5.
        let mut t = Tracker::new(P);
        let mut b = bounds(10, 2, 20);
        let d = run(&mut t, &pols, &mut b, 0, 15, 0.35);
        assert_eq!(d.last().map(|(_, d)| d.desired), Some(5));
        // Cooldown: the next scale-in waits 5 periods.
        let d = run(&mut t, &pols, &mut b, 15, 10, 0.1);
        let at: Vec<i64> = d.iter().map(|(p, _)| *p).collect();
        assert_eq!(at, [20]);
    }

    #[test]
    fn disable_scale_in_and_suspension() {
        let mut t = Tracker::new(P);
        let mut p = policy(0.7);
        p.disable_scale_in = true;
        let pols = [p];
        let mut b = bounds(10, 1, 20);
        assert!(run(&mut t, &pols, &mut b, 0, 30, 0.0).is_empty());

        let mut t = Tracker::new(P);
        let pols = [policy(0.7)];
        let mut b = bounds(2, 1, 20);
        b.scale_out_suspended = true;
        assert!(run(&mut t, &pols, &mut b, 0, 5, 1.0).is_empty());
        b.scale_out_suspended = false;
        b.scale_in_suspended = true;
        assert!(run(&mut t, &pols, &mut b, 5, 20, 0.0).is_empty());
    }

    #[test]
    fn missing_periods_break_the_alarm() {
        let mut t = Tracker::new(P);
        let pols = [policy(0.5)];
        let b = bounds(2, 1, 10);
        // Samples in periods 0, 1 and 3 (2 is missing): no 3 consecutive.
        for p in [0, 1, 3] {
            t.observe(p * P, 1.0);
        }
        assert_eq!(evaluate(&mut t, &pols, b, 4 * P + 1), None);
        t.observe(4 * P, 1.0);
        t.observe(5 * P, 1.0);
        assert!(evaluate(&mut t, &pols, b, 6 * P + 1).is_some());
    }

    #[test]
    fn several_policies() {
        // Scale-out: the largest wins.
        let mut a = policy(0.5);
        a.name = "a".into();
        let mut c = policy(0.25);
        c.name = "c".into();
        let mut t = Tracker::new(P);
        let mut b = bounds(2, 1, 100);
        let d = run(&mut t, &[a.clone(), c.clone()], &mut b, 0, 3, 1.0);
        assert_eq!((d[0].1.policy.as_str(), d[0].1.desired), ("c", 8));
        // Scale-in: only when all agree; the largest capacity is kept.
        let mut t = Tracker::new(P);
        let mut b = bounds(8, 1, 100);
        let d = run(&mut t, &[a, c], &mut b, 0, 15, 0.2);
        // a wants ceil(8*0.2/0.5)=4 (0.2 < 0.45); c (0.2 < 0.225) wants ceil(8*0.2/0.25)=7.
        assert_eq!(d.last().map(|(_, d)| d.desired), Some(7));
    }

    #[test]
    fn maximum_statistic() {
        let mut t = Tracker::new(P);
        let mut p = policy(0.7);
        p.statistic = Statistic::Maximum;
        let b = bounds(2, 1, 10);
        // Bursty: averages 0.2, peaks at 1.0 in each period.
        for period in 0..3 {
            for s in 0..5 {
                t.observe(period * P + s * 10_000, if s == 0 { 1.0 } else { 0.0 });
            }
        }
        let d = evaluate(&mut t, &[p], b, 3 * P + 1).unwrap();
        assert_eq!(d.desired, 3);
    }
}
