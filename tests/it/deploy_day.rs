//! Deploy day: what README and docs/ state is what the binary does.
//!
//! - The quick start stays offline on a GitHub Actions runner (`GITHUB_*` set to a loopback
//!   address that records every connection).
//! - Every `infra-health …` / `cargo run -- …` line of a fenced shell block in README.md and
//!   docs/*.md parses with the binary's own command line (every command and flag exists as
//!   written); the offline ones are run against the bundled config and must exit 0
//!   ([`EXECUTED`] lists which: `run`, `validate`, `checks`, `collectors`, `board`, `state show`,
//!   `dashboard render`, `dashboard terraform`). The rest (they need keys or the network, or name
//!   a placeholder such as `s3://…`) are only parsed.
//! - The docs' tables against the code: every exit code of src/exit.rs, every `reason` of
//!   `UnknownReason::ALL`, every environment variable the binary reads, which commands need the
//!   application key (each is run without it), `rust-version` against the locked dependencies.
//! - The operator stumbles: `state show | head`, a mistyped `--state`, unknown rows without a
//!   reason, "1 rows", and an unreachable S3 state store (exit 1, nothing collected).

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use infra_health::observation::UnknownReason;

use crate::support::{bin, repo_root};

fn bundled_config() -> PathBuf {
    repo_root().join("config/infra-health.toml")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A loopback port that accepts connections and counts them (what a request to it would be).
struct Recorder {
    url: String,
    connections: Arc<AtomicUsize>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                seen.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Recorder { url, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

// ---- 4. the quick start stays offline ---------------------------------------------------------

/// On a GitHub Actions runner GITHUB_API_URL, GITHUB_REPOSITORY and GITHUB_TOKEN are always set.
/// The bundled config replays recorded data, so none of them may send it to the network or ask
/// the replay for another repository.
#[test]
fn the_quick_start_stays_offline_with_an_actions_runners_environment() {
    let github = Recorder::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bin()
        .current_dir(dir.path())
        .args(["run", "--config"])
        .arg(bundled_config())
        .env("GITHUB_API_URL", &github.url)
        .env("GITHUB_REPOSITORY", "someone/else")
        .env("GITHUB_TOKEN", "ghp_not_a_real_token_0000000000000000")
        .env("GH_TOKEN", "ghp_not_a_real_token_0000000000000000")
        .env("GITHUB_ACTIONS", "true")
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("26 rows: ") && stdout.contains(" 0 unknown;"),
        "{stdout}"
    );
    assert_eq!(
        github.connections(),
        0,
        "the quick start connected to GITHUB_API_URL"
    );
    assert!(!stdout.contains("someone/else") && !stderr.contains("someone/else"));
    assert!(
        !stderr.contains("ghp_not_a_real_token"),
        "a token was printed"
    );
}

// ---- 3. every command of the docs works as written --------------------------------------------

/// The commands a doc test runs (offline, against the bundled config); every other documented
/// command line is parsed only.
const EXECUTED: &[&[&str]] = &[
    &["run"],
    &["validate"],
    &["checks"],
    &["collectors"],
    &["board"],
    &["state", "show"],
    &["dashboard", "render"],
    &["dashboard", "terraform"],
];

/// A documented command line: where it is, and its arguments after the program name.
#[derive(Debug)]
struct DocCommand {
    at: String,
    env: Vec<String>,
    args: Vec<String>,
}

/// `line` with each command substitution `$(…)` replaced by a plain word.
fn without_substitutions(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("$(") {
        out.push_str(&rest[..at]);
        let mut depth = 0;
        let mut end = rest.len();
        for (i, c) in rest[at + 1..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = at + 1 + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.push_str("SUBSTITUTED");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Split a shell line into words: quotes kept together, a `#` comment dropped.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                any = true;
            }
            None if c == '#' && word.is_empty() && !any => break,
            None if c.is_whitespace() => {
                if any || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            None => word.push(c),
        }
    }
    if any || !word.is_empty() {
        words.push(word);
    }
    words
}

/// Every `infra-health …` / `cargo run -- …` line of a fenced shell block (continuation lines
/// joined, `[--opt value]` brackets opened) in README.md and docs/*.md.
fn doc_commands() -> Vec<DocCommand> {
    let mut files = vec![repo_root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo_root().join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read doc");
        let name = file
            .strip_prefix(repo_root())
            .unwrap_or(&file)
            .display()
            .to_string();
        let mut fence: Option<String> = None;
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            let lineno = i + 1;
            if let Some(rest) = line.trim_start().strip_prefix("```") {
                fence = match fence {
                    None => Some(rest.trim().to_string()),
                    Some(_) => None,
                };
                i += 1;
                continue;
            }
            let shell = matches!(fence.as_deref(), Some("sh" | "bash" | "shell" | "console"));
            let mut full = line.to_string();
            while full.trim_end().ends_with('\\') && i + 1 < lines.len() {
                i += 1;
                let trimmed = full.trim_end();
                full = format!("{} {}", &trimmed[..trimmed.len() - 1], lines[i].trim());
            }
            i += 1;
            if !shell {
                continue;
            }
            let words = shell_words(&without_substitutions(&full).replace(['[', ']'], " "));
            let start = words
                .iter()
                .position(|w| {
                    !(w.contains('=') && w.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
                })
                .unwrap_or(words.len());
            let (env, rest) = words.split_at(start);
            let args = match rest {
                [p, rest @ ..] if p == "infra-health" => rest,
                [c, r, dd, rest @ ..] if c == "cargo" && r == "run" && dd == "--" => rest,
                _ => continue,
            };
            found.push(DocCommand {
                at: format!("{name}:{lineno}"),
                env: env.to_vec(),
                args: args.to_vec(),
            });
        }
    }
    found
}

fn is_executed(cmd: &DocCommand) -> bool {
    let offline = cmd.env.is_empty()
        && !cmd.args.iter().any(|a| {
            a.contains('…')
                || a.contains("...")
                || a.contains('$')
                || a.contains("SUBSTITUTED")
                || a == "--online"
        });
    offline
        && EXECUTED.iter().any(|prefix| {
            cmd.args.len() >= prefix.len()
                && cmd.args[..prefix.len()]
                    .iter()
                    .zip(prefix.iter())
                    .all(|(a, b)| a == b)
        })
}

#[test]
fn every_documented_command_line_works_as_written() {
    let commands = doc_commands();
    // The README's quick start alone has five; a regression in the extraction shows here.
    assert!(commands.len() >= 15, "{commands:#?}");
    let mut executed = 0;
    let dir = tempfile::tempdir().expect("tempdir");
    for cmd in &commands {
        let parsed = <infra_health::cli::Cli as clap::Parser>::try_parse_from(
            std::iter::once("infra-health".to_string()).chain(cmd.args.iter().cloned()),
        );
        if let Err(e) = parsed {
            panic!(
                "{}: `infra-health {}` does not parse:\n{e}",
                cmd.at,
                cmd.args.join(" ")
            );
        }
        if !is_executed(cmd) {
            continue;
        }
        // Against the bundled config; outputs land in the temporary directory.
        let mut args = Vec::new();
        let mut it = cmd.args.iter();
        while let Some(a) = it.next() {
            args.push(a.clone());
            if matches!(a.as_str(), "--config" | "-c") {
                it.next();
                args.push(bundled_config().display().to_string());
            }
        }
        let out = bin()
            .current_dir(dir.path())
            .args(&args)
            .env("INFRA_HEALTH_CONFIG", bundled_config())
            .output()
            .expect("run infra-health");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: `infra-health {}` failed:\n{}{}",
            cmd.at,
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        executed += 1;
    }
    assert!(
        executed >= 8,
        "only {executed} documented commands were run"
    );
}

// ---- 2. the docs' tables against the code ------------------------------------------------------

/// The exit codes src/exit.rs defines, as (number, constant name).
fn exit_codes() -> Vec<(u8, String)> {
    let codes: Vec<(u8, String)> = read("src/exit.rs")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let value = rest.split('=').nth(1)?.trim().trim_end_matches(';');
            Some((value.parse().ok()?, name.trim().to_string()))
        })
        .collect();
    assert!(codes.len() >= 8, "{codes:?}");
    codes
}

