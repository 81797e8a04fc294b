//! Durations as people write them in config and conditions: `90s`, `30m`, `26h`, `1d`, `1h30m`,
//! `500ms`, or a plain number of seconds (`45`).
//!
//! This module owns the one spelling of a duration used everywhere in `infra-health` — condition
//! thresholds (`<5m`), carry-forward limits (`26h`), timeouts and intervals — so that what a user
//! types in config, what the terminal prints and what goes into a Datadog `condition` tag agree.
//!
//! Parsing is exact: components are read as decimals and converted with integer arithmetic, so
//! `1.5h` is exactly 5400 s and `0.1s` exactly 100 ms. Anything that cannot be represented (more
//! than `u64::MAX` seconds, finer than a nanosecond) is an error, never a panic or a silent
//! rounding. [`format_duration`] prints the shortest exact form built from the same units, and
//! [`parse_duration`] reads every string it prints back to the same [`Duration`].

use std::time::Duration;

const NANOS_PER_MILLI: u128 = 1_000_000;
const NANOS_PER_SEC: u128 = 1_000_000_000;
const NANOS_PER_MIN: u128 = 60 * NANOS_PER_SEC;
const NANOS_PER_HOUR: u128 = 60 * NANOS_PER_MIN;
const NANOS_PER_DAY: u128 = 24 * NANOS_PER_HOUR;

/// The most significant digits a representable duration can need (u64 seconds plus nanoseconds
/// in the finest unit needs fewer than 32); longer numbers are rejected before any arithmetic.
const MAX_DIGITS: usize = 38;

/// Why a duration could not be read. Every message quotes the input and says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error(
        "invalid duration {text:?}: expected a number followed by ms, s, m, h or d (e.g. 30m, 26h)"
    )]
    Malformed { text: String },
    #[error("invalid duration {text:?}: durations cannot be negative")]
    Negative { text: String },
    #[error(
        "invalid duration {text:?}: too large (the longest duration is about 584 billion years)"
    )]
    TooLarge { text: String },
    #[error("invalid duration {text:?}: more precise than a nanosecond")]
    TooPrecise { text: String },
}

impl DurationError {
    /// The text that failed to parse.
    pub fn text(&self) -> &str {
        match self {
            DurationError::Malformed { text }
            | DurationError::Negative { text }
            | DurationError::TooLarge { text }
            | DurationError::TooPrecise { text } => text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Malformed,
    TooLarge,
    TooPrecise,
}

/// Parses `90s`, `30m`, `26h`, `1d`, `1h30m`, `500ms`, `1.5h`, `1e3s` or plain seconds (`45`).
///
/// Components may come in any order and are added up; each is a decimal number (optionally with
/// an exponent) followed by `ms`, `s`, `m`, `h` or `d`. Surrounding whitespace is ignored, a
/// leading `+` is allowed, and `-0s` is zero; any other negative duration is an error.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    let error = |failure: Failure| {
        let text = text.to_string();
        match failure {
            Failure::Malformed => DurationError::Malformed { text },
            Failure::TooLarge => DurationError::TooLarge { text },
            Failure::TooPrecise => DurationError::TooPrecise { text },
        }
    };
    let nanos = if let Some(rest) = trimmed.strip_prefix('-') {
        match parse_unsigned_nanos(rest) {
            Ok(0) => 0,
            Ok(_) => {
                return Err(DurationError::Negative {
                    text: text.to_string(),
                });
            }
            Err(failure) => return Err(error(failure)),
        }
    } else {
        let unsigned = trimmed.strip_prefix('+').unwrap_or(trimmed);
        parse_unsigned_nanos(unsigned).map_err(error)?
    };
    nanos_to_duration(nanos).ok_or_else(|| error(Failure::TooLarge))
}

