//! Configuration: raw TOML in, a validated [`Plan`] out.
//!
//! Two stages, as ripgrep and Telegraf do it: the file is read into loosely typed tables that
//! remember where they came from, then every part is validated and resolved once into a plan
//! (parsed conditions, built collectors, checked metric names). Nothing downstream re-parses
//! config, and every problem is collected rather than the first one only, each with file, line
//! and key, so `infra-health validate` can show a user all of them at once.

pub mod locate;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::checks::RowId;
use crate::checks::{Aggregate, CheckDef, Condition, Encoding, Summary};
use crate::collectors::{self, BuildContext, CollectorInstance};
use crate::duration::parse_duration;
use crate::schema::{self, Schema};
use crate::sinks::{SinkKind, SinkSettings};
use locate::{header_line, key_in_message, key_line, line_of};

/// Where the config is looked for when `--config` and `INFRA_HEALTH_CONFIG` are not given.
pub const DEFAULT_CONFIG_FILE: &str = "infra-health.toml";
pub const DEFAULT_COLLECTOR_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_CARRY_FORWARD: Duration = Duration::from_secs(30 * 60);

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    /// The key at fault (`check.condition`), when there is one.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: ", self.file.display())?;
        } else {
            write!(f, "{}:{}: ", self.file.display(), self.line)?;
        }
        if let Some(k) = &self.key {
            write!(f, "`{k}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a config file.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} problem{} in the configuration:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The `[dashboard]` table.
#[derive(Debug, Clone)]
pub struct DashboardSettings {
    /// The dashboard's title; `dashboard push` finds an existing dashboard by it.
    pub title: String,
    pub description: String,
}

/// Run-wide defaults from `[defaults]`.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub prefix: String,
    pub env: String,
    pub service: String,
    pub source: String,
    pub carry_forward: Duration,
    pub tags: BTreeMap<String, String>,
}

/// A validated configuration, ready to run.
#[derive(Clone)]
pub struct Plan {
    pub file: PathBuf,
    pub defaults: Defaults,
    pub schema: Schema,
    /// State store URL from config (`INFRA_HEALTH_STATE` and `--state` win over it).
    pub state_url: Option<String>,
    pub sink: SinkSettings,
    pub collectors: Vec<CollectorInstance>,
    pub checks: Vec<CheckDef>,
    /// The `[dashboard]` table: how the generated Datadog dashboard is named.
    pub dashboard: DashboardSettings,
    /// Things that are allowed but worth saying (normalised names).
    pub warnings: Vec<String>,
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plan")
            .field("file", &self.file)
            .field("collectors", &self.collectors.len())
            .field("checks", &self.checks.len())
            .finish()
    }
}

/// Which config file to use: the flag, then `INFRA_HEALTH_CONFIG`, then `./infra-health.toml`.
pub fn resolve_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os("INFRA_HEALTH_CONFIG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_CONFIG_FILE),
    }
}

/// Where the bundled config lives in the repository, for messages.
pub const BUNDLED_CONFIG: &str = "config/infra-health.toml";

/// Read and validate a config file.
pub fn load(path: &Path) -> Result<Plan, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            key: None,
            message: unreadable_message(path, &e),
        }])
    })?;
    parse_with(path, &text, true)
}

/// Why the config could not be read, how its path was chosen and how to give one.
fn unreadable_message(path: &Path, e: &std::io::Error) -> String {
    let env = std::env::var_os("INFRA_HEALTH_CONFIG").filter(|v| !v.is_empty());
    let chosen = match &env {
        Some(v) if Path::new(v) == path => "tried the path in $INFRA_HEALTH_CONFIG".to_string(),
        _ if path == Path::new(DEFAULT_CONFIG_FILE) => format!(
            "tried ./{DEFAULT_CONFIG_FILE} in the current directory: neither --config nor \
             $INFRA_HEALTH_CONFIG is set"
        ),
        _ => "tried the path given with --config".to_string(),
    };
    let what = if e.kind() == std::io::ErrorKind::NotFound {
        "no config file here".to_string()
    } else {
        format!("cannot read the config file: {e}")
    };
    format!(
        "{what} ({chosen}). The config is looked for in this order: --config PATH, \
         $INFRA_HEALTH_CONFIG, ./{DEFAULT_CONFIG_FILE}. Give one with `--config PATH`; the \
         bundled config is {BUNDLED_CONFIG} in the repository (e.g. \
         `infra-health --config {BUNDLED_CONFIG} board`)"
    )
}