/// The first cells of the table rows under `heading` in `doc`.
fn table_first_cells(doc: &str, heading: &str) -> Vec<String> {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("no heading {heading:?}"));
    doc[start..]
        .lines()
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .filter_map(|l| l.split('|').nth(1))
        .map(|c| c.trim().trim_matches('`').to_string())
        .collect()
}

#[test]
fn the_exit_code_tables_list_every_exit_code() {
    let codes = exit_codes();
    for (doc, heading) in [
        ("README.md", "## Exit codes"),
        ("docs/deploy.md", "## 5. Exit codes and alerts"),
    ] {
        let cells = table_first_cells(&read(doc), heading);
        for (code, name) in &codes {
            assert!(
                cells.contains(&code.to_string()),
                "{doc} ({heading}) does not explain exit code {code} ({name}): {cells:?}"
            );
        }
        assert_eq!(
            cells.len(),
            codes.len(),
            "{doc}: codes the binary does not have: {cells:?}"
        );
    }
}

#[test]
fn the_reason_table_lists_every_unknown_reason() {
    let cells = table_first_cells(&read("README.md"), "### Why a row is unknown");
    let tags: Vec<String> = UnknownReason::ALL
        .iter()
        .map(|r| r.tag().to_string())
        .collect();
    assert_eq!(
        cells, tags,
        "README's reason table against UnknownReason::ALL"
    );
}

