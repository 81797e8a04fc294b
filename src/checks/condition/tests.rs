use std::time::Duration;

use proptest::prelude::*;

use super::format::tag_text;
use super::*;
use crate::duration::format_duration;

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
    (unsigned, any::<bool>()).prop_map(|(d, negative)| if negative { format!("-{d}") } else { d })
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
