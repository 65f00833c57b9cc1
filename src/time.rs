//! Dates and timestamps without a calendar library.
//!
//! Indicator files carry dates (`2024-09-18`, `2024-09-18T10:00:00Z`, `2024-09-18T10:00:00.123+02:00`,
//! epoch seconds in MISP CSV) and alerts carry RFC 3339 timestamps with microseconds in UTC.
//! Both directions are a few lines of proleptic Gregorian arithmetic (Howard Hinnant's
//! `days_from_civil`), so we keep them here instead of pulling a calendar crate onto the hot
//! path of alert writing.

/// Seconds since the Unix epoch, UTC. Dates without a time are the start of that day.
pub type Epoch = i64;

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn num(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u32, |a, &b| a * 10 + (b - b'0') as u32))
}

/// Microseconds since the epoch of `YYYY-MM-DDTHH:MM:SS.fff[fff]` (a `T` or a space between
/// date and time) followed by nothing (UTC), `Z` or `±HHMM`: the shapes of Suricata's EVE
/// times, nfdump's and our own alerts', read at fixed offsets with no searching. `None` for
/// anything else, which [`parse`] may still read. Where this gives an answer, it is the one
/// [`parse`] and its fraction give (a test compares them).
pub fn parse_fixed_micros(b: &[u8]) -> Option<i64> {
    if b.len() < 23 || b.len() > 31 {
        return None;
    }
    let digit = |i: usize| -> Option<u32> {
        let d = b[i].wrapping_sub(b'0');
        (d <= 9).then_some(u32::from(d))
    };
    let two = |i: usize| Some(digit(i)? * 10 + digit(i + 1)?);
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b' ') || b[13] != b':' || b[16] != b':' || b[19] != b'.'
    {
        return None;
    }
    let (y, mo, d) = (two(0)? * 100 + two(2)?, two(5)?, two(8)?);
    let (h, mi, sec) = (two(11)?, two(14)?, two(17)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    // Milliseconds or microseconds.
    let digits = match b.get(23).copied().map(|c| c.is_ascii_digit()) {
        Some(true) => 6,
        _ => 3,
    };
    if b.len() < 20 + digits {
        return None;
    }
    let mut frac = 0;
    for i in 20..20 + digits {
        frac = frac * 10 + digit(i)?;
    }
    if digits == 3 {
        frac *= 1000;
    }
    let zone = &b[20 + digits..];
    let off = match zone {
        [] | [b'Z'] => 0,
        [sign @ (b'+' | b'-'), ..] if zone.len() == 5 => {
            let at = 20 + digits + 1;
            let off = i64::from(two(at)? * 3600 + two(at + 2)? * 60);
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(i64::from(y), mo, d) * 86400 + i64::from(h * 3600 + mi * 60 + sec) - off;
    Some(secs * 1_000_000 + i64::from(frac))
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.frac]]` with `Z`, `±HH:MM`, `±HHMM` or no zone
/// (taken as UTC), a space instead of `T`, or plain epoch seconds (`1725000000`, `1725000000.5`).
pub fn parse(s: &str) -> Option<Epoch> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    if b.iter().all(|c| c.is_ascii_digit() || *c == b'.') && !s.contains('-') && b.len() >= 9 {
        let secs = s.split('.').next()?;
        return secs.parse().ok();
    }
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut t = days_from_civil(y as i64, mo, d) * 86400;
    let rest = &b[10..];
    if rest.is_empty() {
        return Some(t);
    }
    if rest[0] != b'T' && rest[0] != b't' && rest[0] != b' ' {
        return None;
    }
    let rest = &rest[1..];
    if rest.len() < 5 || rest[2] != b':' {
        return None;
    }
    let (h, mi) = (num(&rest[0..2])?, num(&rest[3..5])?);
    if h > 23 || mi > 59 {
        return None;
    }
    t += (h * 3600 + mi * 60) as i64;
    let mut rest = &rest[5..];
    if rest.first() == Some(&b':') {
        let sec = num(rest.get(1..3)?)?;
        if sec > 60 {
            return None;
        }
        t += sec as i64;
        rest = &rest[3..];
    }
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        rest = &rest[1 + n..];
    }
    match rest {
        [] | [b'Z'] | [b'z'] => Some(t),
        [sign @ (b'+' | b'-'), zone @ ..] => {
            let (zh, zm) = match zone {
                [a, b, b':', c, d] | [a, b, c, d] => (num(&[*a, *b])?, num(&[*c, *d])?),
                [a, b] => (num(&[*a, *b])?, 0),
                _ => return None,
            };
            let off = (zh * 3600 + zm * 60) as i64;
            Some(if *sign == b'+' { t - off } else { t + off })
        }
        _ => None,
    }
}

/// Formats as RFC 3339 with microseconds in UTC: `2024-09-18T10:00:00.000123Z`.
pub fn format_micros(secs: i64, micros: u32, out: &mut String) {
    use std::fmt::Write;
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) || micros > 999_999 {
        let _ =
            write!(out, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z", sod / 3600, sod % 3600 / 60, sod % 60);
        return;
    }
    // Every alert and flow event carries up to three of these: digits by hand, not `fmt`.
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y as u64);
    put(5, 2, m as u64);
    put(8, 2, d as u64);
    put(11, 2, (sod / 3600) as u64);
    put(14, 2, (sod % 3600 / 60) as u64);
    put(17, 2, (sod % 60) as u64);
    put(20, 6, micros as u64);
    out.push_str(std::str::from_utf8(&b).unwrap_or_default());
}

/// Formats a date (`YYYY-MM-DD`) in UTC.
pub fn format_date(secs: Epoch) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Formats a date with time when it is not midnight UTC (`YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SSZ`).
pub fn format_compact(secs: Epoch) -> String {
    if secs.rem_euclid(86400) == 0 {
        return format_date(secs);
    }
    let mut s = String::new();
    format_micros(secs, 0, &mut s);
    s.truncate(19);
    s.push('Z');
    s
}

/// The current wall-clock time in microseconds.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// The current wall-clock time.
pub fn now() -> Epoch {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(parse("1970-01-01"), Some(0));
        assert_eq!(parse("2024-09-18"), Some(1726617600));
        assert_eq!(format_date(1726617600), "2024-09-18");
        assert_eq!(parse("2024-09-18T01:02:03Z"), Some(1726617600 + 3723));
        assert_eq!(parse("2024-09-18T01:02:03.250+01:00"), Some(1726617600 + 3723 - 3600));
        assert_eq!(parse("2024-09-18 01:02"), Some(1726617600 + 3720));
        assert_eq!(parse("1725000000"), Some(1725000000));
        assert_eq!(parse("2024-13-01"), None);
        assert_eq!(parse("yesterday"), None);
        assert_eq!(parse("2024-02-29T24:00:00Z"), None);
        let mut s = String::new();
        format_micros(1725000000, 42, &mut s);
        assert_eq!(s, "2024-08-30T06:40:00.000042Z");
        assert_eq!(format_compact(1726617600 + 3723), "2024-09-18T01:02:03Z");
    }

    #[test]
    fn hand_formatting_agrees_with_fmt() {
        use std::fmt::Write;
        let mut rng = crate::synth::XorShift(0x9E37_79B9_7F4A_7C15);
        for i in 0..20_000 {
            let x = rng.next_u64();
            // Years 0 to 9999 and a few beyond on either side.
            let secs = (x % 330_000_000_000) as i64 - 62_500_000_000;
            let micros = if i % 7 == 0 { 999_999 } else { (x >> 40) as u32 % 1_000_000 };
            let (y, m, d) = civil_from_days(secs.div_euclid(86400));
            let sod = secs.rem_euclid(86400);
            let mut want = String::new();
            let _ = write!(
                want,
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
                sod / 3600,
                sod % 3600 / 60,
                sod % 60
            );
            let mut got = String::new();
            format_micros(secs, micros, &mut got);
            assert_eq!(got, want, "{secs} {micros}");
        }
    }

    #[test]
    fn civil_conversion_is_consistent_over_centuries() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