/// Every environment variable the binary reads is in the README's Environment table; the one it
/// sets for a probe is in docs/eval-probes.md.
#[test]
fn the_environment_table_lists_every_variable_the_binary_reads() {
    let readme = read("README.md");
    let start = readme.find("## Environment").expect("## Environment");
    let end = start
        + readme[start..]
            .find("\n## Limits")
            .expect("## Limits after it");
    let table = &readme[start..end];
    let mut names = std::collections::BTreeSet::new();
    let mut stack = vec![repo_root().join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source");
            // What the binary reads, not what a unit test sets for itself.
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            for piece in text.split('"').skip(1).step_by(2) {
                let is_env = [
                    "DD_",
                    "GITHUB_",
                    "GH_",
                    "INFRA_HEALTH_",
                    "AWS_ENDPOINT",
                    "RUST_LOG",
                ]
                .iter()
                .any(|p| piece.starts_with(p))
                    && piece
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                    && !piece.ends_with('_');
                if is_env {
                    names.insert(piece.to_string());
                }
            }
        }
    }
    for required in [
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "GITHUB_API_URL",
        "GITHUB_REPOSITORY",
        "DD_URL",
    ] {
        assert!(
            names.contains(required),
            "the scan misses {required}: {names:?}"
        );
    }
    let probe = read("docs/eval-probes.md");
    for name in &names {
        if name == "INFRA_HEALTH_PROBE_ID" {
            assert!(probe.contains(name.as_str()));
            continue;
        }
        assert!(
            table.contains(&format!("`{name}`")),
            "README's Environment table does not list {name}"
        );
    }
}