/// The shortest exact human form of `d`: `26h`, `1h30m`, `1m30s`, `500ms`, `2d`, `0s`.
///
/// Whole days print as days (`1d`, `7d`); anything else as hours, minutes, seconds and
/// milliseconds with zero parts left out, so `26h` stays `26h` rather than `1d2h`. A remainder
/// below a millisecond is written as a decimal number of milliseconds (`1s0.5ms`), which keeps
/// the form exact: `parse_duration(&format_duration(d)) == Ok(d)` for every `d`.
/// An age for a person: [`format_duration`] of the whole seconds (`52m17s`, not
/// `52m17s178.492986ms`); under a second is `0s`.
pub fn format_age(d: Duration) -> String {
    format_duration(Duration::from_secs(d.as_secs()))
}

pub fn format_duration(d: Duration) -> String {
    let total = d.as_nanos();
    if total == 0 {
        return "0s".to_string();
    }
    if total.is_multiple_of(NANOS_PER_DAY) {
        return format!("{}d", total / NANOS_PER_DAY);
    }
    let mut out = String::new();
    let hours = total / NANOS_PER_HOUR;
    let minutes = total % NANOS_PER_HOUR / NANOS_PER_MIN;
    let seconds = total % NANOS_PER_MIN / NANOS_PER_SEC;
    let millis = total % NANOS_PER_SEC / NANOS_PER_MILLI;
    let sub_milli = total % NANOS_PER_MILLI;
    for (amount, unit) in [(hours, "h"), (minutes, "m"), (seconds, "s")] {
        if amount > 0 {
            out.push_str(&format!("{amount}{unit}"));
        }
    }
    if sub_milli > 0 {
        let fraction = format!("{sub_milli:06}");
        out.push_str(&format!("{millis}.{}ms", fraction.trim_end_matches('0')));
    } else if millis > 0 {
        out.push_str(&format!("{millis}ms"));
    }
    out
}

/// Converts a whole number of nanoseconds to a [`Duration`], or `None` past `u64::MAX` seconds.
fn nanos_to_duration(nanos: u128) -> Option<Duration> {
    let secs = u64::try_from(nanos / NANOS_PER_SEC).ok()?;
    let sub = u32::try_from(nanos % NANOS_PER_SEC).ok()?;
    Some(Duration::new(secs, sub))
}

/// Sums the components of an unsigned duration, in nanoseconds.
fn parse_unsigned_nanos(text: &str) -> Result<u128, Failure> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(Failure::Malformed);
    }
    let mut pos = 0;
    let mut total: u128 = 0;
    let mut components = 0usize;
    while pos < bytes.len() {
        let (number, after_number) = Decimal::scan(bytes, pos).ok_or(Failure::Malformed)?;
        let mut after_unit = after_number;
        while bytes.get(after_unit).is_some_and(u8::is_ascii_alphabetic) {
            after_unit += 1;
        }
        let unit = bytes.get(after_number..after_unit).unwrap_or_default();
        let unit_nanos = match unit {
            b"" if components == 0 && after_unit == bytes.len() => NANOS_PER_SEC,
            b"ms" => NANOS_PER_MILLI,
            b"s" => NANOS_PER_SEC,
            b"m" => NANOS_PER_MIN,
            b"h" => NANOS_PER_HOUR,
            b"d" => NANOS_PER_DAY,
            _ => return Err(Failure::Malformed),
        };
        let nanos = number.times(unit_nanos)?;
        total = total.checked_add(nanos).ok_or(Failure::TooLarge)?;
        components += 1;
        pos = after_unit;
    }
    Ok(total)
}

/// A non-negative decimal `digits × 10^scale`, with no leading or trailing zero digits.
struct Decimal {
    digits: Vec<u8>,
    scale: i64,
}