/// Longest value quoted in an error message; longer ones are cut (a config value can be
/// megabytes long, and a message may quote it more than once).
pub const MAX_QUOTED_VALUE: usize = 80;
/// Longest error message; the rest is cut with a note.
pub const MAX_MESSAGE: usize = 2000;

/// Cut every quoted value (`"…"` or `` `…` ``) longer than [`MAX_QUOTED_VALUE`] characters to
/// that many with `…` and its length, then the whole message to [`MAX_MESSAGE`] characters.
pub fn clip_message(message: &str) -> String {
    let chars: Vec<char> = message.chars().collect();
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE + 100));
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '`' {
            // Find the closing quote, skipping backslash escapes.
            let mut j = i + 1;
            while j < chars.len() && chars[j] != c {
                if chars[j] == '\\' {
                    j += 1;
                }
                j += 1;
            }
            if j < chars.len() {
                let inner = &chars[i + 1..j];
                out.push(c);
                if inner.len() > MAX_QUOTED_VALUE {
                    out.extend(&inner[..MAX_QUOTED_VALUE]);
                    out.push('…');
                    out.push(c);
                    out.push_str(&format!(" ({} characters)", inner.len()));
                } else {
                    out.extend(inner);
                    out.push(c);
                }
                i = j + 1;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    let n = out.chars().count();
    if n > MAX_MESSAGE {
        let mut cut: String = out.chars().take(MAX_MESSAGE).collect();
        cut.push_str(&format!("… (message cut, {n} characters)"));
        return cut;
    }
    out
}

// ---- raw stage -------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct RawTop {
    #[serde(default)]
    defaults: Option<Spanned<toml::Table>>,
    #[serde(default)]
    state: Option<Spanned<toml::Table>>,
    #[serde(default)]
    sink: Option<Spanned<toml::Table>>,
    #[serde(default)]
    collector: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    check: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    dashboard: Option<Spanned<toml::Table>>,
}

const TOP_KEYS: &[&str] = &[
    "defaults",
    "state",
    "sink",
    "collector",
    "check",
    "dashboard",
];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDashboard {
    title: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    prefix: Option<String>,
    env: Option<String>,
    service: Option<String>,
    source: Option<String>,
    carry_forward: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawState {
    url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    workflow_category: String,
    workflow_name: String,
    task: String,
    check: String,
    #[serde(default)]
    title: Option<String>,
    collector: String,
    signal: String,
    #[serde(default, rename = "match")]
    matches: BTreeMap<String, String>,
    #[serde(default)]
    aggregate: Aggregate,
    condition: String,
    #[serde(default)]
    warn: Option<String>,
    #[serde(default)]
    encoding: Option<Encoding>,
    metric: String,
    #[serde(default)]
    summary: Option<Summary>,
    #[serde(default)]
    percentiles: bool,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    carry_forward: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

/// Collects errors with positions while the plan is built.
struct Problems<'a> {
    file: &'a Path,
    text: &'a str,
    list: Vec<ConfigError>,
}

impl Problems<'_> {
    fn at(&mut self, line: usize, key: Option<String>, message: impl Into<String>) {
        self.list.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            key: key.map(|k| clip_message(&k)),
            message: clip_message(&message.into()),
        });
    }

    /// An error about `key` inside the table at `span`.
    fn key(
        &mut self,
        span: &std::ops::Range<usize>,
        section: &str,
        key: &str,
        message: impl Into<String>,
    ) {
        let line = key_line(self.text, span, key);
        self.at(line, Some(format!("{section}.{key}")), message);
    }

    /// A serde error for the table at `span`: point at the key it names, if any.
    fn serde(&mut self, span: &std::ops::Range<usize>, section: &str, err: &toml::de::Error) {
        let message = err.message().trim().to_string();
        match key_in_message(&message) {
            Some(key) => self.key(span, section, &key, message),
            None => {
                // "invalid type: string "x", expected u64" has no key; find the bad value's key
                // by deserialising field by field is overkill: point at the table.
                self.at(
                    header_line(self.text, span),
                    Some(section.to_string()),
                    message,
                )
            }
        }
    }
}

