//! The condition grammar: how a health-matrix row says what "healthy" means (`<5m`, `==success`,
//! `>=40000`, `< 95%`, `in [0.5, 1]`), and how an observed value is judged against it.
//!
//! This module owns the three spellings of one condition and keeps them in step:
//!
//! - the text a person writes in config (`< 5m`), parsed once into a [`Condition`] with errors
//!   that say what is wrong and at which column, so `infra-health validate` can point at it;
//! - the normalised human form ([`Condition::human`], also `Display`: `<5m`), shown in the
//!   terminal, on the board and in dashboard titles;
//! - the tag-safe form ([`Condition::tag_value`]: `lt_5m`, `eq_success`, `in_0.5_1`) written into
//!   Datadog's `condition` tag. It exists because Datadog rewrites the characters it does not
//!   allow in tags — `<`, `>` and `=` among them — to `_`, so `condition:<5m` and `condition:>5m`
//!   would both arrive as `condition:_5m` (DESIGN.md section 3).
//!   [`Condition::from_tag_value`] reads it back.
//!
//! Grammar: `OP VALUE` with `OP` one of `> >= < <= == !=`, or a range `in [low, high]` (both ends
//! included). A value is a number (`5`, `-1`, `0.5`, `1e6`), a number with a duration unit
//! (`ms s m h d`, compounds such as `1h30m`; normalised to seconds), a percentage (`95%`, kept as
//! the number written, so it compares against 95) or, with `==`/`!=` only, a word (`success`) or
//! a quoted string (`"timed out"`), compared case-insensitively.
//!
//! Comparisons are exact: `<1` fails at exactly 1 (the Python prototype treated `<` as `<=`).
//! Evaluation never guesses: NaN, infinite values, unsummarised samples and type mismatches are
//! [`EvalError`]s, which the caller reports as `unknown` rather than pass or fail.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::duration::{DurationError, format_duration, parse_duration};
use crate::observation::Value;

/// A comparison operator. `In` is the operator of a range condition (`in [a, b]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
    In,
}

impl Op {
    /// The operator as written in config: `>`, `>=`, `<`, `<=`, `==`, `!=`, `in`.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::In => "in",
        }
    }

    /// The operator as written in the tag-safe form: `gt`, `gte`, `lt`, `lte`, `eq`, `ne`, `in`.
    pub fn tag(self) -> &'static str {
        match self {
            Op::Gt => "gt",
            Op::Ge => "gte",
            Op::Lt => "lt",
            Op::Le => "lte",
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::In => "in",
        }
    }

    fn from_tag(tag: &str) -> Option<Op> {
        [Op::Gt, Op::Ge, Op::Lt, Op::Le, Op::Eq, Op::Ne, Op::In]
            .into_iter()
            .find(|op| op.tag() == tag)
    }

    /// `value OP threshold`, exactly (no tolerance: `1 < 1` is false).
    fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
            Op::Eq => value == threshold,
            Op::Ne => value != threshold,
            Op::In => false,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// What the number of an operand means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// A plain number.
    None,
    /// The operand had a duration unit; its value is in seconds, so the observed value must be
    /// seconds too.
    Seconds,
    /// The operand was written with `%`; the value is the number written (`95%` → 95).
    Percent,
}

/// The right-hand side of a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Number {
        value: f64,
        unit: Unit,
    },
    /// A word or quoted string; only with `==` and `!=`.
    Text(String),
    /// `in [low, high]`, both ends included; `low <= high`.
    Range {
        low: f64,
        high: f64,
        unit: Unit,
    },
}

/// A parsed, validated condition. Build it with [`Condition::parse`] (or `str::parse`) or
/// [`Condition::from_tag_value`]; every condition that exists is valid.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    op: Op,
    operand: Operand,
    /// The text it was parsed from (trimmed), kept for messages.
    text: String,
}

/// Why a condition (or a condition tag) could not be read: the text, what was wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid condition {text:?}: {kind}")]
pub struct ConditionError {
    text: String,
    kind: ConditionErrorKind,
}

impl ConditionError {
    fn new(text: &str, kind: ConditionErrorKind) -> Self {
        ConditionError {
            text: text.to_string(),
            kind,
        }
    }

    /// The condition text that failed (trimmed).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// What was wrong.
    pub fn kind(&self) -> &ConditionErrorKind {
        &self.kind
    }

    /// The 1-based column (in characters of the trimmed text) where the problem is, if it has
    /// one place.
    pub fn column(&self) -> Option<usize> {
        use ConditionErrorKind as K;
        match &self.kind {
            K::MissingOperator { column, .. }
            | K::ExpectedValue { column, .. }
            | K::Expected { column, .. }
            | K::UnknownUnit { column, .. }
            | K::BadDuration { column, .. }
            | K::NumberTooLarge { column, .. }
            | K::NumberTooSmall { column, .. }
            | K::UnterminatedString { column }
            | K::TrailingInput { column, .. }
            | K::RangeNeedsNumbers { column, .. } => Some(*column),
            K::UnknownOperator { .. } | K::StringNeedsEquality { .. } => Some(1),
            K::Empty
            | K::RangeUnitMismatch { .. }
            | K::RangeReversed { .. }
            | K::InvalidTag { .. } => None,
        }
    }
}

/// The ways a condition can be wrong. Columns are 1-based, counted in characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConditionErrorKind {
    #[error("it is empty; write an operator and a value, e.g. <5m, ==success or in [0.5, 1]")]
    Empty,
    #[error(
        "missing operator at column {column}; start with one of > >= < <= == != (e.g. <5m), \
         or write a range as in [low, high]{}",
        tag_hint(.tag_form_of)
    )]
    MissingOperator {
        column: usize,
        /// Set when the text is a condition tag value (`lt_5m`): the condition it stands for.
        tag_form_of: Option<String>,
    },
    #[error("unknown operator {op:?}; use one of > >= < <= == !={}", did_you_mean(.suggestion))]
    UnknownOperator {
        op: String,
        suggestion: Option<&'static str>,
    },
    #[error("expected a number, duration or word after {after:?} at column {column}")]
    ExpectedValue { after: String, column: usize },
    #[error("expected {expected:?} {context} at column {column}, found {found}")]
    Expected {
        expected: &'static str,
        context: &'static str,
        found: String,
        column: usize,
    },
    #[error(
        "unknown unit {unit:?} at column {column}; use ms, s, m, h or d for durations, \
         or % for percentages"
    )]
    UnknownUnit { unit: String, column: usize },
    #[error("{error} (at column {column})")]
    BadDuration { error: DurationError, column: usize },
    #[error("number {number} at column {column} is too large")]
    NumberTooLarge { number: String, column: usize },
    #[error(
        "number {number} at column {column} is too small to be told apart from 0 (it would \
         be read as 0); write 0, or a number no smaller than 5e-324 in size"
    )]
    NumberTooSmall { number: String, column: usize },
    #[error("unterminated string starting at column {column}; close it with the same quote")]
    UnterminatedString { column: usize },
    #[error("string values only work with == and !=, not {op:?}")]
    StringNeedsEquality { op: String },
    #[error("unexpected {found:?} at column {column} after the value{hint}")]
    TrailingInput {
        found: String,
        column: usize,
        hint: &'static str,
    },
    #[error(
        "range ends must be numbers, durations or percentages; found {found} at column {column}"
    )]
    RangeNeedsNumbers { found: String, column: usize },
    #[error("both ends of a range need the same unit, found {low} and {high}")]
    RangeUnitMismatch { low: String, high: String },
    #[error("range low {low} is above high {high}")]
    RangeReversed { low: String, high: String },
    #[error(
        "not a condition tag ({reason}); expected a form such as lt_5m, eq_success or in_0.5_1"
    )]
    InvalidTag { reason: String },
}

fn tag_hint(tag_form_of: &Option<String>) -> String {
    tag_form_of
        .as_ref()
        .map(|c| format!(" ({c} written in tag form; write {c})"))
        .unwrap_or_default()
}

fn did_you_mean(suggestion: &Option<&'static str>) -> String {
    suggestion
        .map(|s| format!(" (did you mean {s:?}?)"))
        .unwrap_or_default()
}