/// README's key table, `credentials check` and the binary agree on which commands need
/// `DD_APP_KEY`: each of them, run with the API key only, refuses and names `DD_APP_KEY`; a
/// command the table says needs no key runs without any.
#[test]
fn the_commands_that_need_the_application_key_refuse_without_it() {
    let readme = read("README.md");
    let start = readme
        .find("### Which key each command needs")
        .expect("key table");
    let rows: Vec<Vec<String>> = readme[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect();
    let mut needs_app: Vec<String> = rows
        .iter()
        .filter(|r| r[3].starts_with("yes"))
        .flat_map(|r| {
            r[1].split(',')
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    needs_app.sort();
    let mut from_code: Vec<String> = infra_health::cli::credentials::APP_KEY_COMMANDS
        .iter()
        .map(|s| s.to_string())
        .collect();
    from_code.sort();
    assert_eq!(
        needs_app, from_code,
        "README's key table against credentials check"
    );
    // docs/deploy.md names the same commands for the chart's jobs.
    let deploy = read("docs/deploy.md");
    assert!(deploy.contains("`dashboard push` needs the application key"));
    assert!(deploy.contains("`verify` reads the metrics query API"));

    let dir = tempfile::tempdir().expect("tempdir");
    let intake = Recorder::start();
    for command in &from_code {
        let out = bin()
            .current_dir(dir.path())
            .args(command.split(' '))
            .arg("--config")
            .arg(bundled_config())
            .env("DD_API_KEY", "0123456789abcdef0123456789abcdef")
            .env("DD_URL", &intake.url)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "`{command}` without DD_APP_KEY: {stderr}"
        );
        assert!(stderr.contains("DD_APP_KEY"), "`{command}`: {stderr}");
    }
    assert_eq!(
        intake.connections(),
        0,
        "a command sent something before asking for the key"
    );
    for command in ["dashboard render", "validate", "checks"] {
        bin()
            .current_dir(dir.path())
            .args(command.split(' '))
            .arg("--config")
            .arg(bundled_config())
            .assert()
            .success();
    }
}

/// `rust-version` is at least what every locked dependency declares (cargo metadata).
#[test]
fn rust_version_covers_the_locked_dependencies() {
    let manifest = read("Cargo.toml");
    let declared = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("rust-version in Cargo.toml")
        .trim_matches('"')
        .to_string();
    let version = |v: &str| -> Vec<u64> { v.split('.').filter_map(|p| p.parse().ok()).collect() };
    // The packages built for this host (the others' sources need not be downloaded).
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let vv = Command::new(rustc).arg("-vV").output().expect("rustc -vV");
    let host = String::from_utf8_lossy(&vv.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc -vV names the host");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host])
        .current_dir(repo_root())
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata json");
    let mut needs = (vec![0], String::new());
    for p in meta["packages"].as_array().expect("packages") {
        if let Some(rv) = p["rust_version"].as_str()
            && version(rv) > needs.0
        {
            needs = (version(rv), format!("{} {}", p["name"], p["version"]));
        }
    }
    assert!(
        version(&declared) >= needs.0,
        "rust-version = {declared:?}, but {} needs {:?}",
        needs.1,
        needs.0
    );
}

// ---- 3. the operator stumbles ------------------------------------------------------------------

/// A config with one row, fed by a file that does not exist (so the row is unknown).
fn one_row_config(dir: &Path) -> PathBuf {
    let path = dir.join("one.toml");
    std::fs::write(
        &path,
        "[sink]\ntype = \"local\"\n\n[[collector]]\nname = \"f\"\ntype = \"file\"\npath = \"missing.json\"\n\n\
         [[check]]\nworkflow_category = \"ci\"\nworkflow_name = \"w\"\ntask = \"t\"\ncheck = \"c\"\n\
         collector = \"f\"\nsignal = \"s\"\ncondition = \"<5\"\nmetric = \"ci.x\"\n",
    )
    .expect("write config");
    path
}

#[test]
fn one_row_is_one_row_and_an_unknown_row_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = one_row_config(dir.path());
    let state = dir.path().join("state");
    let out = bin()
        .args(["run", "--config"])
        .arg(&config)
        .arg("--state")
        .arg(&state)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("\n1 row: "), "{stdout}");
    assert!(!stdout.contains("1 rows"), "{stdout}");

    let out = bin()
        .args(["state", "show", "--config"])
        .arg(&config)
        .arg("--state")
        .arg(&state)
        .output()
        .expect("state show");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("1 row remembered"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("ci/w/t/c"))
        .unwrap_or_else(|| panic!("no row line: {stdout}"));
    assert!(line.contains("unknown"), "{line}");
    assert!(
        line.contains("collector_failed: ") && line.contains("missing.json"),
        "an unknown row must say why: {line}"
    );
}

/// `state show --json | head`: the reader closes the pipe early; the command must not panic.
#[test]
fn state_show_into_a_closed_pipe_does_not_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    bin()
        .current_dir(dir.path())
        .args(["run", "--config"])
        .arg(bundled_config())
        .assert()
        .success();
    for json in [true, false] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_infra-health"));
        cmd.current_dir(dir.path())
            .args(["state", "show", "--config"])
            .arg(bundled_config())
            .env_remove("INFRA_HEALTH_STATE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd.spawn().expect("spawn");
        // Read one byte, then close the pipe, as `head -c1` does.
        let mut stdout = child.stdout.take().expect("stdout");
        let mut first = [0u8; 1];
        let _ = stdout.read(&mut first);
        drop(stdout);
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(out.status.code(), Some(0), "json={json}: {stderr}");
    }
}

