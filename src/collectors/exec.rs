//! `exec`: run a command (e.g. `./tools/request_eval --json`) and observe how it went.
//!
//! The command runs in its own process group with stdin closed. At `command_timeout`, or when
//! the run cancels the collector at its own `timeout`, the **whole group** is killed with
//! SIGKILL, so a hung child (`sh -c 'sleep 300 & sleep 300'`) never outlives the probe; a timed
//! out command is an error, so its rows are `unknown` and the rest of the run goes on. Whatever
//! is left of the group after a normal exit is killed too.
//!
//! | key | meaning | default |
//! | --- | --- | --- |
//! | `command` | argv list (`["./tools/request_eval", "--json"]`) or a string run with `sh -c` | required |
//! | `command_timeout` | kill the process group after this long | `30s` |
//! | `cwd` | working directory, relative to the config file | the config file's directory |
//! | `env` | extra environment variables (table) | none |
//! | `signal_prefix` | prefix of the signals below | `exec` |
//! | `success_codes` | exit codes that count as `success` | `[0]` |
//!
//! | signal | value |
//! | --- | --- |
//! | `<prefix>.result` | `success` (exit code in `success_codes`), `failure` (other exit code) or `killed` (ended by a signal) |
//! | `<prefix>.exit_code` | the exit code (absent when killed by a signal) |
//! | `<prefix>.duration` | wall time in seconds (unit `second`) |
//! | `<prefix>.bad_lines` | stdout lines that began with `{` but were not a valid observation |
//! | any | each stdout line that is a JSON object `{signal, value, unit?, tags?, timestamp?}` |
//!
//! Other stdout lines are ignored. stderr is kept (its last 4 KiB) for the error message and the
//! log when the command fails or times out.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{BuildContext, CollectContext, CollectError, Collector, CollectorKind};
use crate::checks::duration::{format_duration, parse_duration};
use crate::observation::{Observation, Value};

pub const KIND: CollectorKind = CollectorKind {
    name: "exec",
    description: "runs a command with a timeout (process group killed at the timeout); exit code, wall time and JSON lines",
    signals: &[
        "<prefix>.result",
        "<prefix>.exit_code",
        "<prefix>.duration",
        "<prefix>.bad_lines",
        "<any, from JSON lines on stdout>",
    ],
    tags: &[],
    self_metrics: &[],
    build,
};

const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// stdout beyond this is not kept (a probe's output is small; a runaway one must not eat memory).
const MAX_STDOUT: usize = 4 * 1024 * 1024;
/// How much of the end of stderr is kept for messages.
const STDERR_TAIL: usize = 4096;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CommandSpec {
    Shell(String),
    Argv(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecConfig {
    command: CommandSpec,
    #[serde(default)]
    command_timeout: Option<String>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    signal_prefix: Option<String>,
    #[serde(default)]
    success_codes: Option<Vec<i32>>,
}

/// A JSON line a command prints: the same shape as the `file` collector's observations.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LineObservation {
    signal: String,
    value: Value,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// Identities of the samples or counted events (an eval request id): sent once.
    #[serde(default)]
    ids: Vec<String>,
}

pub struct ExecCollector {
    argv: Vec<String>,
    cwd: PathBuf,
    env: BTreeMap<String, String>,
    timeout: Duration,
    prefix: String,
    success_codes: Vec<i32>,
}

fn build(ctx: &BuildContext) -> Result<Arc<dyn Collector>, String> {
    let cfg: ExecConfig = ctx.options()?;
    let mut argv = match cfg.command {
        CommandSpec::Shell(s) if !s.trim().is_empty() => vec!["sh".into(), "-c".into(), s],
        CommandSpec::Argv(v) if v.first().is_some_and(|p| !p.is_empty()) => v,
        _ => return Err("command: must be a non-empty string or list".into()),
    };
    // A program given as a relative path (`./tools/request_eval`) is relative to the config
    // file, like every other path in it; a bare name is looked up in PATH.
    if argv[0].contains('/') && !argv[0].starts_with('/') {
        argv[0] = ctx.resolve_path(&argv[0]).display().to_string();
    }
    let timeout = match cfg.command_timeout.as_deref() {
        None => DEFAULT_COMMAND_TIMEOUT,
        Some(s) => parse_duration(s).map_err(|e| format!("command_timeout: {e}"))?,
    };
    if timeout.is_zero() {
        return Err("command_timeout: must be more than 0s".into());
    }
    let prefix = cfg.signal_prefix.unwrap_or_else(|| "exec".into());
    if prefix.is_empty() || prefix.ends_with('.') {
        return Err("signal_prefix: must be a non-empty name without a trailing dot".into());
    }
    Ok(Arc::new(ExecCollector {
        argv,
        cwd: cfg
            .cwd
            .as_deref()
            .map(|c| ctx.resolve_path(c))
            .unwrap_or_else(|| ctx.config_dir.clone()),
        env: cfg.env,
        timeout,
        prefix,
        success_codes: cfg.success_codes.unwrap_or_else(|| vec![0]),
    }))
}

/// Kills a process group when dropped: on timeout, on cancellation of the collector's future
/// (the run's own timeout), and after a normal exit (leftover background children).
struct GroupKill {
    pgid: i32,
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        if self.pgid > 0 {
            // SAFETY: kill(2) takes plain integers; a negative pid names the process group we
            // created with process_group(0). ESRCH (group already gone) is fine.
            unsafe {
                libc::kill(-self.pgid, libc::SIGKILL);
            }
        }
    }
}