/// Validate config text. `path` is used for messages and to resolve relative paths. Rows may
/// be absent here (a library caller may only want the collectors); [`load`], which every
/// command uses, refuses a config file without any `[[check]]` row ("no rows").
pub fn parse(path: &Path, text: &str) -> Result<Plan, ConfigErrors> {
    parse_with(path, text, false)
}

/// The plan of an empty config (default schema, sink and state; no collectors, no rows), for
/// commands that work without a config file (`import-stable` derives its rows).
pub fn defaults_plan() -> Result<Plan, ConfigErrors> {
    parse_with(Path::new("<defaults>"), "", false)
}

fn parse_with(path: &Path, text: &str, require_rows: bool) -> Result<Plan, ConfigErrors> {
    let mut p = Problems {
        file: path,
        text,
        list: Vec::new(),
    };

    // Syntax and top-level keys first: without them nothing else can be located.
    let top_keys: BTreeMap<String, Spanned<toml::Value>> = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
            p.at(line, None, format!("invalid TOML: {}", e.message().trim()));
            return Err(ConfigErrors(p.list));
        }
    };
    for (key, value) in &top_keys {
        if !TOP_KEYS.contains(&key.as_str()) {
            p.at(
                header_line(text, &value.span()),
                Some(key.clone()),
                format!("unknown section; expected one of: {}", TOP_KEYS.join(", ")),
            );
        }
    }
    let raw: RawTop = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
            p.at(line, None, e.message().trim().to_string());
            return Err(ConfigErrors(p.list));
        }
    };

    if require_rows && raw.check.is_empty() {
        p.at(
            1,
            Some("check".into()),
            format!(
                "no rows: the config has no [[check]] table, so there is nothing to evaluate. \
                 Add a [[check]] (see \"Configuration\" in the README), or start from the \
                 bundled config, {BUNDLED_CONFIG} in the repository"
            ),
        );
    }
    let defaults = resolve_defaults(&mut p, raw.defaults.as_ref());
    let state_url = raw.state.as_ref().and_then(|s| {
        match toml::Value::Table(s.get_ref().clone()).try_into::<RawState>() {
            Ok(r) => r.url,
            Err(e) => {
                p.serde(&s.span(), "state", &e);
                None
            }
        }
    });
    let sink = resolve_sink(&mut p, raw.sink.as_ref());
    let dashboard = resolve_dashboard(&mut p, raw.dashboard.as_ref(), &defaults);
    let schema = match Schema::new(
        &defaults.prefix,
        &defaults.env,
        &defaults.service,
        &defaults.tags,
    ) {
        Ok(s) => Some(s),
        Err(e) => {
            let span = raw.defaults.as_ref().map(|d| d.span()).unwrap_or(0..0);
            p.key(&span, "defaults", "prefix", e.to_string());
            None
        }
    };

    let config_dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    // Absolute, so a path resolved against it means the same thing from any working directory
    // (an `exec` command runs with the config's directory as its cwd).
    let config_dir = std::path::absolute(&config_dir).unwrap_or(config_dir);
    let collectors = resolve_collectors(&mut p, &raw.collector, &config_dir);
    let mut warnings = Vec::new();
    let checks = match &schema {
        Some(schema) => resolve_checks(
            &mut p,
            &raw.check,
            &defaults,
            schema,
            &collectors,
            &mut warnings,
        ),
        None => Vec::new(),
    };

    match schema {
        Some(schema) if p.list.is_empty() => Ok(Plan {
            file: path.to_path_buf(),
            defaults,
            schema,
            state_url,
            sink,
            collectors,
            checks,
            dashboard,
            warnings,
        }),
        _ => {
            p.list.sort_by_key(|e| e.line);
            Err(ConfigErrors(p.list))
        }
    }
}