/// Why a value could not be judged. Each maps to `unknown`, never to pass or fail.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("the value is not a finite number (NaN or infinite)")]
    NotANumber,
    #[error(
        "the value is a set of samples; the check must compare one summary of them (p50, p90, …)"
    )]
    NeedsSummary,
    #[error("condition {condition} needs {expected}, but the value is {found}")]
    TypeMismatch {
        condition: String,
        expected: &'static str,
        found: String,
    },
}

impl EvalError {
    /// A short stable name, usable as an `error_type` tag.
    pub fn error_type(&self) -> &'static str {
        match self {
            EvalError::NotANumber => "not_a_number",
            EvalError::NeedsSummary => "needs_summary",
            EvalError::TypeMismatch { .. } => "type_mismatch",
        }
    }
}

impl Condition {
    /// Parses a condition such as `<5m`, `>= 40000`, `==success`, `!= "timed out"`, `< 95%` or
    /// `in [0.5, 1]`. Surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Condition, ConditionError> {
        Parser::new(text.trim()).condition()
    }

    /// The operator; `Op::In` for a range.
    pub fn op(&self) -> Op {
        self.op
    }

    pub fn operand(&self) -> &Operand {
        &self.operand
    }

    /// The text this condition was read from (trimmed): the config text, or the tag for
    /// [`Condition::from_tag_value`].
    pub fn text(&self) -> &str {
        &self.text
    }

    /// True when the operand is a duration, so callers know the observed value must be seconds.
    pub fn is_duration(&self) -> bool {
        matches!(
            self.operand,
            Operand::Number {
                unit: Unit::Seconds,
                ..
            } | Operand::Range {
                unit: Unit::Seconds,
                ..
            }
        )
    }

    /// True when both conditions mean the same thing: same operator and operand, strings compared
    /// case-insensitively. (`==` also compares the original text.)
    pub fn same_meaning(&self, other: &Condition) -> bool {
        self.op == other.op
            && match (&self.operand, &other.operand) {
                (Operand::Text(a), Operand::Text(b)) => text_equal(a, b),
                (a, b) => a == b,
            }
    }

    /// Judges `value`: `Ok(true)` when the condition holds.
    ///
    /// A numeric condition compares a `Number`, a `Bool` (true = 1, false = 0) or a `Text` that
    /// reads as a number (for a `%` condition `"95%"`, for a duration condition `"5m"` too).
    /// A string condition compares `Text` case-insensitively, and a `Bool` as `true`/`false`.
    /// NaN or infinite → [`EvalError::NotANumber`]; `Samples` → [`EvalError::NeedsSummary`];
    /// anything else → [`EvalError::TypeMismatch`].
    pub fn evaluate(&self, value: &Value) -> Result<bool, EvalError> {
        match &self.operand {
            Operand::Text(expected) => {
                let found = match value {
                    Value::Text(text) => text.as_str(),
                    Value::Bool(true) => "true",
                    Value::Bool(false) => "false",
                    Value::Samples(_) => return Err(EvalError::NeedsSummary),
                    Value::Number(_) => return Err(self.mismatch("text", value)),
                };
                let equal = text_equal(found, expected);
                Ok(if self.op == Op::Ne { !equal } else { equal })
            }
            Operand::Number {
                value: threshold,
                unit,
            } => {
                let observed = self.numeric(value, *unit)?;
                Ok(self.op.holds(observed, *threshold))
            }
            Operand::Range { low, high, unit } => {
                let observed = self.numeric(value, *unit)?;
                Ok(*low <= observed && observed <= *high)
            }
        }
    }

    fn numeric(&self, value: &Value, unit: Unit) -> Result<f64, EvalError> {
        let number = match value {
            Value::Number(n) => *n,
            Value::Bool(b) => {
                if *b {
                    1.0
                } else {
                    0.0
                }
            }
            Value::Samples(_) => return Err(EvalError::NeedsSummary),
            Value::Text(text) => {
                number_from_text(text, unit).ok_or_else(|| self.mismatch("a number", value))?
            }
        };
        if number.is_finite() {
            Ok(number)
        } else {
            Err(EvalError::NotANumber)
        }
    }

    fn mismatch(&self, expected: &'static str, value: &Value) -> EvalError {
        let found = match value {
            Value::Number(n) => format!("the number {n}"),
            Value::Bool(b) => format!("the boolean {b}"),
            Value::Text(t) => format!("the text {t:?}"),
            Value::Samples(s) => format!("{} samples", s.len()),
        };
        EvalError::TypeMismatch {
            condition: self.human(),
            expected,
            found,
        }
    }

    /// Checks that `warn` is a looser band than this condition: compared in the same unit, and
    /// passing every value this condition passes (a value that fails the condition but passes
    /// `warn` is `warn`). A `warn` that is stricter, points the other way or is in other units
    /// could never apply, or would turn passing rows into warnings: the error says which.
    pub fn check_warn(&self, warn: &Condition) -> Result<(), String> {
        let unit_of = |c: &Condition| match &c.operand {
            Operand::Number { unit, .. } | Operand::Range { unit, .. } => Some(*unit),
            Operand::Text(_) => None,
        };
        let name = |u: Option<Unit>| match u {
            None => "a word",
            Some(Unit::None) => "a plain number",
            Some(Unit::Seconds) => "a duration",
            Some(Unit::Percent) => "a percentage",
        };
        let (cu, wu) = (unit_of(self), unit_of(warn));
        if cu != wu {
            return Err(format!(
                "warn {} compares {} but the condition {} compares {}; write warn in the \
                 condition's unit (e.g. condition \"<5m\" with warn \"<8m\")",
                warn.human(),
                name(wu),
                self.human(),
                name(cu)
            ));
        }
        // Candidate values where the two can differ: every threshold and the floats around it,
        // the extremes, and for words both words and a third one.
        let mut candidates: Vec<Value> = Vec::new();
        match cu {
            Some(_) => {
                let mut points = vec![0.0, f64::MAX, f64::MIN];
                for c in [self, warn] {
                    match &c.operand {
                        Operand::Number { value, .. } => points.push(*value),
                        Operand::Range { low, high, .. } => points.extend([*low, *high]),
                        Operand::Text(_) => {}
                    }
                }
                for x in points.clone() {
                    points.extend([float_above(x), float_below(x)]);
                }
                candidates.extend(points.into_iter().map(Value::Number));
            }
            None => {
                for c in [self, warn] {
                    if let Operand::Text(t) = &c.operand {
                        candidates.push(Value::Text(t.clone()));
                    }
                }
                candidates.push(Value::Text("\u{0}neither".to_string()));
            }
        }
        let counterexample = candidates
            .iter()
            .find(|v| self.evaluate(v) == Ok(true) && warn.evaluate(v) == Ok(false));
        let Some(example) = counterexample else {
            return Ok(());
        };
        let shown = match (example, cu) {
            (Value::Number(x), Some(unit)) => format_value(*x, unit),
            (Value::Text(t), _) if t.starts_with('\u{0}') => "another word".to_string(),
            (Value::Text(t), _) => format_text(t),
            _ => "a value".to_string(),
        };
        let upper = |op: Op| matches!(op, Op::Lt | Op::Le);
        let lower = |op: Op| matches!(op, Op::Gt | Op::Ge);
        let how = if (upper(self.op) && lower(warn.op)) || (lower(self.op) && upper(warn.op)) {
            "points the other way from"
        } else {
            "is stricter than"
        };
        Err(format!(
            "warn {} {how} the condition {}: {shown} passes the condition but not warn. warn \
             is the looser band (a value that fails the condition but passes warn shows as \
             warn), so it must pass every value the condition passes, e.g. condition \"<5m\" \
             with warn \"<8m\"",
            warn.human(),
            self.human()
        ))
    }

    /// The word of a `==`/`!=` condition when it has characters the tag-safe form cannot keep
    /// apart (outside ASCII): `==ü` and `==é` would both be `eq__`.
    pub fn non_ascii_word(&self) -> Option<&str> {
        match &self.operand {
            Operand::Text(t) if !t.is_ascii() => Some(t),
            _ => None,
        }
    }

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

    /// Reads a [`Condition::tag_value`] back. The result evaluates exactly like the original for
    /// every numeric input; strings come back in their tag form (lower-cased, `_` for other
    /// characters), and a string whose tag form reads as a number (`=="5"` → `eq_5`) comes back
    /// as that number.
    pub fn from_tag_value(tag: &str) -> Result<Condition, ConditionError> {
        let tag = tag.trim();
        let invalid =
            |reason: String| ConditionError::new(tag, ConditionErrorKind::InvalidTag { reason });
        let Some((op_tag, rest)) = tag.split_once('_') else {
            return Err(invalid("no \"_\" after the operator".to_string()));
        };
        let op = Op::from_tag(op_tag).ok_or_else(|| {
            invalid(format!(
                "unknown operator {op_tag:?}; use gt, gte, lt, lte, eq, ne or in"
            ))
        })?;
        let from_parsed = |human: String| {
            Condition::parse(&human)
                .map(|c| Condition {
                    text: tag.to_string(),
                    ..c
                })
                .map_err(|e| invalid(e.kind.to_string()))
        };
        if op == Op::In {
            let mut ends = rest.split('_');
            let (Some(low), Some(high), None) = (ends.next(), ends.next(), ends.next()) else {
                return Err(invalid(
                    "a range tag has exactly two ends, e.g. in_0.5_1".to_string(),
                ));
            };
            return from_parsed(format!("in [{}, {}]", untag(low), untag(high)));
        }
        match from_parsed(format!("{}{}", op.symbol(), untag(rest))) {
            Ok(condition) if !matches!(condition.operand, Operand::Text(_)) => Ok(condition),
            _ if matches!(op, Op::Eq | Op::Ne) => Ok(Condition {
                op,
                operand: Operand::Text(rest.to_string()),
                text: tag.to_string(),
            }),
            Ok(_) => Err(invalid(format!(
                "{:?} needs a number after {op_tag}_",
                rest
            ))),
            Err(error) => Err(error),
        }
    }
}

