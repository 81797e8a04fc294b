use super::*;

const GOOD: &str = include_str!("../../config/infra-health.toml");

fn path() -> PathBuf {
    // Relative paths in the bundled config resolve against config/.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/infra-health.toml")
}

#[test]
fn the_bundled_config_is_valid() {
    let plan = parse(&path(), GOOD).unwrap();
    assert_eq!(plan.checks.len(), 26);
    for c in &plan.collectors {
        assert!(
            plan.checks.iter().any(|d| d.collector == c.name),
            "collector {} feeds no row",
            c.name
        );
    }
}

#[test]
fn a_config_file_with_a_byte_order_mark_loads() {
    let dir = tempfile::tempdir().unwrap();
    // Beside the bundled config's own directory layout: its relative paths are not read here.
    let file = dir.path().join("infra-health.toml");
    std::fs::write(&file, format!("\u{feff}{GOOD}")).unwrap();
    let plan = load(&file).unwrap();
    assert_eq!(plan.checks.len(), 26);
}

#[test]
fn every_mistake_is_reported_with_its_line() {
    let text = "[defaults]\nprefx = \"x\"\n\n[bogus]\na = 1\n\n[[collector]]\nname = \"f\"\ntype = \"nope\"\n\n[[check]]\nworkflow_category = \"ci\"\nworkflow_name = \"w\"\ntask = \"t\"\ncheck = \"c\"\ncollector = \"missing\"\nsignal = \"s\"\ncondition = \"=< 5\"\nmetric = \"ci.x\"\n";
    let errs = parse(Path::new("c.toml"), text).unwrap_err().0;
    let lines: Vec<(usize, Option<String>)> =
        errs.iter().map(|e| (e.line, e.key.clone())).collect();
    assert!(
        lines.contains(&(2, Some("defaults.prefx".into()))),
        "{lines:?}"
    );
    assert!(lines.contains(&(4, Some("bogus".into()))), "{lines:?}");
    assert!(
        lines.contains(&(9, Some("collector.type".into()))),
        "{lines:?}"
    );
    assert!(
        lines.contains(&(16, Some("check.collector".into()))),
        "{lines:?}"
    );
    assert!(
        lines.contains(&(18, Some("check.condition".into()))),
        "{lines:?}"
    );
}

#[test]
fn one_metric_name_with_two_types_is_refused() {
    let row = |check: &str, encoding: &str| {
        format!(
            "[[check]]\nworkflow_category = \"ci\"\nworkflow_name = \"w\"\ntask = \"t\"\ncheck = \"{check}\"\ncollector = \"f\"\nsignal = \"s\"\ncondition = \"<5\"\nencoding = \"{encoding}\"\nmetric = \"ci.x\"\n"
        )
    };
    let head = "[[collector]]\nname = \"f\"\ntype = \"file\"\npath = \"x\"\n";
    let text = format!("{head}{}{}", row("a", "gauge"), row("b", "distribution"));
    let errs = parse(Path::new("t.toml"), &text).unwrap_err().0;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].to_string().contains(
            "metric \"ci.x\" is sent as a distribution here but as a gauge by the row on line 5"
        ),
        "{}",
        errs[0]
    );
    assert_eq!(errs[0].key.as_deref(), Some("check.metric"));
    // The same type twice is fine: rows share a metric and are told apart by their tags.
    let text = format!("{head}{}{}", row("a", "gauge"), row("b", "status"));
    assert!(parse(Path::new("t.toml"), &text).is_ok());
}

#[test]
fn duplicate_rows_are_refused() {
    let row = "[[check]]\nworkflow_category = \"ci\"\nworkflow_name = \"w\"\ntask = \"t\"\ncheck = \"c\"\ncollector = \"f\"\nsignal = \"s\"\ncondition = \"<5\"\nmetric = \"ci.x\"\n";
    let text = format!("[[collector]]\nname = \"f\"\ntype = \"file\"\npath = \"x\"\n{row}{row}");
    let errs = parse(Path::new("c.toml"), &text).unwrap_err().0;
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0]
            .message
            .contains("duplicate row ci/w/t/c (first defined on line 5)")
    );
    assert_eq!(errs[0].line, 14);
}