/// A mistyped `--state` is an error that says so, and leaves no directory behind.
#[test]
fn state_show_with_a_mistyped_state_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let typo = dir.path().join(".infra-heatlh");
    for args in [vec!["state", "show"], vec!["state", "reset", "ci/w/t/c"]] {
        let out = bin()
            .args(&args)
            .arg("--config")
            .arg(bundled_config())
            .arg("--state")
            .arg(&typo)
            .output()
            .expect("state");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("does not exist"), "{stderr}");
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
}

/// An S3 state store that cannot be reached stops `run` and `import-stable` before they collect
/// anything, with exit 1 (README and docs/deploy.md: "cannot be read or reached").
#[test]
fn an_unreachable_s3_state_store_is_exit_1_before_collecting() {
    // A port that refuses connections: bound, then closed.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let github = Recorder::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("gh.toml");
    // A live GitHub collector at a recording loopback port: it must never be asked.
    std::fs::write(
        &config,
        format!(
            "[sink]\ntype = \"local\"\n\n[[collector]]\nname = \"gh\"\ntype = \"github_issues\"\n\
             repo = \"acme/widgets\"\nlabels = [\"bug\"]\napi_url = \"{}\"\n\n[[check]]\nworkflow_category = \"code\"\n\
             workflow_name = \"w\"\ntask = \"t\"\ncheck = \"c\"\ncollector = \"gh\"\n\
             signal = \"issues.open\"\ncondition = \"<5\"\nmetric = \"github.bugs.count\"\n",
            github.url
        ),
    )
    .expect("config");
    for args in [
        vec!["run"],
        vec![
            "import-stable",
            "--from",
            dir.path().to_str().expect("utf-8"),
        ],
    ] {
        let out = bin()
            .args(&args)
            .arg("--config")
            .arg(&config)
            .args(["--state", "s3://infra-health-state/prefix"])
            .env("AWS_ENDPOINT_URL", &closed)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("state store cannot be reached"), "{stderr}");
        assert!(stderr.contains("nothing was collected or sent"), "{stderr}");
    }
    assert_eq!(
        github.connections(),
        0,
        "a collector ran although the state store was down"
    );
}

// ---- 2. rows derived from an artifact's acceptance criteria ------------------------------------

/// docs/stable-suite-artifact.md: a row derived from an artifact's acceptance criteria is carried
/// forward 26 h. A second import that finds nothing new must still show it (inferred), not drop
/// it; a newer artifact's criterion replaces the remembered one.
#[test]
fn acceptance_rows_survive_an_import_that_finds_nothing_new() {
    let dir = tempfile::tempdir().expect("tempdir");
    let artifacts = dir.path().join("artifacts");
    std::fs::create_dir_all(&artifacts).expect("mkdir");
    let state = dir.path().join("state");
    let emit = |run: &str, accept: &str| {
        bin()
            .args([
                "emit-stable",
                "--suite",
                "stable",
                "--job",
                "newjob",
                "--run-id",
                run,
            ])
            .args([
                "--metric",
                "sps=41000:steps_per_sec",
                "--accept",
                accept,
                "-o",
            ])
            .arg(artifacts.join(format!("{run}.json")))
            .assert()
            .success();
    };
    let import = || {
        let out = bin()
            .args(["import-stable", "--config"])
            .arg(bundled_config())
            .arg("--from")
            .arg(&artifacts)
            .arg("--state")
            .arg(&state)
            .output()
            .expect("import-stable");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        stdout
            .lines()
            .find(|l| l.starts_with("training/newjob"))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no derived row training/newjob:\n{stdout}"))
    };
    emit("r1", "sps>40000");
    let first = import();
    assert!(
        first.contains(">40000") && first.ends_with("pass"),
        "{first}"
    );
    let second = import();
    assert!(
        second.contains(">40000") && second.ends_with("pass (inferred)"),
        "{second}"
    );
    // A newer artifact with a stricter criterion: its condition wins.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    emit("r2", "sps>50000");
    let third = import();
    assert!(
        third.contains(">50000") && third.ends_with("fail"),
        "{third}"
    );
    let fourth = import();
    assert!(
        fourth.contains(">50000") && fourth.ends_with("fail (inferred)"),
        "{fourth}"
    );
}
