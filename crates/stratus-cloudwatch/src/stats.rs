//! Statistics over a period, as CloudWatch defines them
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html#Statistic>):
//! SampleCount, Sum, Average (Sum / SampleCount), Minimum, Maximum, and
//! percentiles `pNN` / `pNN.NN`, which need the individual values (data
//! sent as a StatisticSet has none, as on AWS).

use stratus_core::AwsResult;

use crate::errors::invalid_value;

/// What is known of the values of one series over some time: always their
/// count and sum; the minimum and maximum when every part of it knew them;
/// the values themselves (`(value, count)`) when every part had them.
#[derive(Debug, Clone, PartialEq)]
pub struct Agg {
    /// SampleCount.
    pub count: f64,
    /// Sum of the values.
    pub sum: f64,
    /// Minimum, when known.
    pub min: Option<f64>,
    /// Maximum, when known.
    pub max: Option<f64>,
    /// The values with their counts, when known (percentiles need them).
    pub samples: Option<Vec<(f64, f64)>>,
}

impl Agg {
    /// `count` values all equal to `value` (a counter: each event is 1).
    pub fn repeated(value: f64, count: f64) -> Agg {
        Agg {
            count,
            sum: value * count,
            min: Some(value),
            max: Some(value),
            samples: Some(vec![(value, count)]),
        }
    }

    /// Adds `other` (the same series, another part of the period).
    pub fn merge(&mut self, other: &Agg) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            _ => None,
        };
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        self.samples = match (self.samples.take(), &other.samples) {
            (Some(mut a), Some(b)) => {
                a.extend_from_slice(b);
                Some(a)
            }
            _ => None,
        };
    }

    /// The value of statistic `s`, when it is known.
    pub fn stat(&self, s: Stat) -> Option<f64> {
        match s {
            Stat::SampleCount => Some(self.count),
            Stat::Sum => Some(self.sum),
            Stat::Average => (self.count > 0.0).then(|| self.sum / self.count),
            Stat::Minimum => self.min,
            Stat::Maximum => self.max,
            Stat::Percentile(p) => self.samples.as_ref().and_then(|v| percentile(v, p)),
        }
    }
}

/// The nearest-rank percentile `p` (0-100) of weighted values: the
/// smallest value with at least `p`% of the total count at or below it.
pub fn percentile(samples: &[(f64, f64)], p: f64) -> Option<f64> {
    let mut v: Vec<(f64, f64)> = samples.iter().copied().filter(|(_, c)| *c > 0.0).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = v.iter().map(|(_, c)| c).sum();
    let rank = (p / 100.0 * total).max(f64::MIN_POSITIVE);
    let mut seen = 0.0;
    for (value, c) in &v {
        seen += c;
        if seen >= rank - 1e-9 {
            return Some(*value);
        }
    }
    v.last().map(|(value, _)| *value)
}

/// A statistic a request names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// How many values.
    SampleCount,
    /// Sum / SampleCount.
    Average,
    /// The values added up.
    Sum,
    /// The smallest value.
    Minimum,
    /// The largest value.
    Maximum,
    /// `pNN` / `pNN.NN`: 0-100.
    Percentile(f64),
}

impl Stat {
    /// One of the model's `Statistic` enum values.
    pub fn basic(s: &str) -> Option<Stat> {
        Some(match s {
            "SampleCount" => Stat::SampleCount,
            "Average" => Stat::Average,
            "Sum" => Stat::Sum,
            "Minimum" => Stat::Minimum,
            "Maximum" => Stat::Maximum,
            _ => return None,
        })
    }

    /// A percentile `p0`..`p100` with at most two decimals (`p99`,
    /// `p99.9`, `p99.99`).
    pub fn percentile(s: &str) -> Option<Stat> {
        let rest = s.strip_prefix('p')?;
        let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
        let digits = |t: &str| t.bytes().all(|c| c.is_ascii_digit());
        if int.is_empty() || int.len() > 3 || !digits(int) || frac.len() > 2 || !digits(frac) {
            return None;
        }
        if rest.ends_with('.') {
            return None;
        }
        let p: f64 = rest.parse().ok()?;
        (0.0..=100.0).contains(&p).then_some(Stat::Percentile(p))
    }

    /// A GetMetricData `Stat`: a basic statistic or a percentile. Other
    /// CloudWatch statistics (trimmed means `tm99`, `IQM`, `wm`, `tc`,
    /// `ts`, `PR`) are answered with `InvalidParameterValue` saying they
    /// are not supported here.
    pub fn parse(s: &str, path: &str) -> AwsResult<Stat> {
        if let Some(v) = Stat::basic(s).or_else(|| Stat::percentile(s)) {
            return Ok(v);
        }
        let lower = s.to_ascii_lowercase();
        if ["tm", "wm", "tc", "ts", "pr", "iqm"]
            .iter()
            .any(|p| lower.starts_with(p))
        {
            return Err(invalid_value(format!(
                "The statistic {s} for parameter {path} is a trimmed or windowed statistic, \
                 which stratus does not compute; use SampleCount, Average, Sum, Minimum, Maximum or a percentile (p0-p100)."
            )));
        }
        Err(invalid_value(format!(
            "The value {s} for parameter {path} is not a valid statistic: use SampleCount, Average, Sum, \
             Minimum, Maximum or a percentile such as p99 or p99.9."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<(f64, f64)> = (1..=100).map(|i| (i as f64, 1.0)).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[(5.0, 3.0), (1.0, 1.0)], 25.0), Some(1.0));
        assert_eq!(percentile(&[(5.0, 3.0), (1.0, 1.0)], 26.0), Some(5.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn statistic_names() {
        assert_eq!(Stat::percentile("p99"), Some(Stat::Percentile(99.0)));
        assert_eq!(Stat::percentile("p99.99"), Some(Stat::Percentile(99.99)));
        assert_eq!(Stat::percentile("p100"), Some(Stat::Percentile(100.0)));
        assert_eq!(Stat::percentile("p101"), None);
        assert_eq!(Stat::percentile("p99.999"), None);
        assert_eq!(Stat::percentile("p"), None);
        assert_eq!(Stat::percentile("p9."), None);
        assert!(Stat::parse("Average", "Stat").is_ok());
        assert!(Stat::parse("tm99", "Stat").is_err());
    }

    #[test]
    fn merging_keeps_what_is_known() {
        let mut a = Agg::repeated(1.0, 3.0);
        a.merge(&Agg::repeated(4.0, 1.0));
        assert_eq!(a.stat(Stat::SampleCount), Some(4.0));
        assert_eq!(a.stat(Stat::Sum), Some(7.0));
        assert_eq!(a.stat(Stat::Average), Some(1.75));
        assert_eq!(a.stat(Stat::Minimum), Some(1.0));
        assert_eq!(a.stat(Stat::Maximum), Some(4.0));
        assert_eq!(a.stat(Stat::Percentile(75.0)), Some(1.0));
        let set = Agg {
            count: 2.0,
            sum: 3.0,
            min: Some(1.0),
            max: Some(2.0),
            samples: None,
        };
        a.merge(&set);
        assert_eq!(a.stat(Stat::Percentile(50.0)), None);
        assert_eq!(a.stat(Stat::Minimum), Some(1.0));
    }
}