#[test]
fn names_datadog_would_rewrite_are_errors_not_silent_changes() {
    let text = "[[collector]]\nname = \"f\"\ntype = \"file\"\npath = \"x\"\n[[check]]\nworkflow_category = \"CI\"\nworkflow_name = \"w\"\ntask = \"t\"\ncheck = \"c\"\ncollector = \"f\"\nsignal = \"s\"\ncondition = \"<5\"\nmetric = \"ci.p90-x\"\n";
    let errs = parse(Path::new("c.toml"), text).unwrap_err().0;
    let keys: Vec<_> = errs.iter().filter_map(|e| e.key.clone()).collect();
    assert!(
        keys.contains(&"check.workflow_category".to_string()),
        "{errs:?}"
    );
    assert!(keys.contains(&"check.metric".to_string()), "{errs:?}");
}

const HEAD: &str = "[[collector]]\nname = \"f\"\ntype = \"file\"\npath = \"x\"\n";

/// A row with `check` and the given extra lines (condition, warn).
fn row(check: &str, lines: &str) -> String {
    format!(
        "[[check]]\nworkflow_category = \"ci\"\nworkflow_name = \"w\"\ntask = \"t\"\ncheck = \"{check}\"\ncollector = \"f\"\nsignal = \"s\"\nmetric = \"ci.x\"\n{lines}"
    )
}

fn errors(text: &str) -> Vec<ConfigError> {
    parse_with(Path::new("c.toml"), text, true).unwrap_err().0
}

#[test]
fn sink_problems_name_file_line_and_key() {
    let text = format!(
        "[sink]\ntype = \"local\"\ncompresion = \"zstd1\"\ncompression = \"br\"\nmax_retries = -1\nsite = \"nonsense\"\ntimeout = \"0s\"\n\n{HEAD}{}",
        row("a", "condition = \"<5\"\n")
    );
    let errs = errors(&text);
    let got: Vec<(usize, Option<String>)> = errs.iter().map(|e| (e.line, e.key.clone())).collect();
    for (line, key) in [
        (3, "sink.compresion"),
        (4, "sink.compression"),
        (5, "sink.max_retries"),
        (6, "sink.site"),
        (7, "sink.timeout"),
    ] {
        assert!(got.contains(&(line, Some(key.to_string()))), "{got:?}");
    }
    assert_eq!(errs.len(), 5, "{errs:?}");
    assert!(
        errs[0]
            .to_string()
            .starts_with("c.toml:3: `sink.compresion`: unknown key (did you mean `compression`?)"),
        "{}",
        errs[0]
    );
}

#[test]
fn a_config_without_rows_is_an_error_but_the_defaults_plan_is_not() {
    for text in ["", "[defaults]\nenv = \"dev\"\n", HEAD] {
        let errs = errors(text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].line, 1);
        assert_eq!(errs[0].key.as_deref(), Some("check"));
        assert!(errs[0].message.starts_with("no rows"), "{}", errs[0]);
        assert!(errs[0].message.contains(BUNDLED_CONFIG), "{}", errs[0]);
    }
    let plan = defaults_plan().unwrap();
    assert!(plan.checks.is_empty());
    // A library caller may build only collectors; a command loading a file may not.
    assert!(parse(Path::new("c.toml"), HEAD).is_ok());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, HEAD).unwrap();
    let errs = load(&file).unwrap_err().0;
    assert!(errs[0].message.starts_with("no rows"), "{errs:?}");
}

#[test]
fn an_unreadable_config_names_no_line_and_says_how_to_give_one() {
    let err = load(Path::new("/nonexistent/dir/c.toml")).unwrap_err().0;
    let text = err[0].to_string();
    assert!(
        text.starts_with("/nonexistent/dir/c.toml: no config file here"),
        "{text}"
    );
    assert!(!text.contains(":0:"), "{text}");
    assert!(
        text.contains("--config PATH") && text.contains(BUNDLED_CONFIG),
        "{text}"
    );
}

#[test]
fn long_values_are_cut_in_messages() {
    let long = "y".repeat(100_000);
    let clipped = clip_message(&format!("bad value \"{long}\" and `{long}` again"));
    assert!(clipped.len() < 400, "{}", clipped.len());
    assert_eq!(
        clipped.matches("(100000 characters)").count(),
        2,
        "{clipped}"
    );
    assert!(clipped.contains(&format!("\"{}…\"", "y".repeat(MAX_QUOTED_VALUE))));
    // Short values, escaped quotes and unbalanced quotes stay as they are.
    for m in ["a \"short\" value", "say \"a \\\"b\\\" c\"", "one \" quote"] {
        assert_eq!(clip_message(m), m);
    }
    let unquoted = "z".repeat(10_000);
    let cut = clip_message(&unquoted);
    assert!(cut.ends_with("… (message cut, 10000 characters)"), "{cut}");
    // Through the parser: a huge prefix is reported once, cut.
    let text = format!(
        "[defaults]\nprefix = \"{long}\"\n{HEAD}{}",
        row("a", "condition = \"<5\"\n")
    );
    let errs = errors(&text);
    assert_eq!(errs[0].key.as_deref(), Some("defaults.prefix"));
    assert!(errs[0].message.len() < 1000, "{}", errs[0].message.len());
}

