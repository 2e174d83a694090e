//! `rate_limit: "N/period"` and the per-agent token buckets that enforce it.

use std::collections::HashMap;
use std::fmt;

/// The period of a [`Rate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Second,
    Minute,
    Hour,
    Day,
}

impl Period {
    /// Every period, with its spelling in policy files.
    pub const ALL: [(Period, &'static str); 4] = [
        (Period::Second, "second"),
        (Period::Minute, "minute"),
        (Period::Hour, "hour"),
        (Period::Day, "day"),
    ];

    /// The period's length in milliseconds.
    pub const fn millis(self) -> u64 {
        match self {
            Period::Second => 1_000,
            Period::Minute => 60_000,
            Period::Hour => 3_600_000,
            Period::Day => 86_400_000,
        }
    }

    /// The spelling in policy files (`hour`).
    pub const fn name(self) -> &'static str {
        match self {
            Period::Second => "second",
            Period::Minute => "minute",
            Period::Hour => "hour",
            Period::Day => "day",
        }
    }
}

/// At most `count` calls per `period`, as a token bucket that holds `count` tokens and refills
/// continuously (so a burst of `count` is allowed, then one call every `period / count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Calls per period; never 0.
    pub count: u32,
    pub period: Period,
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, self.period.name())
    }
}

/// Why a rate string is invalid: the message and maybe a corrected spelling.
pub(crate) type RateError = (String, Option<String>);

impl Rate {
    /// Parses `"100/hour"`. Spaces around the parts are allowed.
    pub(crate) fn parse(s: &str) -> Result<Rate, RateError> {
        let expected = "expected \"<count>/<period>\" with a period of second, minute, hour or day";
        let Some((n, p)) = s.split_once('/') else {
            return Err((format!("invalid rate_limit `{s}`: {expected}"), None));
        };
        let (n, p) = (n.trim(), p.trim());
        let count = match n.parse::<u32>() {
            Ok(0) => {
                return Err((
                    format!("invalid rate_limit `{s}`: the count must be at least 1"),
                    None,
                ))
            }
            Ok(c) => c,
            Err(_) => {
                return Err((
                    format!("invalid rate_limit `{s}`: `{n}` is not a whole number"),
                    None,
                ))
            }
        };
        match Period::ALL.iter().find(|(_, name)| *name == p) {
            Some(&(period, _)) => Ok(Rate { count, period }),
            None => {
                let singular = p.strip_suffix('s').unwrap_or(p);
                let guess = Period::ALL
                    .iter()
                    .find(|(_, name)| *name == singular)
                    .map(|(_, name)| *name)
                    .or_else(|| crate::suggest::closest(p, Period::ALL.iter().map(|(_, n)| *n)))
                    .or(match p {
                        "s" | "sec" => Some("second"),
                        "m" | "min" => Some("minute"),
                        "h" | "hr" => Some("hour"),
                        "d" => Some("day"),
                        _ => None,
                    });
                Err((
                    format!("invalid rate_limit `{s}`: {expected}"),
                    guess.map(|g| format!("{count}/{g}")),
                ))
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Bucket {
    rate: Rate,
    /// Tokens, scaled by the period in ms: one call costs `period_ms` units, the bucket holds
    /// `count * period_ms` and refills `count` units per elapsed ms. Exact integer arithmetic.
    units: u128,
    last_ms: u64,
}

/// One agent's token buckets, keyed by rule index. Deterministic: time comes from the caller.
#[derive(Debug, Clone, Default)]
pub struct RateLimiter {
    buckets: HashMap<usize, Bucket>,
}

impl RateLimiter {
    /// No buckets yet; each rule's bucket starts full on its first call.
    pub fn new() -> Self {
        RateLimiter::default()
    }

    /// Takes one token from `rule`'s bucket at `now_ms`, or says how long until one is there.
    /// A clock that goes backwards refills nothing. A different `rate` for the same rule (a
    /// reloaded policy) starts a fresh, full bucket.
    pub fn check(&mut self, rule: usize, rate: Rate, now_ms: u64) -> Result<(), u64> {
        let period = u128::from(rate.period.millis());
        let count = u128::from(rate.count.max(1));
        let capacity = count * period;
        let bucket = self.buckets.entry(rule).or_insert(Bucket {
            rate,
            units: capacity,
            last_ms: now_ms,
        });
        if bucket.rate != rate {
            *bucket = Bucket {
                rate,
                units: capacity,
                last_ms: now_ms,
            };
        }
        let elapsed = u128::from(now_ms.saturating_sub(bucket.last_ms));
        bucket.units = bucket
            .units
            .saturating_add(elapsed.saturating_mul(count))
            .min(capacity);
        bucket.last_ms = bucket.last_ms.max(now_ms);
        if bucket.units >= period {
            bucket.units -= period;
            Ok(())
        } else {
            let missing = period - bucket.units;
            let wait = missing.div_ceil(count);
            Err(u64::try_from(wait).unwrap_or(u64::MAX))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        assert_eq!(
            Rate::parse("100/hour"),
            Ok(Rate {
                count: 100,
                period: Period::Hour
            })
        );
        assert_eq!(
            Rate::parse(" 5 / second "),
            Ok(Rate {
                count: 5,
                period: Period::Second
            })
        );
        assert_eq!(
            Rate::parse("100/hours").unwrap_err().1.as_deref(),
            Some("100/hour")
        );
        assert_eq!(
            Rate::parse("10/min").unwrap_err().1.as_deref(),
            Some("10/minute")
        );
        assert_eq!(
            Rate::parse("10/mintue").unwrap_err().1.as_deref(),
            Some("10/minute")
        );
        assert!(Rate::parse("0/day").is_err());
        assert!(Rate::parse("ten/day").is_err());
        assert!(Rate::parse("100").is_err());
        assert_eq!(
            Rate {
                count: 3,
                period: Period::Day
            }
            .to_string(),
            "3/day"
        );
    }

    #[test]
    fn bucket_allows_burst_then_refills() {
        let rate = Rate {
            count: 2,
            period: Period::Second,
        };
        let mut rl = RateLimiter::new();
        assert_eq!(rl.check(0, rate, 1_000), Ok(()));
        assert_eq!(rl.check(0, rate, 1_000), Ok(()));
        assert_eq!(rl.check(0, rate, 1_000), Err(500));
        assert_eq!(rl.check(0, rate, 1_250), Err(250));
        assert_eq!(rl.check(0, rate, 1_500), Ok(()));
        // another rule has its own bucket
        assert_eq!(rl.check(1, rate, 1_500), Ok(()));
        // time going backwards refills nothing
        assert_eq!(rl.check(0, rate, 10), Err(500));
    }

    #[test]
    fn hourly_retry_hint() {
        let rate = Rate {
            count: 1,
            period: Period::Hour,
        };
        let mut rl = RateLimiter::new();
        assert_eq!(rl.check(7, rate, 0), Ok(()));
        assert_eq!(rl.check(7, rate, 1_000), Err(3_599_000));
    }
}