fn resolve_defaults(p: &mut Problems, raw: Option<&Spanned<toml::Table>>) -> Defaults {
    let span = raw.map(|r| r.span()).unwrap_or(0..0);
    let parsed: RawDefaults = match raw {
        Some(t) => match toml::Value::Table(t.get_ref().clone()).try_into() {
            Ok(d) => d,
            Err(e) => {
                p.serde(&span, "defaults", &e);
                RawDefaults::default()
            }
        },
        None => RawDefaults::default(),
    };
    let carry_forward = match parsed.carry_forward.as_deref().map(parse_duration) {
        None => DEFAULT_CARRY_FORWARD,
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            p.key(&span, "defaults", "carry_forward", e.to_string());
            DEFAULT_CARRY_FORWARD
        }
    };
    for (k, v) in &parsed.tags {
        if let Err(e) = schema::validate_tag_key(k).and_then(|_| schema::validate_tag_value(k, v)) {
            p.key(&span, "defaults", "tags", e.to_string());
        }
    }
    // DD_ENV wins over the file, as it does for the Datadog Agent and tracers.
    let env = std::env::var("DD_ENV")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or(parsed.env)
        .unwrap_or_else(|| "dev".to_string());
    let source = parsed.source.unwrap_or_else(|| "cron".into());
    for (key, value) in [("env", &env), ("source", &source)] {
        if let Err(e) = schema::validate_tag_value(key, value) {
            p.key(&span, "defaults", key, e.to_string());
        }
    }
    Defaults {
        prefix: parsed
            .prefix
            .unwrap_or_else(|| schema::DEFAULT_PREFIX.into()),
        env,
        service: parsed
            .service
            .unwrap_or_else(|| schema::DEFAULT_SERVICE.into()),
        source,
        carry_forward,
        tags: parsed.tags,
    }
}

fn resolve_dashboard(
    p: &mut Problems,
    raw: Option<&Spanned<toml::Table>>,
    defaults: &Defaults,
) -> DashboardSettings {
    let parsed: RawDashboard = match raw {
        Some(t) => match toml::Value::Table(t.get_ref().clone()).try_into() {
            Ok(d) => d,
            Err(e) => {
                p.serde(&t.span(), "dashboard", &e);
                RawDashboard::default()
            }
        },
        None => RawDashboard::default(),
    };
    if let (Some(t), Some(raw)) = (&parsed.title, raw)
        && t.trim().is_empty()
    {
        p.key(
            &raw.span(),
            "dashboard",
            "title",
            "the title must not be empty",
        );
    }
    DashboardSettings {
        title: parsed
            .title
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| format!("Infra health ({})", defaults.env)),
        description: parsed.description.unwrap_or_else(|| {
            "Health matrix of CI, code, training and evaluation, generated by infra-health."
                .to_string()
        }),
    }
}