#[test]
fn a_warn_that_is_not_looser_is_reported_at_its_line() {
    let text = format!(
        "{HEAD}{}{}{}",
        row("a", "condition = \"<5m\"\nwarn = \"<8m\"\n"),
        row("b", "condition = \"<5m\"\nwarn = \">8m\"\n"),
        row("c", "condition = \"<5m\"\nwarn = \"<50%\"\n"),
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    let warn_lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("warn"))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(errs[0].line, warn_lines[1]);
    assert_eq!(errs[0].key.as_deref(), Some("check.warn"));
    assert!(
        errs[0].message.contains("points the other way"),
        "{}",
        errs[0]
    );
    assert_eq!(errs[1].line, warn_lines[2]);
    assert!(
        errs[1].message.contains("compares a percentage"),
        "{}",
        errs[1]
    );
}

#[test]
fn conditions_whose_tags_collide_are_refused() {
    // A word outside ASCII cannot be kept apart in the tag.
    let text = format!("{HEAD}{}", row("a", "condition = \"==ü\"\n"));
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].key.as_deref(), Some("check.condition"));
    assert_eq!(errs[0].line, 13);
    assert!(errs[0].message.contains("outside ASCII"), "{}", errs[0]);
    assert!(errs[0].message.contains("\"eq__\""), "{}", errs[0]);
    // Two conditions that mean different things but share a tag.
    let text = format!(
        "{HEAD}{}{}",
        row("a", "condition = \"==5\"\n"),
        row("b", "condition = '==\"5\"'\n")
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].line, 22);
    assert!(
        errs[0].message.contains(
            "sent as the tag condition:eq_5, like the different condition ==5 of the row on line 5"
        ),
        "{}",
        errs[0]
    );
    // The same meaning written twice is one tag and fine.
    let text = format!(
        "{HEAD}{}{}",
        row("a", "condition = \"<5m\"\n"),
        row("b", "condition = \"<300s\"\n")
    );
    assert!(parse(Path::new("c.toml"), &text).is_ok());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
    #[test]
    fn never_panics_on_arbitrary_text(text in ".{0,400}") {
        let _ = parse(Path::new("c.toml"), &text);
    }

    #[test]
    fn never_panics_on_mutated_configs(cut in 0usize..8000, junk in "[\\[\\]=\"a-z0-9<>\\n. ]{0,12}") {
        let mut text = GOOD.to_string();
        let mut at = cut.min(text.len());
        while !text.is_char_boundary(at) { at -= 1; }
        text.insert_str(at, &junk);
        if let Err(errs) = parse(&path(), &text) {
            for e in errs.0 {
                proptest::prop_assert!(e.line <= text.lines().count() + 1);
                proptest::prop_assert!(!e.message.is_empty());
            }
        }
    }
}

/// `validate` reports every problem in one pass: an unknown `[defaults]` key does not hide a bad
/// prefix, a bad prefix does not hide the rows' errors, and within a row an unknown key, a
/// mistyped value or a missing required key does not hide the row's other errors.
#[test]
fn every_kind_of_problem_is_reported_in_one_pass() {
    let text = "\
[defaults]
prefix = \"metta.\"
colour = \"blue\"

[[collector]]
name = \"f\"
type = \"file\"
path = \"obs.json\"

[[check]]
workflow_category = \"ci\"
workflow_name = \"w\"
task = \"t\"
check = \"c\"
collector = \"f\"
signal = \"s\"
condition = \"<<5\"
frobnicate = 1

[[check]]
workflow_category = \"ci\"
workflow_name = \"w\"
task = \"t2\"
check = \"c\"
collector = \"nope\"
signal = \"s\"
condition = \"<5\"
carry_forward = 5
metric = \"ci.x\"
";
    let errs = parse(Path::new("c.toml"), text).unwrap_err().0;
    let got: Vec<(usize, Option<String>)> = errs.iter().map(|e| (e.line, e.key.clone())).collect();
    let want = [
        (2, "defaults.prefix"),
        (3, "defaults.colour"),
        (10, "check.metric"),
        (17, "check.condition"),
        (18, "check.frobnicate"),
        (25, "check.collector"),
        (28, "check.carry_forward"),
    ];
    for (line, key) in want {
        assert!(
            got.contains(&(line, Some(key.to_string()))),
            "{key} on line {line} not reported: {errs:#?}"
        );
    }
    // Nothing about the placeholders filled in for the missing `metric`.
    assert_eq!(got.len(), want.len(), "{errs:#?}");
}

