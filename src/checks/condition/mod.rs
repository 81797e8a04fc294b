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

mod format;
mod parse;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::duration::DurationError;
use crate::observation::Value;

use format::{float_above, float_below, format_text, format_value};
use parse::number_from_text;

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

// Reading (`parse`, `from_tag_value`) is in parse.rs, writing (`human`, `tag_value`) in format.rs.
impl Condition {
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

#[cfg(test)]
mod tests;