fn resolve_sink(p: &mut Problems, raw: Option<&Spanned<toml::Table>>) -> SinkSettings {
    let mut settings = SinkSettings {
        kind: SinkKind::Auto,
        events: false,
        datadog: toml::Table::new(),
    };
    let Some(raw) = raw else {
        return settings;
    };
    let span = raw.span();
    let mut table = raw.get_ref().clone();
    if let Some(v) = table.remove("type") {
        match v.try_into::<SinkKind>() {
            Ok(k) => settings.kind = k,
            Err(_) => p.key(
                &span,
                "sink",
                "type",
                "expected one of \"auto\", \"datadog\", \"local\", \"dry-run\"",
            ),
        }
    }
    if let Some(v) = table.remove("events") {
        match v.as_bool() {
            Some(b) => settings.events = b,
            None => p.key(&span, "sink", "events", "expected true or false"),
        }
    }
    for problem in crate::sinks::datadog::config::check_options(&table) {
        p.key(&span, "sink", &problem.key, problem.why);
    }
    settings.datadog = table;
    settings
}

fn resolve_collectors(
    p: &mut Problems,
    raw: &[Spanned<toml::Table>],
    config_dir: &Path,
) -> Vec<CollectorInstance> {
    let mut out: Vec<CollectorInstance> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for table in raw {
        let span = table.span();
        let mut options = table.get_ref().clone();
        let header = header_line(p.text, &span);
        let name = match options.remove("name") {
            Some(toml::Value::String(s)) if !s.trim().is_empty() => s,
            Some(_) => {
                p.key(&span, "collector", "name", "expected a non-empty string");
                continue;
            }
            None => {
                p.at(
                    header,
                    Some("collector.name".into()),
                    "every [[collector]] needs a `name`",
                );
                continue;
            }
        };
        if let Some(first) = seen.get(&name) {
            p.key(
                &span,
                "collector",
                "name",
                format!("duplicate collector name {name:?} (first defined on line {first})"),
            );
            continue;
        }
        seen.insert(name.clone(), header);
        let kind_name = match options.remove("type") {
            Some(toml::Value::String(s)) => s,
            _ => {
                p.at(
                    header,
                    Some("collector.type".into()),
                    format!(
                        "collector {name:?} needs a `type`, one of: {}",
                        collectors::kind_names()
                    ),
                );
                continue;
            }
        };
        let Some(kind) = collectors::find_kind(&kind_name) else {
            p.key(
                &span,
                "collector",
                "type",
                format!(
                    "unknown collector type {kind_name:?}; available: {}",
                    collectors::kind_names()
                ),
            );
            continue;
        };
        let timeout = match options.remove("timeout") {
            None => DEFAULT_COLLECTOR_TIMEOUT,
            Some(toml::Value::String(s)) => match parse_duration(&s) {
                Ok(d) => d,
                Err(e) => {
                    p.key(&span, "collector", "timeout", e.to_string());
                    continue;
                }
            },
            Some(_) => {
                p.key(
                    &span,
                    "collector",
                    "timeout",
                    "expected a duration string such as \"30s\"",
                );
                continue;
            }
        };
        let ctx = BuildContext {
            name: &name,
            options,
            config_dir: config_dir.to_path_buf(),
        };
        match (kind.build)(&ctx) {
            Ok(collector) => out.push(CollectorInstance {
                name,
                kind: kind.name,
                timeout,
                collector,
            }),
            Err(e) => {
                let (line, key) = match &e.key {
                    Some(key) => (
                        key_line(p.text, &span, key),
                        Some(format!("collector.{key}")),
                    ),
                    None => (line_of(p.text, span.start), None),
                };
                p.at(
                    line,
                    key,
                    format!("collector {name:?} ({}): {}", kind.name, e.message),
                );
            }
        }
    }
    out
}