/// Read a pipe to the end into `buf`, keeping at most `cap` bytes (the head, or the tail when
/// `tail`), and keep draining past the cap so the writer never blocks on a full pipe.
async fn drain(mut pipe: impl AsyncRead + Unpin, buf: Arc<Mutex<Vec<u8>>>, cap: usize, tail: bool) {
    let mut chunk = vec![0u8; 8192];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let Ok(mut b) = buf.lock() else { return };
                if tail {
                    b.extend_from_slice(&chunk[..n]);
                    if b.len() > cap {
                        let cut = b.len() - cap;
                        b.drain(..cut);
                    }
                } else if b.len() < cap {
                    let take = n.min(cap - b.len());
                    b.extend_from_slice(&chunk[..take]);
                }
            }
        }
    }
}

fn text_of(buf: &Mutex<Vec<u8>>) -> String {
    buf.lock()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default()
}

impl ExecCollector {
    fn signal(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    fn describe(&self) -> String {
        self.argv.join(" ")
    }

    /// Observations from the command's stdout: one per JSON-object line.
    fn parse_lines(&self, stdout: &str, now: DateTime<Utc>) -> (Vec<Observation>, usize) {
        let mut out = Vec::new();
        let mut bad = 0;
        for (i, line) in stdout.lines().enumerate() {
            let line = line.trim();
            if !line.starts_with('{') {
                continue;
            }
            match serde_json::from_str::<LineObservation>(line) {
                Ok(l) if !l.signal.trim().is_empty() => out.push(Observation {
                    signal: l.signal,
                    value: l.value,
                    unit: l.unit,
                    timestamp: l.timestamp.unwrap_or(now),
                    tags: l.tags,
                    ids: l.ids,
                }),
                Ok(_) => {
                    bad += 1;
                    tracing::warn!("`{}` stdout line {}: empty signal", self.describe(), i + 1);
                }
                Err(e) => {
                    bad += 1;
                    tracing::warn!(
                        "`{}` stdout line {}: not an observation ({e}); skipped",
                        self.describe(),
                        i + 1
                    );
                }
            }
        }
        (out, bad)
    }

    async fn run(&self, now: DateTime<Utc>) -> Result<Vec<Observation>, CollectError> {
        let mut cmd = tokio::process::Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .current_dir(&self.cwd)
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|source| CollectError::Io {
            context: format!(
                "cannot start `{}` in {}",
                self.describe(),
                self.cwd.display()
            ),
            source,
        })?;
        let _group = GroupKill {
            pgid: child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .unwrap_or(0),
        };
        let out_buf = Arc::new(Mutex::new(Vec::new()));
        let err_buf = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let finished = async {
            let read_out = async {
                if let Some(p) = stdout {
                    drain(p, out_buf.clone(), MAX_STDOUT, false).await;
                }
            };
            let read_err = async {
                if let Some(p) = stderr {
                    drain(p, err_buf.clone(), STDERR_TAIL, true).await;
                }
            };
            let (_, _, status) = tokio::join!(read_out, read_err, child.wait());
            status
        };
        let status = match tokio::time::timeout(self.timeout, finished).await {
            Ok(Ok(status)) => status,
            Ok(Err(source)) => {
                return Err(CollectError::Io {
                    context: format!("waiting for `{}`", self.describe()),
                    source,
                });
            }
            Err(_) => {
                let stderr = text_of(&err_buf);
                return Err(CollectError::Source(format!(
                    "`{}` timed out after {}; killed its process group{}",
                    self.describe(),
                    format_duration(self.timeout),
                    if stderr.is_empty() {
                        String::new()
                    } else {
                        format!("; stderr: {stderr}")
                    }
                )));
            }
        };
        let wall = started.elapsed().as_secs_f64();
        let stdout = text_of(&out_buf);
        let stderr = text_of(&err_buf);
        let (mut obs, bad_lines) = self.parse_lines(&stdout, now);
        let result = match status.code() {
            Some(code) if self.success_codes.contains(&code) => "success",
            Some(_) => "failure",
            None => "killed",
        };
        if result != "success" {
            tracing::warn!(
                "`{}` ended with {status}{}",
                self.describe(),
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!("; stderr: {stderr}")
                }
            );
        }
        obs.push(Observation::new(
            self.signal("result"),
            Value::Text(result.into()),
            now,
        ));
        if let Some(code) = status.code() {
            obs.push(Observation::new(
                self.signal("exit_code"),
                Value::Number(f64::from(code)),
                now,
            ));
        }
        obs.push(
            Observation::new(self.signal("duration"), Value::Number(wall), now).with_unit("second"),
        );
        obs.push(Observation::new(
            self.signal("bad_lines"),
            Value::Number(bad_lines as f64),
            now,
        ));
        Ok(obs)
    }
}

