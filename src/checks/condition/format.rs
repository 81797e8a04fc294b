//! Writing a condition: the normalised human form (`Condition::human`, also `Display`), the
//! tag-safe form (`Condition::tag_value`), and the number, duration and string spellings they
//! share.

use std::time::Duration;

use crate::duration::format_duration;

use super::parse::{is_word_char, is_word_start};
use super::{Condition, Op, Operand, Unit};

impl Condition {
    /// The normalised human form: `<5m`, `==success`, `>0.5`, `in [0.5, 1]`, `<95%`.
    ///
    /// Durations are printed with [`format_duration`] (`<120s` → `<2m`, `<=60m` → `<=1h`),
    /// numbers in their shortest exact form (`1` not `1.0`; exponent form beyond 1e16 and below
    /// 1e-5), strings bare when they are a single word and quoted otherwise.
    /// `Condition::parse(&c.human())` always gives back a condition with the same meaning.
    pub fn human(&self) -> String {
        match &self.operand {
            Operand::Number { value, unit } => {
                format!("{}{}", self.op.symbol(), format_value(*value, *unit))
            }
            Operand::Text(text) => format!("{}{}", self.op.symbol(), format_text(text)),
            Operand::Range { low, high, unit } => format!(
                "in [{}, {}]",
                format_value(*low, *unit),
                format_value(*high, *unit)
            ),
        }
    }

    /// The tag-safe form for Datadog's `condition` tag (DESIGN.md section 3): `lt_5m`, `lte_1`,
    /// `eq_success`, `ne_failure`, `gt_0.5`, `gte_40000`, `in_0.5_1`, `lt_95pct`, `gt_neg1`.
    ///
    /// Only `[a-z0-9_.]`, starting with a letter, so Datadog keeps it as written. Numbers are
    /// written as in [`Condition::human`] with `-` as `neg` and `%` as `pct`; strings are
    /// lower-cased with every other character turned into `_`.
    pub fn tag_value(&self) -> String {
        match &self.operand {
            Operand::Number { value, unit } => {
                format!("{}_{}", self.op.tag(), tag_number(*value, *unit))
            }
            Operand::Text(text) => format!("{}_{}", self.op.tag(), tag_text(text)),
            Operand::Range { low, high, unit } => format!(
                "{}_{}_{}",
                Op::In.tag(),
                tag_number(*low, *unit),
                tag_number(*high, *unit)
            ),
        }
    }
}

/// The duration nearest to `seconds` (non-negative, finite) in whole nanoseconds, computed
/// exactly from the float's bits; saturates at `Duration::MAX`.
///
/// For every duration `d`, `nearest_duration(duration_seconds(d))` formats to a text that parses
/// back to the same `f64`, which is what makes `parse(human())` exact.
fn nearest_duration(seconds: f64) -> Duration {
    if seconds.is_nan() || seconds <= 0.0 {
        return Duration::ZERO;
    }
    if !seconds.is_finite() {
        return Duration::MAX;
    }
    let bits = seconds.to_bits();
    let exponent_bits = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    let (mantissa, exponent) = if exponent_bits == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), exponent_bits - 1075)
    };
    // seconds = mantissa × 2^exponent, so nanoseconds = mantissa × 1e9 × 2^exponent.
    let scaled = u128::from(mantissa) * 1_000_000_000;
    let nanos = if exponent >= 0 {
        if exponent > 40 {
            return Duration::MAX;
        }
        scaled << exponent
    } else {
        let shift = exponent.unsigned_abs();
        if shift >= 127 {
            0
        } else {
            let quotient = scaled >> shift;
            let remainder = scaled & ((1u128 << shift) - 1);
            let half = 1u128 << (shift - 1);
            if remainder > half || (remainder == half && quotient & 1 == 1) {
                quotient + 1
            } else {
                quotient
            }
        }
    };
    match (
        u64::try_from(nanos / 1_000_000_000),
        u32::try_from(nanos % 1_000_000_000),
    ) {
        (Ok(secs), Ok(sub)) => Duration::new(secs, sub),
        _ => Duration::MAX,
    }
}

/// The next float above `x` (`f64::next_up` is newer than the crate's MSRV).
pub(super) fn float_above(x: f64) -> f64 {
    if x.is_nan() || x == f64::INFINITY {
        x
    } else if x == 0.0 {
        f64::from_bits(1)
    } else if x > 0.0 {
        f64::from_bits(x.to_bits() + 1)
    } else {
        f64::from_bits(x.to_bits() - 1)
    }
}

pub(super) fn float_below(x: f64) -> f64 {
    -float_above(-x)
}

/// Shortest exact text of a finite number: `1`, `0.5`, `-3`, `1e20`, `1.5e-7`.
fn format_number(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 {
        "0".to_string()
    } else if (1e-5..1e16).contains(&magnitude) {
        format!("{value}")
    } else {
        format!("{value:e}")
    }
}

pub(super) fn format_value(value: f64, unit: Unit) -> String {
    match unit {
        Unit::None => format_number(value),
        Unit::Percent => format!("{}%", format_number(value)),
        Unit::Seconds => {
            let sign = if value < 0.0 { "-" } else { "" };
            format!("{sign}{}", format_duration(nearest_duration(value.abs())))
        }
    }
}

fn tag_number(value: f64, unit: Unit) -> String {
    format_value(value, unit)
        .replace('-', "neg")
        .replace('%', "pct")
}

/// The inverse of [`tag_number`], giving text for the parser.
pub(super) fn untag(tag: &str) -> String {
    tag.replace("neg", "-").replace("pct", "%")
}

pub(super) fn tag_text(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A string as the parser reads it back: bare when it is one word, else double-quoted.
pub(super) fn format_text(text: &str) -> String {
    let mut chars = text.chars();
    let bare = chars.next().is_some_and(is_word_start) && chars.all(is_word_char);
    if bare {
        return text.to_string();
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}