impl Decimal {
    /// Reads `123`, `1.5`, `.5`, `5.`, `1e3`, `2.5E-1` starting at `pos`; returns the number and
    /// the position after it, or `None` when there is no digit. An `e` not followed by digits is
    /// left unread (it is then an unknown unit).
    fn scan(bytes: &[u8], mut pos: usize) -> Option<(Decimal, usize)> {
        let mut digits = Vec::new();
        let mut scale: i64 = 0;
        let mut seen_digit = false;
        while let Some(&b) = bytes.get(pos).filter(|b| b.is_ascii_digit()) {
            seen_digit = true;
            if !(digits.is_empty() && b == b'0') {
                digits.push(b - b'0');
            }
            pos += 1;
        }
        if bytes.get(pos) == Some(&b'.') {
            pos += 1;
            while let Some(&b) = bytes.get(pos).filter(|b| b.is_ascii_digit()) {
                seen_digit = true;
                if !(digits.is_empty() && b == b'0') {
                    digits.push(b - b'0');
                }
                scale -= 1;
                pos += 1;
            }
        }
        if !seen_digit {
            return None;
        }
        if matches!(bytes.get(pos), Some(b'e' | b'E')) {
            let mut cursor = pos + 1;
            let negative = match bytes.get(cursor) {
                Some(b'-') => {
                    cursor += 1;
                    true
                }
                Some(b'+') => {
                    cursor += 1;
                    false
                }
                _ => false,
            };
            if bytes.get(cursor).is_some_and(u8::is_ascii_digit) {
                let mut exponent: i64 = 0;
                while let Some(&b) = bytes.get(cursor).filter(|b| b.is_ascii_digit()) {
                    exponent = (exponent * 10 + i64::from(b - b'0')).min(1_000_000);
                    cursor += 1;
                }
                scale += if negative { -exponent } else { exponent };
                pos = cursor;
            }
        }
        while digits.last() == Some(&0) {
            digits.pop();
            scale += 1;
        }
        Some((Decimal { digits, scale }, pos))
    }