impl Collector for ExecCollector {
    fn collect<'a>(
        &'a self,
        ctx: &'a CollectContext,
    ) -> BoxFuture<'a, Result<Vec<Observation>, CollectError>> {
        Box::pin(self.run(ctx.now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collector(argv: &[&str], timeout_ms: u64) -> ExecCollector {
        ExecCollector {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            cwd: std::env::temp_dir(),
            env: BTreeMap::new(),
            timeout: Duration::from_millis(timeout_ms),
            prefix: "remote_eval".into(),
            success_codes: vec![0],
        }
    }

    fn get<'a>(obs: &'a [Observation], signal: &str) -> &'a Value {
        &obs.iter().find(|o| o.signal == signal).unwrap().value
    }

    #[tokio::test]
    async fn reads_exit_code_wall_time_and_json_lines() {
        let c = collector(
            &[
                "sh",
                "-c",
                r#"echo 'starting'; echo '{"signal":"remote_eval.latency","value":[1.5,2.5],"unit":"second"}'; echo '{"broken'; echo oops >&2; exit 3"#,
            ],
            5000,
        );
        let obs = c.run(Utc::now()).await.unwrap();
        assert_eq!(
            get(&obs, "remote_eval.result"),
            &Value::Text("failure".into())
        );
        assert_eq!(get(&obs, "remote_eval.exit_code"), &Value::Number(3.0));
        assert_eq!(get(&obs, "remote_eval.bad_lines"), &Value::Number(1.0));
        assert_eq!(
            get(&obs, "remote_eval.latency"),
            &Value::Samples(vec![1.5, 2.5])
        );
        assert!(matches!(get(&obs, "remote_eval.duration"), Value::Number(d) if *d < 5.0));
    }

    #[tokio::test]
    async fn a_missing_program_is_an_error_naming_it() {
        let c = collector(&["/nonexistent/request_eval"], 1000);
        let err = c.run(Utc::now()).await.unwrap_err().to_string();
        assert!(err.contains("/nonexistent/request_eval"), "{err}");
    }
}
