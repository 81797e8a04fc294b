//! Reading a condition: the config text (`Condition::parse`, a hand-written scanner that
//! reports what is wrong and at which column), the tag-safe form read back
//! (`Condition::from_tag_value`), and numbers and durations read from observed text.

use std::time::Duration;

use crate::duration::parse_duration;

use super::format::{format_value, untag};
use super::{Condition, ConditionError, ConditionErrorKind, Op, Operand, Unit};

impl Condition {
    /// Parses a condition such as `<5m`, `>= 40000`, `==success`, `!= "timed out"`, `< 95%` or
    /// `in [0.5, 1]`. Surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Condition, ConditionError> {
        Parser::new(text.trim()).condition()
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

/// A number from observed text, for a numeric condition: `"123"`, and per unit `"95%"` or `"5m"`.
/// NaN and infinity read as such (and are then reported as not a number).
pub(super) fn number_from_text(text: &str, unit: Unit) -> Option<f64> {
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
pub(super) fn is_word_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

pub(super) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/')
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