    /// `self × unit_nanos` as a whole number of nanoseconds, exactly.
    fn times(&self, unit_nanos: u128) -> Result<u128, Failure> {
        if self.digits.is_empty() {
            return Ok(0);
        }
        let len = self.digits.len() as i64;
        if self.digits.len() > MAX_DIGITS {
            // No representable duration needs this many digits: say which way it is wrong.
            return Err(if len + self.scale > 22 {
                Failure::TooLarge
            } else {
                Failure::TooPrecise
            });
        }
        let mantissa = self
            .digits
            .iter()
            .fold(0u128, |acc, &d| acc * 10 + u128::from(d));
        if self.scale >= 0 {
            let power = u32::try_from(self.scale)
                .ok()
                .and_then(|s| 10u128.checked_pow(s))
                .ok_or(Failure::TooLarge)?;
            mantissa
                .checked_mul(power)
                .and_then(|n| n.checked_mul(unit_nanos))
                .ok_or(Failure::TooLarge)
        } else {
            // mantissa × unit / 10^k must be whole: divide out what unit and 10^k share first.
            let divisor = u32::try_from(-self.scale)
                .ok()
                .and_then(|k| 10u128.checked_pow(k))
                .ok_or(Failure::TooPrecise)?;
            let shared = gcd(unit_nanos, divisor);
            let divisor = divisor / shared;
            if mantissa % divisor != 0 {
                return Err(Failure::TooPrecise);
            }
            (mantissa / divisor)
                .checked_mul(unit_nanos / shared)
                .ok_or(Failure::TooLarge)
        }
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_age_is_whole_seconds() {
        let d = Duration::from_secs(52 * 60 + 17) + Duration::from_nanos(178_492_986);
        assert_eq!(format_age(d), "52m17s");
        assert_eq!(format_age(Duration::from_millis(400)), "0s");
        assert_eq!(format_age(Duration::from_secs(26 * 3600)), "26h");
    }
    use super::*;
    use proptest::prelude::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse_duration("90s"), Ok(secs(90)));
        assert_eq!(parse_duration("30m"), Ok(secs(30 * 60)));
        assert_eq!(parse_duration("26h"), Ok(secs(26 * 3600)));
        assert_eq!(parse_duration("1d"), Ok(secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("45"), Ok(secs(45)));
        assert_eq!(parse_duration(" 45 "), Ok(secs(45)));
        assert_eq!(parse_duration("+5m"), Ok(secs(300)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("-0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn parses_decimals_and_exponents_exactly() {
        assert_eq!(parse_duration("1.5h"), Ok(secs(5400)));
        assert_eq!(parse_duration(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5.s"), Ok(secs(5)));
        assert_eq!(parse_duration("0.1s"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1e3s"), Ok(secs(1000)));
        assert_eq!(parse_duration("2.5E-1s"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.000001ms"), Ok(Duration::from_nanos(1)));
        assert_eq!(parse_duration("1s0.5ms"), Ok(Duration::new(1, 500_000)));
        assert_eq!(parse_duration("30m1h"), Ok(secs(5400)));
        assert_eq!(parse_duration("00001.5000000m"), Ok(secs(90)));
    }

    #[test]
    fn formats_the_shortest_exact_form() {
        assert_eq!(format_duration(secs(26 * 3600)), "26h");
        assert_eq!(format_duration(secs(5400)), "1h30m");
        assert_eq!(format_duration(secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(secs(86_400)), "1d");
        assert_eq!(format_duration(secs(2 * 86_400)), "2d");
        assert_eq!(format_duration(secs(86_400 + 1800)), "24h30m");
        assert_eq!(format_duration(secs(300)), "5m");
        assert_eq!(format_duration(secs(120)), "2m");
        assert_eq!(format_duration(secs(3600)), "1h");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format_duration(Duration::from_nanos(1)), "0.000001ms");
        assert_eq!(format_duration(Duration::new(1, 500_000)), "1s0.5ms");
    }

    #[test]
    fn error_messages_are_written_for_a_user() {
        let message = parse_duration("3x").unwrap_err().to_string();
        assert_eq!(
            message,
            r#"invalid duration "3x": expected a number followed by ms, s, m, h or d (e.g. 30m, 26h)"#
        );
        for bad in [
            "", "  ", "m", "h5", "1h30", "5 m", "1.2.3s", "5e", "1us", "5M", "١s", "..s",
        ] {
            assert!(
                matches!(parse_duration(bad), Err(DurationError::Malformed { .. })),
                "{bad:?} should be malformed"
            );
        }
        assert!(
            parse_duration("-5m")
                .unwrap_err()
                .to_string()
                .contains("cannot be negative")
        );
        assert!(
            parse_duration("1.0000000001s")
                .unwrap_err()
                .to_string()
                .contains("more precise than a nanosecond")
        );
    }

    #[test]
    fn huge_numbers_are_errors_not_panics() {
        assert_eq!(
            parse_duration("18446744073709551615s"),
            Ok(Duration::from_secs(u64::MAX))
        );
        for huge in [
            "18446744073709551616s",
            "99999999999999999999999d",
            "1e400s",
            "1e1000000000000h",
            "99999999999999999999999999999999999999999999999999999999999d",
            "18446744073709551615s18446744073709551615s",
        ] {
            assert!(
                matches!(parse_duration(huge), Err(DurationError::TooLarge { .. })),
                "{huge:?} should be too large, got {:?}",
                parse_duration(huge)
            );
        }
        assert!(matches!(
            parse_duration("1e-1000000000000s"),
            Err(DurationError::TooPrecise { .. })
        ));
        assert_eq!(parse_duration("0e999999999999s"), Ok(Duration::ZERO));
        assert_eq!(
            format_duration(Duration::MAX),
            "5124095576030431h15s999.999999ms"
        );
        assert_eq!(
            parse_duration(&format_duration(Duration::MAX)),
            Ok(Duration::MAX)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn parse_never_panics(text in ".*") {
            let _ = parse_duration(&text);
        }

        #[test]
        fn parse_never_panics_on_duration_like_text(text in "[-+ 0-9.eEmshdu]{0,40}") {
            let _ = parse_duration(&text);
        }

        #[test]
        fn whole_seconds_round_trip(s in any::<u64>()) {
            let d = Duration::from_secs(s);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn milliseconds_round_trip(s in 0u64..10_000_000, ms in 0u32..1000) {
            let d = Duration::new(s, ms * 1_000_000);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn any_duration_round_trips(s in any::<u64>(), ns in 0u32..1_000_000_000) {
            let d = Duration::new(s, ns);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn formatted_form_uses_only_unit_characters(s in any::<u64>(), ns in 0u32..1_000_000_000) {
            let text = format_duration(Duration::new(s, ns));
            prop_assert!(text.chars().all(|c| c.is_ascii_digit() || "msdh.".contains(c)), "{}", text);
        }
    }
}