impl FromStr for Condition {
    type Err = ConditionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Condition::parse(text)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.human())
    }
}

/// Serialised as the human form, which always parses back to the same meaning.
impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.human())
    }
}

/// Deserialised from a string with [`Condition::parse`]; the error message is the parse error.
impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Condition::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn text_equal(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

/// A number from observed text, for a numeric condition: `"123"`, and per unit `"95%"` or `"5m"`.
/// NaN and infinity read as such (and are then reported as not a number).
fn number_from_text(text: &str, unit: Unit) -> Option<f64> {
    let text = text.trim();
    if let Ok(number) = text.parse::<f64>() {
        return Some(number);
    }
    match unit {
        Unit::Percent => text
            .strip_suffix('%')
            .and_then(|n| n.trim_end().parse::<f64>().ok()),
        Unit::Seconds => {
            let (negative, body) = match text.strip_prefix('-') {
                Some(body) => (true, body),
                None => (false, text),
            };
            let seconds = duration_seconds(parse_duration(body).ok()?);
            Some(if negative { -seconds } else { seconds })
        }
        Unit::None => None,
    }
}

/// A duration in seconds, correctly rounded (so the exact decimal value round-trips).
fn duration_seconds(d: Duration) -> f64 {
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
        .parse::<f64>()
        .unwrap_or(d.as_secs_f64())
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
fn float_above(x: f64) -> f64 {
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

fn float_below(x: f64) -> f64 {
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

fn format_value(value: f64, unit: Unit) -> String {
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
fn untag(tag: &str) -> String {
    tag.replace("neg", "-").replace("pct", "%")
}

fn tag_text(text: &str) -> String {
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

fn is_word_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/')
}

/// A string as the parser reads it back: bare when it is one word, else double-quoted.
fn format_text(text: &str) -> String {
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

/// A short, printable excerpt of what was found at a position, for error messages.
fn describe_found(found: Option<char>, rest: &str) -> String {
    match found {
        None => "the end of the text".to_string(),
        Some(_) => format!("{:?}", excerpt(rest)),
    }
}

fn excerpt(text: &str) -> String {
    const MAX: usize = 20;
    let mut out: String = text.chars().take(MAX).collect();
    if text.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

/// A hand-written scanner over the characters of the trimmed text. It works on a `Vec<char>`
/// so that positions are columns and no string is ever sliced at a byte offset.
struct Parser<'a> {
    text: &'a str,
    chars: Vec<char>,
    pos: usize,
}

/// A number with its unit as read from the text, and how it was written (for messages).
struct Quantity {
    value: f64,
    unit: Unit,
    written: String,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            text,
            chars: text.chars().collect(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn column(&self) -> usize {
        self.pos + 1
    }

    fn collect(&self, from: usize, to: usize) -> String {
        self.chars
            .get(from..to)
            .map(|cs| cs.iter().collect())
            .unwrap_or_default()
    }

    fn rest(&self) -> String {
        self.collect(self.pos, self.chars.len())
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn error(&self, kind: ConditionErrorKind) -> ConditionError {
        ConditionError::new(self.text, kind)
    }

    fn condition(mut self) -> Result<Condition, ConditionError> {
        let (op, operand) = match self.peek() {
            None => return Err(self.error(ConditionErrorKind::Empty)),
            Some('<' | '>' | '=' | '!') => {
                let op = self.operator()?;
                let operand = self.value(op)?;
                if matches!(operand, Operand::Text(_)) && !matches!(op, Op::Eq | Op::Ne) {
                    return Err(self.error(ConditionErrorKind::StringNeedsEquality {
                        op: op.symbol().to_string(),
                    }));
                }
                (op, operand)
            }
            Some(_) if self.at_keyword_in() => (Op::In, self.range()?),
            Some(_) => {
                // Is it a tag value (`lt_5m`)? from_tag_value only parses texts that start with an
                // operator or `in [`, so this never comes back here.
                let tag_form_of = Condition::from_tag_value(self.text).ok().map(|c| c.human());
                return Err(self.error(ConditionErrorKind::MissingOperator {
                    column: self.column(),
                    tag_form_of,
                }));
            }
        };
        self.end(matches!(operand, Operand::Number { .. }))?;
        Ok(Condition {
            op,
            operand,
            text: self.text.to_string(),
        })
    }

    /// Reads the operator at the start. `<<5m` reads `<` (and then fails on the value);
    /// `=`, `=>`, `=<`, `<>` and `!` are unknown operators with a suggestion.
    fn operator(&mut self) -> Result<Op, ConditionError> {
        let first = self.peek();
        let second = self.peek_at(1);
        let unknown = |op: &str, suggestion: &'static str| {
            self.error(ConditionErrorKind::UnknownOperator {
                op: op.to_string(),
                suggestion: Some(suggestion),
            })
        };
        let (op, len) = match (first, second) {
            (Some('<'), Some('>')) => return Err(unknown("<>", "!=")),
            (Some('='), Some('>')) => return Err(unknown("=>", ">=")),
            (Some('='), Some('<')) => return Err(unknown("=<", "<=")),
            (Some('>'), Some('=')) => (Op::Ge, 2),
            (Some('<'), Some('=')) => (Op::Le, 2),
            (Some('='), Some('=')) => (Op::Eq, 2),
            (Some('!'), Some('=')) => (Op::Ne, 2),
            (Some('>'), _) => (Op::Gt, 1),
            (Some('<'), _) => (Op::Lt, 1),
            (Some('='), _) => return Err(unknown("=", "==")),
            _ => return Err(unknown("!", "!=")),
        };
        self.pos += len;
        Ok(op)
    }

    /// Reads the value after an operator: a number (with unit), a quoted string or a word.
    fn value(&mut self, op: Op) -> Result<Operand, ConditionError> {
        self.skip_whitespace();
        let expected_value = |parser: &Self| {
            parser.error(ConditionErrorKind::ExpectedValue {
                after: op.symbol().to_string(),
                column: parser.column(),
            })
        };
        match self.peek() {
            Some(c) if c.is_ascii_digit() || matches!(c, '.' | '+' | '-') => {
                match self.quantity()? {
                    Some(q) => Ok(Operand::Number {
                        value: q.value,
                        unit: q.unit,
                    }),
                    None => Err(expected_value(self)),
                }
            }
            Some(quote @ ('"' | '\'')) => self.quoted(quote).map(Operand::Text),
            Some(c) if is_word_start(c) => {
                let start = self.pos;
                while self.peek().is_some_and(is_word_char) {
                    self.pos += 1;
                }
                Ok(Operand::Text(self.collect(start, self.pos)))
            }
            _ => Err(expected_value(self)),
        }
    }

    /// Reads `[+-]digits[.digits][e[+-]digits]` and a unit suffix. `None` (nothing consumed)
    /// when there is no digit, so the caller can say what it expected.
    fn quantity(&mut self) -> Result<Option<Quantity>, ConditionError> {
        let start = self.pos;
        let negative = match self.peek() {
            Some('-') => {
                self.pos += 1;
                true
            }
            Some('+') => {
                self.pos += 1;
                false
            }
            _ => false,
        };
        let digits_start = self.pos;
        let mut seen_digit = false;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
            seen_digit = true;
        }
        if self.peek() == Some('.') {
            self.pos += 1;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
                seen_digit = true;
            }
        }
        if !seen_digit {
            self.pos = start;
            return Ok(None);
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let sign = usize::from(matches!(self.peek_at(1), Some('+' | '-')));
            if self.peek_at(1 + sign).is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1 + sign;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
            }
        }
        let digits = self.collect(digits_start, self.pos);
        let unit_start = self.pos;
        while self
            .peek()
            .is_some_and(|c| !c.is_whitespace() && c != ',' && c != ']')
        {
            self.pos += 1;
        }
        let suffix = self.collect(unit_start, self.pos);
        let written = self.collect(start, self.pos);
        let start_column = start + 1;
        let sign = if negative { "-" } else { "" };
        let number = || {
            let n = format!("{sign}{digits}")
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .ok_or_else(|| {
                    self.error(ConditionErrorKind::NumberTooLarge {
                        number: format!("{sign}{digits}"),
                        column: start_column,
                    })
                })?;
            // Underflow: `1e-400` parses to 0, which is not what was written.
            let mantissa = digits.split(['e', 'E']).next().unwrap_or("");
            let written_zero = !mantissa.chars().any(|c| matches!(c, '1'..='9'));
            if n == 0.0 && !written_zero {
                return Err(self.error(ConditionErrorKind::NumberTooSmall {
                    number: format!("{sign}{digits}"),
                    column: start_column,
                }));
            }
            Ok(n)
        };
        let (value, unit) = match suffix.as_str() {
            "" => (number()?, Unit::None),
            "%" => (number()?, Unit::Percent),
            unit if unit.chars().all(|c| c.is_alphabetic() || c == '%')
                && !matches!(unit, "ms" | "s" | "m" | "h" | "d") =>
            {
                return Err(self.error(ConditionErrorKind::UnknownUnit {
                    unit: unit.to_string(),
                    column: unit_start + 1,
                }));
            }
            _ => match parse_duration(&format!("{digits}{suffix}")) {
                Ok(duration) => {
                    let seconds = duration_seconds(duration);
                    (if negative { -seconds } else { seconds }, Unit::Seconds)
                }
                Err(error) => {
                    return Err(self.error(ConditionErrorKind::BadDuration {
                        error,
                        column: start_column,
                    }));
                }
            },
        };
        // -0 is 0: it prints as 0 and compares the same.
        let value = if value == 0.0 { 0.0 } else { value };
        Ok(Some(Quantity {
            value,
            unit,
            written,
        }))
    }

    /// Reads a string in `"…"` or `'…'`; a backslash takes the next character literally.
    fn quoted(&mut self, quote: char) -> Result<String, ConditionError> {
        let column = self.column();
        self.pos += 1;
        let mut text = String::new();
        loop {
            let c = self
                .peek()
                .ok_or_else(|| self.error(ConditionErrorKind::UnterminatedString { column }))?;
            self.pos += 1;
            if c == quote {
                return Ok(text);
            }
            if c == '\\' {
                let escaped = self
                    .peek()
                    .ok_or_else(|| self.error(ConditionErrorKind::UnterminatedString { column }))?;
                self.pos += 1;
                text.push(escaped);
            } else {
                text.push(c);
            }
        }
    }

    /// `in` as a keyword (any case), followed by whitespace or `[`.
    fn at_keyword_in(&self) -> bool {
        matches!(
            (self.peek(), self.peek_at(1)),
            (Some('i' | 'I'), Some('n' | 'N'))
        ) && self
            .peek_at(2)
            .is_none_or(|c| c.is_whitespace() || c == '[' || c == '(')
    }

    fn expect(
        &mut self,
        expected: char,
        label: &'static str,
        context: &'static str,
    ) -> Result<(), ConditionError> {
        self.skip_whitespace();
        if self.peek() == Some(expected) {
            self.pos += 1;
            return Ok(());
        }
        Err(self.error(ConditionErrorKind::Expected {
            expected: label,
            context,
            found: describe_found(self.peek(), &self.rest()),
            column: self.column(),
        }))
    }

    /// Reads `in [low, high]` after the keyword position.
    fn range(&mut self) -> Result<Operand, ConditionError> {
        self.pos += 2;
        self.expect(
            '[',
            "[",
            "after \"in\" (ranges are written in [low, high], both ends included)",
        )?;
        let low = self.range_end()?;
        self.expect(',', ",", "between the ends of the range")?;
        let high = self.range_end()?;
        self.expect(']', "]", "to close the range")?;
        if low.unit != high.unit {
            return Err(self.error(ConditionErrorKind::RangeUnitMismatch {
                low: low.written,
                high: high.written,
            }));
        }
        if low.value > high.value {
            return Err(self.error(ConditionErrorKind::RangeReversed {
                low: format_value(low.value, low.unit),
                high: format_value(high.value, high.unit),
            }));
        }
        Ok(Operand::Range {
            low: low.value,
            high: high.value,
            unit: low.unit,
        })
    }

    fn range_end(&mut self) -> Result<Quantity, ConditionError> {
        self.skip_whitespace();
        match self.quantity()? {
            Some(quantity) => Ok(quantity),
            None => Err(self.error(ConditionErrorKind::RangeNeedsNumbers {
                found: describe_found(self.peek(), &self.rest()),
                column: self.column(),
            })),
        }
    }

    /// Only whitespace may follow the value. After a number, a word that follows is most likely
    /// a unit written apart from it (`5 m`, `5 minutes`), so the message says where units go.
    fn end(&mut self, after_number: bool) -> Result<(), ConditionError> {
        self.skip_whitespace();
        if self.peek().is_none() {
            return Ok(());
        }
        let rest = self.rest();
        let first_word: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
        let hint = if after_number && first_word.chars().all(|c| c.is_alphabetic() || c == '%') {
            "; units go right after the number: ms, s, m, h, d or % (e.g. 5m, 95%)"
        } else {
            ""
        };
        Err(self.error(ConditionErrorKind::TrailingInput {
            found: excerpt(&rest),
            column: self.column(),
            hint,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cond(text: &str) -> Condition {
        match Condition::parse(text) {
            Ok(c) => c,
            Err(e) => panic!("{text:?} should parse: {e}"),
        }
    }

    /// The next float above `x` (`f64::next_up` is newer than the crate's MSRV).
    fn next_up(x: f64) -> f64 {
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

    fn next_down(x: f64) -> f64 {
        -next_up(-x)
    }

    fn num(n: f64) -> Value {
        Value::Number(n)
    }

    fn err_message(text: &str) -> String {
        match Condition::parse(text) {
            Ok(c) => panic!("{text:?} should not parse, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// The default health matrix (DESIGN.md section 8): every condition parses, prints and tags
    /// as expected and judges values on both sides of its threshold correctly.
    #[test]
    fn default_matrix_conditions() {
        type Case = (&'static str, &'static str, &'static str, Vec<(Value, bool)>);
        let text = |s: &str| Value::Text(s.to_string());
        let cases: Vec<Case> = vec![
            (
                "==success",
                "==success",
                "eq_success",
                vec![
                    (text("success"), true),
                    (text("SUCCESS"), true),
                    (text("failure"), false),
                ],
            ),
            (
                "<2",
                "<2",
                "lt_2",
                vec![(num(1.0), true), (num(2.0), false)],
            ),
            (
                "<10",
                "<10",
                "lt_10",
                vec![(num(9.0), true), (num(10.0), false)],
            ),
            (
                "<5m",
                "<5m",
                "lt_5m",
                vec![(num(299.9), true), (num(300.0), false)],
            ),
            (
                "<8m",
                "<8m",
                "lt_8m",
                vec![(num(479.0), true), (num(480.0), false)],
            ),
            (
                "<2m",
                "<2m",
                "lt_2m",
                vec![(num(119.0), true), (num(120.0), false)],
            ),
            (
                "<5",
                "<5",
                "lt_5",
                vec![(num(4.0), true), (num(5.0), false)],
            ),
            (
                "<7",
                "<7",
                "lt_7",
                vec![(num(6.0), true), (num(7.0), false)],
            ),
            (
                "<=1",
                "<=1",
                "lte_1",
                vec![(num(0.0), true), (num(1.0), true), (num(2.0), false)],
            ),
            (
                "<48h",
                "<2d",
                "lt_2d",
                vec![(num(172_799.0), true), (num(172_800.0), false)],
            ),
            (
                "<1",
                "<1",
                "lt_1",
                vec![(num(0.0), true), (num(1.0), false)],
            ),
            (
                ">=1",
                ">=1",
                "gte_1",
                vec![
                    (num(1.0), true),
                    (num(0.0), false),
                    (Value::Bool(true), true),
                    (Value::Bool(false), false),
                ],
            ),
            (
                ">0.5",
                ">0.5",
                "gt_0.5",
                vec![(num(0.5), false), (num(0.51), true)],
            ),
            (
                ">40000",
                ">40000",
                "gt_40000",
                vec![(num(40_000.0), false), (num(40_001.0), true)],
            ),
            (
                "<120s",
                "<2m",
                "lt_2m",
                vec![(num(119.0), true), (num(120.0), false)],
            ),
            (
                "<=60m",
                "<=1h",
                "lte_1h",
                vec![(num(3600.0), true), (num(3600.5), false)],
            ),
        ];
        for (text, human, tag, checks) in cases {
            let c = cond(text);
            assert_eq!(c.human(), human, "human form of {text}");
            assert_eq!(c.to_string(), human, "Display of {text}");
            assert_eq!(c.tag_value(), tag, "tag of {text}");
            assert_eq!(c.text(), text);
            let back = Condition::from_tag_value(tag).unwrap();
            assert!(back.same_meaning(&c), "{tag} reads back as {back:?}");
            for (value, expected) in checks {
                assert_eq!(c.evaluate(&value), Ok(expected), "{text} at {value}");
                assert_eq!(back.evaluate(&value), Ok(expected), "{tag} at {value}");
            }
        }
        assert!(cond("<5m").is_duration());
        assert!(cond("<48h").is_duration());
        assert!(!cond("<5").is_duration());
        assert!(!cond("==success").is_duration());
    }

    #[test]
    fn comparisons_are_exact() {
        let lt = cond("< 1");
        assert_eq!(lt.evaluate(&num(1.0)), Ok(false));
        assert_eq!(lt.evaluate(&num(0.999)), Ok(true));
        assert_eq!(lt.evaluate(&num(next_down(1.0))), Ok(true));
        let le = cond("<= 1");
        assert_eq!(le.evaluate(&num(1.0)), Ok(true));
        assert_eq!(le.evaluate(&num(next_up(1.0))), Ok(false));
        let range = cond("in [0.5, 1]");
        assert_eq!(range.op(), Op::In);
        assert_eq!(range.evaluate(&num(0.5)), Ok(true));
        assert_eq!(range.evaluate(&num(1.0)), Ok(true));
        assert_eq!(range.evaluate(&num(0.75)), Ok(true));
        assert_eq!(range.evaluate(&num(next_down(0.5))), Ok(false));
        assert_eq!(range.evaluate(&num(next_up(1.0))), Ok(false));
        let eq = cond("==0.3");
        assert_eq!(eq.evaluate(&num(0.1 + 0.2)), Ok(false));
        assert_eq!(eq.evaluate(&num(0.3)), Ok(true));
        assert_eq!(cond("!=0").evaluate(&num(-0.0)), Ok(false));
    }

    #[test]
    fn parses_every_documented_spelling() {
        let cases: &[(&str, Op, Operand)] = &[
            ("<5m", Op::Lt, secs(300.0)),
            ("< 5m", Op::Lt, secs(300.0)),
            ("  >= 40000  ", Op::Ge, plain(40_000.0)),
            ("==success", Op::Eq, Operand::Text("success".into())),
            ("!= failure", Op::Ne, Operand::Text("failure".into())),
            ("> 0.5", Op::Gt, plain(0.5)),
            ("<=60m", Op::Le, secs(3600.0)),
            ("<48h", Op::Lt, secs(172_800.0)),
            ("<120s", Op::Lt, secs(120.0)),
            (">=1", Op::Ge, plain(1.0)),
            ("< 95%", Op::Lt, pct(95.0)),
            ("<500ms", Op::Lt, secs(0.5)),
            ("<1d", Op::Lt, secs(86_400.0)),
            ("<1h30m", Op::Lt, secs(5400.0)),
            ("<1.5h", Op::Lt, secs(5400.0)),
            ("> -1", Op::Gt, plain(-1.0)),
            (">-5m", Op::Gt, secs(-300.0)),
            (">+2", Op::Gt, plain(2.0)),
            (">.5", Op::Gt, plain(0.5)),
            ("<1e3", Op::Lt, plain(1000.0)),
            ("<-1.5E-3", Op::Lt, plain(-0.0015)),
            ("<2e1s", Op::Lt, secs(20.0)),
            ("==-0", Op::Eq, plain(0.0)),
            ("==\"timed out\"", Op::Eq, Operand::Text("timed out".into())),
            ("!= 'it''", Op::Ne, Operand::Text("it".into())),
            (
                r#"=="say \"hi\"""#,
                Op::Eq,
                Operand::Text(r#"say "hi""#.into()),
            ),
            ("==v1.2-rc:x/y", Op::Eq, Operand::Text("v1.2-rc:x/y".into())),
            ("==café", Op::Eq, Operand::Text("café".into())),
            ("==\"\"", Op::Eq, Operand::Text(String::new())),
            ("in [0.5, 1]", Op::In, range(0.5, 1.0, Unit::None)),
            ("in[0.5,1]", Op::In, range(0.5, 1.0, Unit::None)),
            ("IN [ 1m , 5m ]", Op::In, range(60.0, 300.0, Unit::Seconds)),
            ("in [90%, 100%]", Op::In, range(90.0, 100.0, Unit::Percent)),
            ("in [-1, -1]", Op::In, range(-1.0, -1.0, Unit::None)),
        ];
        for (text, op, operand) in cases {
            // "!= 'it''" has a stray quote after the string: it must be rejected, not misread.
            if text.ends_with("''") {
                assert!(Condition::parse(text).is_err(), "{text}");
                continue;
            }
            let c = cond(text);
            assert_eq!(c.op(), *op, "{text}");
            assert_eq!(c.operand(), operand, "{text}");
            assert_eq!(text.trim().parse::<Condition>().as_ref(), Ok(&c), "{text}");
        }
    }

    fn plain(value: f64) -> Operand {
        Operand::Number {
            value,
            unit: Unit::None,
        }
    }
    fn secs(value: f64) -> Operand {
        Operand::Number {
            value,
            unit: Unit::Seconds,
        }
    }
    fn pct(value: f64) -> Operand {
        Operand::Number {
            value,
            unit: Unit::Percent,
        }
    }
    fn range(low: f64, high: f64, unit: Unit) -> Operand {
        Operand::Range { low, high, unit }
    }

    #[test]
    fn human_and_tag_forms() {
        let cases = [
            ("< 5m", "<5m", "lt_5m"),
            ("<=1", "<=1", "lte_1"),
            ("== success", "==success", "eq_success"),
            ("!=failure", "!=failure", "ne_failure"),
            ("> 0.5", ">0.5", "gt_0.5"),
            (">= 40000", ">=40000", "gte_40000"),
            ("in [0.5, 1]", "in [0.5, 1]", "in_0.5_1"),
            ("in [1m, 5m]", "in [1m, 5m]", "in_1m_5m"),
            ("in [60s, 300s]", "in [1m, 5m]", "in_1m_5m"),
            ("< 95%", "<95%", "lt_95pct"),
            ("> -1", ">-1", "gt_neg1"),
            ("> -5m", ">-5m", "gt_neg5m"),
            ("in [-1.5, -0.5]", "in [-1.5, -0.5]", "in_neg1.5_neg0.5"),
            (">1.0", ">1", "gt_1"),
            ("<1e20", "<1e20", "lt_1e20"),
            ("<1.5e-7", "<1.5e-7", "lt_1.5eneg7"),
            ("<90s", "<1m30s", "lt_1m30s"),
            ("<1.5s", "<1s500ms", "lt_1s500ms"),
            ("==\"Timed Out\"", "==\"Timed Out\"", "eq_timed_out"),
            ("==Timed-Out", "==Timed-Out", "eq_timed_out"),
            ("==\"a\\\"b\"", "==\"a\\\"b\"", "eq_a_b"),
            ("==\"\"", "==\"\"", "eq_"),
        ];
        for (text, human, tag) in cases {
            let c = cond(text);
            assert_eq!(c.human(), human, "human of {text}");
            assert_eq!(c.tag_value(), tag, "tag of {text}");
            assert!(cond(human).same_meaning(&c), "{human} reparses");
        }
    }

    #[test]
    fn tags_read_back() {
        let c = Condition::from_tag_value("gt_neg1").unwrap();
        assert_eq!((c.op(), c.operand()), (Op::Gt, &plain(-1.0)));
        assert_eq!(c.text(), "gt_neg1");
        let c = Condition::from_tag_value("lt_95pct").unwrap();
        assert_eq!(c.operand(), &pct(95.0));
        let c = Condition::from_tag_value("in_1m_5m").unwrap();
        assert_eq!(c.operand(), &range(60.0, 300.0, Unit::Seconds));
        let c = Condition::from_tag_value("eq_timed_out").unwrap();
        assert_eq!(c.operand(), &Operand::Text("timed_out".into()));
        let c = Condition::from_tag_value("ne_negotiation").unwrap();
        assert_eq!(c.operand(), &Operand::Text("negotiation".into()));
        let c = Condition::from_tag_value("eq_xnegy").unwrap();
        assert_eq!(c.operand(), &Operand::Text("xnegy".into()));
        let c = Condition::from_tag_value("eq_").unwrap();
        assert_eq!(c.operand(), &Operand::Text(String::new()));
        for bad in [
            "",
            "lt",
            "lt_",
            "foo_5",
            "lt_success",
            "gte_5x",
            "in_1",
            "in_1_2_3",
            "in_5_1",
            "in_a_b",
            "LT_5",
        ] {
            let error = Condition::from_tag_value(bad).unwrap_err();
            assert!(
                error.to_string().contains("not a condition tag"),
                "{bad:?}: {error}"
            );
        }
        assert!(
            Condition::from_tag_value("in_5_1")
                .unwrap_err()
                .to_string()
                .contains("range low 5 is above high 1")
        );
    }

    #[test]
    fn a_number_that_underflows_to_zero_is_refused() {
        for text in ["<=1e-400", ">-1e-400", "in [1e-400, 1]", "<= 0.1e-330"] {
            let err = Condition::parse(text).unwrap_err();
            assert!(
                matches!(err.kind(), ConditionErrorKind::NumberTooSmall { .. }),
                "{text}: {err}"
            );
            assert!(err.to_string().contains("would be read as 0"), "{err}");
        }
        // Zero written as zero, and the smallest subnormal, are what they say.
        assert_eq!(cond("<=0e-400").human(), "<=0");
        assert_eq!(cond("<=0.000").human(), "<=0");
        assert_eq!(cond("<=5e-324").human(), "<=5e-324");
        // Overflow stays an error too.
        assert!(matches!(
            Condition::parse("<1e400").unwrap_err().kind(),
            ConditionErrorKind::NumberTooLarge { .. }
        ));
    }

    #[test]
    fn warn_must_be_a_looser_band_in_the_same_unit() {
        let check = |c: &str, w: &str| cond(c).check_warn(&cond(w));
        for (c, w) in [
            ("<5m", "<8m"),
            ("<5m", "<5m"),
            ("<5", "<=5"),
            (">=40000", ">30000"),
            ("in [1, 5]", "in [0, 6]"),
            ("in [1, 5]", "<10"),
            ("==success", "==success"),
            ("==success", "!=failure"),
            ("<95%", "<=99%"),
        ] {
            assert_eq!(check(c, w), Ok(()), "condition {c} warn {w}");
        }
        for (c, w, says) in [
            ("<5m", "<3m", "is stricter than the condition <5m"),
            ("<=5", "<5", "5 passes the condition but not warn"),
            ("<5m", ">8m", "points the other way from"),
            (">0.5", "<0.9", "points the other way from"),
            ("in [0, 10]", "in [2, 8]", "is stricter than"),
            (
                "==success",
                "==ok",
                "success passes the condition but not warn",
            ),
            (
                "<5m",
                "<50%",
                "compares a percentage but the condition <5m compares a duration",
            ),
            ("<5", "==ok", "compares a word"),
        ] {
            let err = check(c, w).expect_err(&format!("condition {c} warn {w}"));
            assert!(err.contains(says), "condition {c} warn {w}: {err}");
        }
    }

    #[test]
    fn error_messages_say_what_and_where() {
        assert_eq!(
            err_message("<<5m"),
            r#"invalid condition "<<5m": expected a number, duration or word after "<" at column 2"#
        );
        assert_eq!(
            err_message("=5"),
            r#"invalid condition "=5": unknown operator "="; use one of > >= < <= == != (did you mean "=="?)"#
        );
        let cases = [
            ("", "it is empty"),
            ("   ", "it is empty"),
            (
                "=>5",
                r#"unknown operator "=>"; use one of > >= < <= == != (did you mean ">="?)"#,
            ),
            ("=<5", r#"(did you mean "<="?)"#),
            ("<>5", r#"(did you mean "!="?)"#),
            ("!5", r#"unknown operator "!""#),
            (
                ">success",
                r#"string values only work with == and !=, not ">""#,
            ),
            ("< \"x\"", "string values only work with == and !="),
            ("in [5, 1]", "range low 5 is above high 1"),
            ("in [5m, 1m]", "range low 5m is above high 1m"),
            (
                "in [1m, 5]",
                "both ends of a range need the same unit, found 1m and 5",
            ),
            (
                "in [a, b]",
                r#"range ends must be numbers, durations or percentages; found "a, b]" at column 5"#,
            ),
            (
                "in (1, 2)",
                r#"expected "[" after "in" (ranges are written in [low, high], both ends included) at column 4, found "(1, 2)""#,
            ),
            (
                "in [1 2]",
                r#"expected "," between the ends of the range at column 7"#,
            ),
            (
                "in [1, 2",
                r#"expected "]" to close the range at column 9, found the end of the text"#,
            ),
            ("in [1, 2] x", r#"unexpected "x" at column 11"#),
            ("<5m foo", r#"unexpected "foo" at column 5 after the value"#),
            (
                "< 5 m",
                "units go right after the number: ms, s, m, h, d or %",
            ),
            (
                "< 5 minutes",
                r#"unexpected "minutes" at column 5 after the value; units go"#,
            ),
            ("<5 %", "units go right after the number"),
            (
                "lt_5m",
                "missing operator at column 1; start with one of > >= < <= == != (e.g. <5m), or write a range as in [low, high] (<5m written in tag form; write <5m)",
            ),
            (
                "in_0.5_1",
                "(in [0.5, 1] written in tag form; write in [0.5, 1])",
            ),
            (
                "==success trailing",
                r#"unexpected "trailing" at column 11"#,
            ),
            (
                "<5x",
                r#"unknown unit "x" at column 3; use ms, s, m, h or d"#,
            ),
            ("<5min", r#"unknown unit "min" at column 3"#),
            ("<5M", r#"unknown unit "M""#),
            ("<5%%", r#"unknown unit "%%""#),
            (
                "<1h30x",
                r#"invalid duration "1h30x": expected a number followed by ms, s, m, h or d (e.g. 30m, 26h) (at column 2)"#,
            ),
            ("<1.0000000001s", "more precise than a nanosecond"),
            ("<99999999999999999999999d", "too large"),
            ("<1e999", "number 1e999 at column 2 is too large"),
            ("5m", "missing operator at column 1"),
            ("success", "missing operator at column 1"),
            (
                "<",
                r#"expected a number, duration or word after "<" at column 2"#,
            ),
            ("<=  ", r#"after "<=" at column 3"#),
            ("<-", r#"after "<" at column 2"#),
            ("<-x", r#"after "<" at column 2"#),
            ("<.", r#"after "<" at column 2"#),
            ("<@", r#"after "<" at column 2"#),
            ("===success", r#"after "==" at column 3"#),
            ("==\"timed out", "unterminated string starting at column 3"),
            (
                "==\"trailing backslash\\",
                "unterminated string starting at column 3",
            ),
            ("<é5", "string values only work with == and !="),
            ("<\u{1F600}", r#"after "<" at column 2"#),
            ("<5é", r#"unknown unit "é" at column 3"#),
        ];
        for (text, expected) in cases {
            let message = err_message(text);
            assert!(
                message.contains(expected),
                "{text:?}\n  got:      {message}\n  expected: …{expected}…"
            );
            assert!(message.starts_with("invalid condition "), "{message}");
        }
        let error = Condition::parse("<5m foo").unwrap_err();
        assert_eq!(error.column(), Some(5));
        assert_eq!(error.text(), "<5m foo");
        assert!(matches!(
            error.kind(),
            ConditionErrorKind::TrailingInput { .. }
        ));
        assert_eq!(Condition::parse("").unwrap_err().column(), None);
    }

    #[test]
    fn evaluation_errors() {
        let lt = cond("<5m");
        assert_eq!(lt.evaluate(&num(f64::NAN)), Err(EvalError::NotANumber));
        assert_eq!(lt.evaluate(&num(f64::INFINITY)), Err(EvalError::NotANumber));
        assert_eq!(
            lt.evaluate(&num(f64::NEG_INFINITY)),
            Err(EvalError::NotANumber)
        );
        assert_eq!(
            lt.evaluate(&Value::Text("NaN".into())),
            Err(EvalError::NotANumber)
        );
        assert_eq!(
            lt.evaluate(&Value::Samples(vec![1.0, 2.0])),
            Err(EvalError::NeedsSummary)
        );
        assert_eq!(
            cond("==success").evaluate(&Value::Samples(vec![])),
            Err(EvalError::NeedsSummary)
        );
        let mismatch = lt.evaluate(&Value::Text("abc".into())).unwrap_err();
        assert_eq!(mismatch.error_type(), "type_mismatch");
        assert_eq!(
            mismatch.to_string(),
            r#"condition <5m needs a number, but the value is the text "abc""#
        );
        let mismatch = cond("==success").evaluate(&num(1.0)).unwrap_err();
        assert!(matches!(mismatch, EvalError::TypeMismatch { .. }));
        assert!(cond("in [0.5, 1]").evaluate(&num(f64::NAN)).is_err());
    }

    #[test]
    fn evaluation_coerces_what_is_unambiguous() {
        let text = |s: &str| Value::Text(s.to_string());
        assert_eq!(cond(">100").evaluate(&text("123")), Ok(true));
        assert_eq!(cond(">100").evaluate(&text(" 99.5 ")), Ok(false));
        assert_eq!(cond("<96%").evaluate(&text("95%")), Ok(true));
        assert_eq!(cond("<96%").evaluate(&text("97 %")), Ok(false));
        assert_eq!(cond("<5m").evaluate(&text("4m59s")), Ok(true));
        assert_eq!(cond("<5m").evaluate(&text("300")), Ok(false));
        assert_eq!(cond(">-5m").evaluate(&text("-4m")), Ok(true));
        assert!(cond("<5").evaluate(&text("4m")).is_err());
        assert_eq!(cond("==true").evaluate(&Value::Bool(true)), Ok(true));
        assert_eq!(cond("==True").evaluate(&Value::Bool(false)), Ok(false));
        assert_eq!(cond("!=failure").evaluate(&text("FAILURE")), Ok(false));
        assert_eq!(cond("!=failure").evaluate(&text("success")), Ok(true));
        assert_eq!(cond("==CAFÉ").evaluate(&text("café")), Ok(true));
        assert_eq!(cond("==1").evaluate(&Value::Bool(true)), Ok(true));
        assert_eq!(cond("in [1m, 5m]").evaluate(&num(60.0)), Ok(true));
        assert_eq!(cond("in [1m, 5m]").evaluate(&num(300.5)), Ok(false));
    }

    #[test]
    fn serde_reads_and_writes_the_config_text() {
        let c: Condition = serde_json::from_str(r#"" < 5m ""#).unwrap();
        assert_eq!(c.human(), "<5m");
        assert_eq!(serde_json::to_string(&c).unwrap(), r#""<5m""#);
        let tagged = Condition::from_tag_value("lte_1h").unwrap();
        assert_eq!(serde_json::to_string(&tagged).unwrap(), r#""<=1h""#);
        let error = serde_json::from_str::<Condition>(r#""=5""#).unwrap_err();
        assert!(error.to_string().contains("unknown operator"), "{error}");
    }

    // ---- property tests -------------------------------------------------------------------

    fn finite() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
            any::<i32>().prop_map(f64::from),
            (-1000i32..1000).prop_map(|n| f64::from(n) / 100.0),
            -1e6f64..1e6,
        ]
    }

    /// A number as someone might write it: plain, exponent, upper-case exponent.
    fn number_text() -> impl Strategy<Value = (f64, String)> {
        (finite(), 0u8..3).prop_map(|(n, style)| {
            let text = match style {
                0 => format!("{n}"),
                1 => format!("{n:e}"),
                _ => format!("{n:E}"),
            };
            (n, text)
        })
    }

    fn duration_text() -> impl Strategy<Value = String> {
        let unsigned = prop_oneof![
            (
                0u64..1_000_000,
                prop::sample::select(vec!["ms", "s", "m", "h", "d"])
            )
                .prop_map(|(n, unit)| format!("{n}{unit}")),
            (0u64..10_000_000_000, 0u32..1000)
                .prop_map(|(s, ms)| format_duration(Duration::new(s, ms * 1_000_000))),
            (0u32..100, 0u32..10).prop_map(|(a, b)| format!("{a}.{b}h")),
            (0u32..100, 0u32..60).prop_map(|(h, m)| format!("{h}h{m}m")),
            (any::<u64>(), 0u32..1_000_000_000)
                .prop_map(|(s, ns)| format_duration(Duration::new(s, ns))),
        ];
        (unsigned, any::<bool>()).prop_map(
            |(d, negative)| {
                if negative { format!("-{d}") } else { d }
            },
        )
    }

    /// Words whose tag form cannot be mistaken for a number (see `from_tag_value`).
    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z_][a-zA-Z0-9_.:/-]{0,12}",
            "[a-zA-Zéßİ][a-zA-Z0-9éßİ_]{0,6}",
        ]
        .prop_filter("not neg…", |w| !w.to_lowercase().starts_with("neg"))
    }

    fn quoted() -> impl Strategy<Value = String> {
        "[a-zA-Z][a-zA-Z0-9 _.!?'\"\\\\é-]{0,12}"
            .prop_filter("not neg…", |w| !w.to_lowercase().starts_with("neg"))
            .prop_map(|s| {
                let escaped = s.replace('\\', "\\\\").replace('"', "\\\"");
                format!("\"{escaped}\"")
            })
    }

    fn op_text() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![">", ">=", "<", "<=", "==", "!="])
    }

    fn space() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["", " ", "  ", "\t"])
    }

    /// Valid condition texts covering every operand kind.
    fn condition_text() -> impl Strategy<Value = String> {
        let equality = prop::sample::select(vec!["==", "!="]);
        prop_oneof![
            (op_text(), space(), number_text()).prop_map(|(op, s, (_, n))| format!("{op}{s}{n}")),
            (op_text(), space(), number_text()).prop_map(|(op, s, (_, n))| format!("{op}{s}{n}%")),
            (op_text(), space(), duration_text()).prop_map(|(op, s, d)| format!("{op}{s}{d}")),
            (equality.clone(), space(), word()).prop_map(|(op, s, w)| format!("{op}{s}{w}")),
            (equality, space(), quoted()).prop_map(|(op, s, q)| format!("{op}{s}{q}")),
            (
                number_text(),
                number_text(),
                prop::sample::select(vec!["", "%"])
            )
                .prop_map(|((a, at), (b, bt), unit)| {
                    let (low, high) = if a <= b { (at, bt) } else { (bt, at) };
                    format!("in [{low}{unit}, {high}{unit}]")
                }),
            (any::<u64>(), any::<u64>()).prop_map(|(a, b)| {
                let (low, high) = (a.min(b), a.max(b));
                format!(
                    "in [{}, {}]",
                    format_duration(Duration::from_millis(low)),
                    format_duration(Duration::from_millis(high))
                )
            }),
        ]
    }

    /// Values worth probing for a condition: its thresholds, their neighbours, and zero.
    fn probes(c: &Condition, extra: f64) -> Vec<f64> {
        let thresholds = match c.operand() {
            Operand::Number { value, .. } => vec![*value],
            Operand::Range { low, high, .. } => vec![*low, *high],
            Operand::Text(_) => vec![],
        };
        let mut out = vec![extra, 0.0, 1.0, -1.0];
        for t in thresholds {
            out.extend([t, next_up(t), next_down(t)]);
        }
        out
    }

    fn outcome(c: &Condition, value: &Value) -> Result<bool, &'static str> {
        c.evaluate(value).map_err(|e| e.error_type())
    }

    fn grammar_soup() -> impl Strategy<Value = String> {
        let token = prop::sample::select(vec![
            "<",
            ">",
            "=",
            "!",
            "==",
            "<=",
            ">=",
            "!=",
            "in",
            "IN",
            "[",
            "]",
            "(",
            ",",
            " ",
            "\t",
            "-",
            "+",
            ".",
            "e",
            "E",
            "5",
            "0",
            "1.5",
            "1e3",
            "99999999999999999999999",
            "m",
            "ms",
            "s",
            "h",
            "d",
            "%",
            "\"",
            "'",
            "\\",
            "success",
            "x",
            "é",
            "😀",
            "\u{0}",
            "neg",
            "pct",
            "_",
            "1h30m",
        ]);
        prop::collection::vec(token, 0..12).prop_map(|tokens| tokens.concat())
    }

    /// Whatever parsed must print and tag to forms that parse back to the same meaning.
    fn check_forms(c: &Condition) -> Result<(), TestCaseError> {
        let human = c.human();
        let reparsed = Condition::parse(&human);
        prop_assert!(reparsed.is_ok(), "{} → {:?}", human, reparsed);
        let reparsed = reparsed.unwrap();
        prop_assert!(
            reparsed.same_meaning(c),
            "{:?} printed as {} reads back as {:?}",
            c,
            human,
            reparsed
        );
        let tag = c.tag_value();
        let ok = tag.chars().next().is_some_and(|ch| ch.is_ascii_lowercase())
            && tag
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '.');
        prop_assert!(ok, "tag {} of {:?}", tag, c);
        prop_assert!(Condition::from_tag_value(&tag).is_ok(), "tag {}", tag);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn parse_never_panics(text in ".*") {
            if let Ok(c) = Condition::parse(&text) {
                check_forms(&c)?;
            }
            let _ = Condition::from_tag_value(&text);
        }

        #[test]
        fn parse_never_panics_on_grammar_soup(text in grammar_soup()) {
            if let Ok(c) = Condition::parse(&text) {
                check_forms(&c)?;
            }
            let _ = Condition::from_tag_value(&text);
        }

        #[test]
        fn from_tag_value_never_panics_on_tag_like_text(text in "(gt|gte|lt|lte|eq|ne|in|x)?_?[a-z0-9_.]{0,16}") {
            if let Ok(c) = Condition::from_tag_value(&text) {
                check_forms(&c)?;
            }
        }

        #[test]
        fn human_and_tag_forms_round_trip(text in condition_text(), extra in finite()) {
            let c = Condition::parse(&text);
            prop_assert!(c.is_ok(), "{:?} → {:?}", text, c);
            let c = c.unwrap();
            check_forms(&c)?;
            let human = Condition::parse(&c.human()).unwrap();
            let tagged = Condition::from_tag_value(&c.tag_value()).unwrap();
            if matches!(c.operand(), Operand::Text(_)) {
                prop_assert!(matches!(tagged.operand(), Operand::Text(_)), "{:?}", tagged);
            } else {
                prop_assert_eq!(human.operand(), c.operand());
                prop_assert_eq!(tagged.operand(), c.operand());
            }
            prop_assert_eq!(human.op(), c.op());
            prop_assert_eq!(tagged.op(), c.op());
            for probe in probes(&c, extra) {
                let value = Value::Number(probe);
                let expected = outcome(&c, &value);
                prop_assert_eq!(outcome(&human, &value), expected, "{} vs {} at {}", text, human, probe);
                prop_assert_eq!(outcome(&tagged, &value), expected, "{} vs {} at {}", text, c.tag_value(), probe);
            }
            if let Operand::Text(s) = c.operand() {
                for value in [Value::Text(s.clone()), Value::Text(s.to_uppercase()), Value::Text("other".into())] {
                    prop_assert_eq!(outcome(&human, &value), outcome(&c, &value));
                }
                let normalised = Value::Text(tag_text(s));
                prop_assert_eq!(outcome(&tagged, &normalised), Ok(c.op() == Op::Eq));
            }
        }

        #[test]
        fn tag_value_is_tag_safe(text in condition_text()) {
            let tag = Condition::parse(&text).unwrap().tag_value();
            let pattern = regex::Regex::new("^[a-z][a-z0-9_.]*$").unwrap();
            prop_assert!(pattern.is_match(&tag), "{}", tag);
        }

        #[test]
        fn evaluation_agrees_with_rust_comparisons(
            op in op_text(),
            (threshold, text) in number_text(),
            other in finite(),
            pick in 0u8..4,
        ) {
            let value = match pick {
                0 => threshold,
                1 => next_up(threshold),
                2 => next_down(threshold),
                _ => other,
            };
            let c = Condition::parse(&format!("{op}{text}")).unwrap();
            let expected = match op {
                ">" => value > threshold,
                ">=" => value >= threshold,
                "<" => value < threshold,
                "<=" => value <= threshold,
                "==" => value == threshold,
                _ => value != threshold,
            };
            prop_assert_eq!(c.evaluate(&Value::Number(value)), Ok(expected), "{} at {}", text, value);
        }

        #[test]
        fn ranges_agree_with_rust_comparisons(a in finite(), b in finite(), other in finite(), pick in 0u8..5) {
            let (low, high) = (a.min(b), a.max(b));
            let value = match pick {
                0 => low,
                1 => high,
                2 => next_down(low),
                3 => next_up(high),
                _ => other,
            };
            let c = Condition::parse(&format!("in [{low}, {high}]")).unwrap();
            prop_assert_eq!(c.evaluate(&Value::Number(value)), Ok(low <= value && value <= high));
        }

        #[test]
        fn durations_compare_in_seconds(secs in 0u64..10_000_000, ms in 0u32..1000, delta in -2i64..=2) {
            let d = Duration::new(secs, ms * 1_000_000);
            let c = Condition::parse(&format!("<{}", format_duration(d))).unwrap();
            let threshold = d.as_secs_f64();
            let value = threshold + delta as f64 * 0.001;
            prop_assert_eq!(c.evaluate(&Value::Number(value)), Ok(value < threshold));
        }
    }
}