fn resolve_checks(
    p: &mut Problems,
    raw: &[Spanned<toml::Table>],
    defaults: &Defaults,
    schema: &Schema,
    collectors: &[CollectorInstance],
    warnings: &mut Vec<String>,
) -> Vec<CheckDef> {
    let mut out = Vec::new();
    let mut seen: HashMap<RowId, usize> = HashMap::new();
    // Metric name (with its pipeline) → the type it is sent as, and the first row's line.
    let mut kinds: HashMap<String, (&'static str, usize)> = HashMap::new();
    // Condition tag value → the condition sent with it and its row's line: two conditions
    // that mean different things must not arrive in Datadog as the same tag.
    let mut condition_tags: HashMap<String, (Condition, usize)> = HashMap::new();
    for table in raw {
        let span = table.span();
        let header = header_line(p.text, &span);
        let r: RawCheck = match toml::Value::Table(table.get_ref().clone()).try_into() {
            Ok(r) => r,
            Err(e) => {
                p.serde(&span, "check", &e);
                continue;
            }
        };
        let errors_before = p.list.len();
        let row = RowId {
            source: r.source.clone().unwrap_or_else(|| defaults.source.clone()),
            workflow_category: r.workflow_category.clone(),
            workflow_name: r.workflow_name.clone(),
            task: r.task.clone(),
            check: r.check.clone(),
        };
        for (key, value) in [
            ("source", &row.source),
            ("workflow_category", &row.workflow_category),
            ("workflow_name", &row.workflow_name),
            ("task", &row.task),
            ("check", &row.check),
        ] {
            if let Err(e) = schema::validate_tag_value(key, value) {
                p.key(&span, "check", key, e.to_string());
            }
        }
        let condition = match Condition::parse(&r.condition) {
            Ok(c) => Some(c),
            Err(e) => {
                p.key(&span, "check", "condition", e.to_string());
                None
            }
        };
        let warn = match r.warn.as_deref().map(Condition::parse) {
            None => None,
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => {
                p.key(&span, "check", "warn", e.to_string());
                None
            }
        };
        if let Some(word) = condition.as_ref().and_then(Condition::non_ascii_word) {
            p.key(
                &span,
                "check",
                "condition",
                format!(
                    "the word {word:?} has characters outside ASCII; the `condition` tag keeps \
                     only a-z, 0-9, `_` and `.`, so it would arrive in Datadog as {:?}, which \
                     other words share; compare on an ASCII word",
                    condition
                        .as_ref()
                        .map(Condition::tag_value)
                        .unwrap_or_default()
                ),
            );
        }
        if let (Some(c), Some(w)) = (&condition, &warn)
            && let Err(why) = c.check_warn(w)
        {
            p.key(&span, "check", "warn", why);
        }
        if !collectors.iter().any(|c| c.name == r.collector) {
            let names: Vec<&str> = collectors.iter().map(|c| c.name.as_str()).collect();
            p.key(
                &span,
                "check",
                "collector",
                format!(
                    "no collector named {:?} (defined: {})",
                    r.collector,
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            );
        }
        if let Err(e) = schema.metric_name(&row.pipeline(), &r.metric) {
            p.key(&span, "check", "metric", e.to_string());
        }
        for (k, v) in &r.tags {
            if let Err(e) =
                schema::validate_tag_key(k).and_then(|_| schema::validate_tag_value(k, v))
            {
                p.key(&span, "check", "tags", e.to_string());
            }
        }
        if let Some(u) = &r.unit
            && let Err(e) = schema::validate_tag_value("unit", u)
        {
            p.key(&span, "check", "unit", e.to_string());
        }
        let parse_dur =
            |p: &mut Problems, key: &str, value: &Option<String>, default: Duration| match value
                .as_deref()
                .map(parse_duration)
            {
                None => default,
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    p.key(&span, "check", key, e.to_string());
                    default
                }
            };
        let carry_forward = parse_dur(p, "carry_forward", &r.carry_forward, defaults.carry_forward);
        let interval = parse_dur(p, "interval", &r.interval, Duration::from_secs(600));
        if interval.as_secs() == 0 {
            p.key(
                &span,
                "check",
                "interval",
                "a COUNT interval must be at least 1s",
            );
        }
        if let Some(first) = seen.get(&row) {
            p.at(
                header,
                Some("check".into()),
                format!("duplicate row {row} (first defined on line {first}); rows are identified by workflow_category, workflow_name, task and check"),
            );
            continue;
        }
        seen.insert(row.clone(), header);
        let Some(condition) = condition else { continue };
        if p.list.len() > errors_before {
            continue;
        }
        let tag = condition.tag_value();
        match condition_tags.get(&tag) {
            Some((other, line)) if !other.same_meaning(&condition) => {
                p.key(
                    &span,
                    "check",
                    "condition",
                    format!(
                        "condition {} is sent as the tag condition:{tag}, like the different \
                         condition {} of the row on line {line}; Datadog could not tell them \
                         apart: write one of them differently",
                        condition.human(),
                        other.human()
                    ),
                );
                continue;
            }
            Some(_) => {}
            None => {
                condition_tags.insert(tag, (condition.clone(), header));
            }
        }
        let encoding = r.encoding.unwrap_or(match condition.operand() {
            crate::checks::condition::Operand::Text(_) => Encoding::Status,
            _ => Encoding::Gauge,
        });
        if encoding == Encoding::Distribution && r.summary.is_none() && !r.percentiles {
            warnings.push(format!(
                "{}:{header}: row {row} is a distribution compared on p90 (set `summary` to choose)",
                p.file.display()
            ));
        }
        // Datadog keeps one type per metric name: a name sent as a distribution by one row and
        // as a gauge or count by another would be misread (or dropped) on one side.
        let kind = match encoding {
            Encoding::Status | Encoding::Gauge => "gauge",
            Encoding::Count => "count",
            Encoding::Distribution => "distribution",
        };
        // A count row also sends its level as the gauge `<metric>.window`.
        let mut sent = vec![(r.metric.clone(), kind)];
        if encoding == Encoding::Count {
            sent.push((crate::schema::encode::window_metric(&r.metric), "gauge"));
        }
        let mut clash = false;
        for (metric, kind) in sent {
            let full = format!("{}.{}", row.pipeline(), metric);
            match kinds.get(&full) {
                Some((other, line)) if *other != kind => {
                    p.key(
                        &span,
                        "check",
                        "metric",
                        format!(
                            "metric {metric:?} is sent as a {kind} here but as a {other} by the row on line {line}; Datadog keeps one type per metric name"
                        ),
                    );
                    clash = true;
                }
                _ => {
                    kinds.insert(full, (kind, header));
                }
            }
        }
        if clash {
            continue;
        }
        let title = r.title.clone().unwrap_or_else(|| {
            format!("{} {}", r.task.replace('_', " "), r.check.replace('_', " "))
        });
        out.push(CheckDef {
            row,
            collector: r.collector,
            signal: r.signal,
            matches: r.matches,
            aggregate: r.aggregate,
            condition,
            warn,
            encoding,
            metric: r.metric,
            summary: r.summary.unwrap_or(Summary::P90),
            percentiles: r.percentiles,
            interval: interval.as_secs().max(1),
            unit: r.unit,
            carry_forward,
            tags: r.tags,
            title,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = include_str!("../../config/infra-health.toml");

    fn path() -> PathBuf {
        // Relative paths in the bundled config resolve against config/.
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/infra-health.toml")
    }

    #[test]
    fn the_bundled_config_is_valid() {
        let plan = parse(&path(), GOOD).unwrap();
        assert_eq!(plan.checks.len(), 21);
        for c in &plan.collectors {
            assert!(
                plan.checks.iter().any(|d| d.collector == c.name),
                "collector {} feeds no row",
                c.name
            );
        }
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
        let text =
            format!("[[collector]]\nname = \"f\"\ntype = \"file\"\npath = \"x\"\n{row}{row}");
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
        let got: Vec<(usize, Option<String>)> =
            errs.iter().map(|e| (e.line, e.key.clone())).collect();
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
            errs[0].to_string().starts_with(
                "c.toml:3: `sink.compresion`: unknown key (did you mean `compression`?)"
            ),
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
            errs[0].message.contains("sent as the tag condition:eq_5, like the different condition ==5 of the row on line 5"),
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
}