/// `CHECK_KEYS` is exactly what a `[[check]]` accepts.
#[test]
fn check_keys_are_the_fields_of_a_row() {
    let err = toml::Value::Table(toml::toml! { bogus_key = 1 })
        .try_into::<super::raw::RawCheck>()
        .err()
        .expect("an unknown key is refused");
    let message = err.message();
    let listed: Vec<&str> = message
        .split("expected one of ")
        .nth(1)
        .expect("serde lists the fields")
        .split(", ")
        .map(|k| k.trim().trim_matches('`'))
        .collect();
    assert_eq!(listed, super::raw::CHECK_KEYS, "{message}");
}

/// A small config with `[datadog]` settings, two rows of two categories and a third opting out.
fn datadog_config(extra: &str) -> String {
    format!(
        "[datadog]\nnotify = [\"@slack-all\"]\nalert_after = \"45m\"\n{extra}\n\
         [datadog.category.code]\nalert_after = \"2h\"\nnotify = [\"@slack-code\"]\n\n\
         [[collector]]\nname = \"f\"\ntype = \"file\"\npath = \"o.json\"\nperiod = \"1h\"\nlink = \"https://x.example/runs\"\n\n\
         [[check]]\nworkflow_category = \"ci\"\nworkflow_name = \"w\"\ntask = \"t\"\ncheck = \"c\"\ncollector = \"f\"\nsignal = \"s\"\ncondition = \"<1\"\nmetric = \"ci.x\"\n\n\
         [[check]]\nworkflow_category = \"code\"\nworkflow_name = \"w\"\ntask = \"t\"\ncheck = \"c\"\ncollector = \"f\"\nsignal = \"s\"\ncondition = \"<1\"\nmetric = \"code.x\"\nalert_after = \"10m\"\n\n\
         [[check]]\nworkflow_category = \"code\"\nworkflow_name = \"w\"\ntask = \"u\"\ncheck = \"c\"\ncollector = \"f\"\nsignal = \"s\"\ncondition = \"<1\"\nmetric = \"code.y\"\nalert = false\n"
    )
}

#[test]
fn row_alerting_takes_the_row_then_its_category_then_the_datadog_table() {
    let plan = parse(Path::new("c.toml"), &datadog_config("")).unwrap();
    let d = &plan.datadog;
    assert_eq!(d.period, Duration::from_secs(600), "the default period");
    let row = |i: usize| d.row(&plan.checks[i].row).unwrap();
    assert_eq!(row(0).alert_after, Some(Duration::from_secs(45 * 60)));
    assert_eq!(row(0).notify, vec!["@slack-all".to_string()]);
    assert_eq!(row(1).alert_after, Some(Duration::from_secs(600)));
    assert_eq!(row(1).notify, vec!["@slack-code".to_string()]);
    assert_eq!(row(2).alert_after, None, "alert = false");
    assert_eq!(row(0).link.as_deref(), Some("https://x.example/runs"));
    let f = d.collector("f").unwrap();
    assert_eq!(f.period, Duration::from_secs(3600));
    assert_eq!(d.unknown_notify, d.notify);
}

#[test]
fn datadog_mistakes_are_reported_with_their_key() {
    let text = datadog_config("period = \"soon\"\nunknown_notify = [\"slack-x\"]\nbogus = 1");
    let errs = parse(Path::new("c.toml"), &text).unwrap_err().0;
    let keys: Vec<String> = errs.iter().filter_map(|e| e.key.clone()).collect();
    assert!(keys.iter().any(|k| k.starts_with("datadog")), "{errs:?}");
    let text = datadog_config("period = \"soon\"");
    let errs = parse(Path::new("c.toml"), &text).unwrap_err().0;
    assert!(
        errs.iter()
            .any(|e| e.key.as_deref() == Some("datadog.period")),
        "{errs:?}"
    );
    let text = datadog_config("unknown_notify = [\"slack-x\"]");
    let errs = parse(Path::new("c.toml"), &text).unwrap_err().0;
    assert!(
        errs.iter().any(|e| e.line == 1
            && e.key.as_deref() == Some("datadog.unknown_notify")
            && e.message.contains("@slack")),
        "{errs:?}"
    );
}
