//! `--since T` of `agentctl recorder show|tail`: a sequence number, a relative duration
//! before now (`90s`, `10m`, `2h`, `1d`, `1h30m`, `250ms`) or an RFC 3339 time
//! (`2026-11-25T14:00:00Z`, `2026-11-25T15:00:00.250+01:00`, or a date, `2026-11-25`, meaning
//! its midnight UTC).

use agentos_recorder::Record;

/// Where `--since` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// Records from this sequence number on.
    Seq(u64),
    /// Records written at or after this time (ms since the Unix epoch).
    WallMs(u64),
}

impl Since {
    pub fn keeps(&self, r: &Record) -> bool {
        match *self {
            Since::Seq(s) => r.seq >= s,
            Since::WallMs(t) => r.wall_ms >= t,
        }
    }
}

/// The help text's list of forms, for error messages.
pub const FORMS: &str =
    "a sequence number (42), a duration before now (90s, 10m, 2h, 1d, 1h30m) or an RFC 3339 time (2026-11-25T14:00:00Z)";

/// Parses `--since`; durations count back from `now_ms`.
pub fn parse(s: &str, now_ms: u64) -> Result<Since, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map(Since::Seq)
            .map_err(|_| format!("sequence number `{s}` is too large"));
    }
    if let Some(ms) = duration_ms(s) {
        return Ok(Since::WallMs(now_ms.saturating_sub(ms)));
    }
    if let Some(ms) = rfc3339_ms(s) {
        return Ok(Since::WallMs(ms));
    }
    Err(format!("`{s}` is not {FORMS}"))
}

/// `1h30m`, `10m`, `250ms`: one or more number-unit pairs.
pub(crate) fn duration_ms(s: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(total)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &str, at: usize, len: usize) -> Option<i64> {
    let part = s.get(at..at + len)?;
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// `YYYY-MM-DD[(T| )HH:MM:SS[.frac](Z|±HH:MM)]` → ms since the Unix epoch.
fn rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(s, 0, 4)?, num(s, 5, 2)?, num(s, 8, 2)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > month_days[(mo - 1) as usize] {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    if b.len() == 10 {
        return u64::try_from(days * 86_400_000).ok();
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 20 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(s, 11, 2)?, num(s, 14, 2)?, num(s, 17, 2)?);
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut at = 19;
    let mut frac_ms = 0;
    if b.get(at) == Some(&b'.') {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 {
            return None;
        }
        let first3: String = s[at + 1..at + 1 + digits.min(3)].to_string();
        frac_ms = format!("{first3:0<3}").parse::<i64>().ok()?;
        at += 1 + digits;
    }
    let offset_min = match &s[at..] {
        "Z" | "z" => 0,
        tz if tz.len() == 6
            && matches!(tz.as_bytes()[0], b'+' | b'-')
            && tz.as_bytes()[3] == b':' =>
        {
            let (oh, om) = (num(tz, 1, 2)?, num(tz, 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if tz.starts_with('-') {
                -m
            } else {
                m
            }
        }
        _ => return None,
    };
    let ms = (((days * 24 + h) * 60 + mi - offset_min) * 60 + sec) * 1000 + frac_ms;
    u64::try_from(ms).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_795_620_000_000;

    #[test]
    fn sequence_numbers_durations_and_rfc3339() {
        assert_eq!(parse("42", NOW), Ok(Since::Seq(42)));
        assert_eq!(parse("10m", NOW), Ok(Since::WallMs(NOW - 600_000)));
        assert_eq!(parse("2h", NOW), Ok(Since::WallMs(NOW - 7_200_000)));
        assert_eq!(parse("1h30m", NOW), Ok(Since::WallMs(NOW - 5_400_000)));
        assert_eq!(parse("250ms", NOW), Ok(Since::WallMs(NOW - 250)));
        assert_eq!(parse("1d", NOW), Ok(Since::WallMs(NOW - 86_400_000)));
        // `date -d 2026-11-25T14:00:00Z +%s` = 1795615200.
        assert_eq!(
            parse("2026-11-25T14:00:00Z", NOW),
            Ok(Since::WallMs(1_795_615_200_000))
        );
        assert_eq!(
            parse("2026-11-25T15:00:00.25+01:00", NOW),
            Ok(Since::WallMs(1_795_615_200_250))
        );
        assert_eq!(
            parse("2026-11-25 09:30:00-04:30", NOW),
            Ok(Since::WallMs(1_795_615_200_000))
        );
        assert_eq!(parse("1970-01-01", NOW), Ok(Since::WallMs(0)));
        assert_eq!(
            parse("2024-02-29T00:00:00Z", NOW),
            Ok(Since::WallMs(1_709_164_800_000))
        );
    }

    #[test]
    fn anything_else_is_refused_with_the_forms() {
        for bad in [
            "",
            "10x",
            "m",
            "2026-02-30",
            "2026-11-25T25:00:00Z",
            "2026-11-25T14:00:00",
            "2026-11-25T14:00:00+0100",
            "yesterday",
            "-5m",
            "99999999999999999999999",
        ] {
            let e = parse(bad, NOW).unwrap_err();
            assert!(
                e.contains("RFC 3339") || e.contains("too large"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn keeps_by_seq_or_time() {
        let r = Record {
            seq: 5,
            wall_ms: 1000,
            mono_us: 0,
            agent: None,
            event: agentos_recorder::RecordEvent::KernelStop {
                reason: String::new(),
            },
        };
        assert!(Since::Seq(5).keeps(&r) && !Since::Seq(6).keeps(&r));
        assert!(Since::WallMs(1000).keeps(&r) && !Since::WallMs(1001).keeps(&r));
    }
}
