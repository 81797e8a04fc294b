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
//! | `env` | environment variables set for the command (table of name → value) | none |
//! | `pass_env` | names of variables passed from infra-health's own environment (the allow-list) | none |
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
//!
//! **Environment.** The command gets a clean environment: `PATH`, `HOME` and `LANG` (when set),
//! the variables `pass_env` names, the `env` table, and [`PROBE_ID_ENV`]; nothing else of
//! infra-health's environment. Its own keys (`DD_API_KEY`, `DD_APP_KEY`, `GITHUB_TOKEN`,
//! `GH_TOKEN`, their `_FILE` forms) reach a probe only when `pass_env` names one, which is a risk
//! the config takes on (a warning says so). Whatever the command prints is redacted as it is
//! read ([`crate::secret::redact`]): a secret it echoes becomes `[redacted]` in observations,
//! messages, state and logs; stderr is also escaped (`\n`, control characters) so it cannot
//! forge log lines.
//!
//! **Identities.** A line's `ids`, when given, must be one per sample (or one per counted event
//! for a number), each at most [`crate::observation::MAX_ID_BYTES`] bytes, none repeated; a line
//! that breaks this is a bad line naming its signal, and the other lines still count.
//!
//! **Limits and edges.**
//! - stdout is capped at 4 MiB ([`MAX_STDOUT`]). A command that prints more is killed and the run
//!   is an error: none of its observations are trusted (a cut line, or signals past the cap, would
//!   be lost silently), its rows are `unknown` with `reason:output_too_large`.
//! - The probe is done when the command exits, not when every descendant has closed stdout: a
//!   background child that keeps the pipe open (`sleep 30 & echo ...`) gets [`EXIT_GRACE`] for
//!   what is already buffered, then reading stops and the child is killed.
//! - Descendants that left the process group (`setsid daemon &`) are killed too, on Linux: every
//!   probe's environment carries `INFRA_HEALTH_PROBE_ID=<unique id>`, and when the probe ends
//!   (exit, timeout or cancellation) every process whose environment holds that id is killed.
//!   The process is also a child subreaper (`PR_SET_CHILD_SUBREAPER`), so orphans of a probe are
//!   re-parented to it rather than to init, and the killed ones are reaped. A descendant that
//!   clears its environment is out of reach. Elsewhere only the process group is killed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{BuildContext, BuildError, CollectContext, CollectError, Collector, CollectorKind};
use crate::duration::{format_duration, parse_duration};
use crate::observation::{Observation, Value, check_ids};

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
/// A probe's stdout may be at most this long (a probe's output is small; a runaway one must not
/// eat memory). Past it the command is killed and the run is an `output_too_large` error.
pub const MAX_STDOUT: usize = 4 * 1024 * 1024;
/// After the command exits, how long what its descendants still hold open is read before the
/// probe stops reading.
pub const EXIT_GRACE: Duration = Duration::from_millis(250);
/// The environment variable that marks a probe's processes, so that descendants which left
/// the process group can be found and killed.
pub const PROBE_ID_ENV: &str = "INFRA_HEALTH_PROBE_ID";
/// How much of the end of stderr is kept for messages.
const STDERR_TAIL: usize = 4096;
/// Variables of infra-health's environment every command gets (when set).
pub const BASE_ENV: &[&str] = &["PATH", "HOME", "LANG"];

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
    pass_env: Vec<String>,
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
    pass_env: Vec<String>,
    timeout: Duration,
    prefix: String,
    success_codes: Vec<i32>,
}

fn build(ctx: &BuildContext) -> Result<Arc<dyn Collector>, BuildError> {
    let cfg: ExecConfig = ctx.options()?;
    let mut argv = match cfg.command {
        CommandSpec::Shell(s) if !s.trim().is_empty() => vec!["sh".into(), "-c".into(), s],
        CommandSpec::Argv(v) if v.first().is_some_and(|p| !p.is_empty()) => v,
        _ => {
            return Err(BuildError::at(
                "command",
                "must be a non-empty string or list",
            ));
        }
    };
    // A program given as a relative path (`./tools/request_eval`) is relative to the config
    // file, like every other path in it; a bare name is looked up in PATH.
    if argv[0].contains('/') && !argv[0].starts_with('/') {
        argv[0] = ctx.resolve_path(&argv[0]).display().to_string();
    }
    let timeout = match cfg.command_timeout.as_deref() {
        None => DEFAULT_COMMAND_TIMEOUT,
        Some(s) => parse_duration(s).map_err(|e| BuildError::at("command_timeout", e))?,
    };
    if timeout.is_zero() {
        return Err(BuildError::at("command_timeout", "must be more than 0s"));
    }
    let prefix = cfg.signal_prefix.unwrap_or_else(|| "exec".into());
    if prefix.is_empty() || prefix.ends_with('.') {
        return Err(BuildError::at(
            "signal_prefix",
            "must be a non-empty name without a trailing dot",
        ));
    }
    for name in &cfg.pass_env {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(BuildError::at(
                "pass_env",
                format!("{name:?} is not an environment variable name"),
            ));
        }
        let base = name.strip_suffix("_FILE").unwrap_or(name);
        if crate::secret::WELL_KNOWN.contains(&base) {
            tracing::warn!(
                "exec `{}`: pass_env hands {name} to the command; it can read the key (its output is still redacted)",
                argv.join(" ")
            );
        }
    }
    Ok(Arc::new(ExecCollector {
        argv,
        cwd: cfg
            .cwd
            .as_deref()
            .map(|c| ctx.resolve_path(c))
            .unwrap_or_else(|| ctx.config_dir.clone()),
        env: cfg.env,
        pass_env: cfg.pass_env,
        timeout,
        prefix,
        success_codes: cfg.success_codes.unwrap_or_else(|| vec![0]),
    }))
}

/// Kills a probe's processes when dropped: on timeout, on cancellation of the collector's future
/// (the run's own timeout), and after a normal exit (leftover background children): its process
/// group, and (Linux) every process carrying its probe id, adopted orphans reaped.
struct ProbeGuard {
    pgid: i32,
    probe_id: String,
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        if self.pgid > 0 {
            // SAFETY: kill(2) takes plain integers; a negative pid names the process group we
            // created with process_group(0). ESRCH (group already gone) is fine.
            unsafe {
                libc::kill(-self.pgid, libc::SIGKILL);
            }
        }
        tree::kill_marked(&self.probe_id, self.pgid);
    }
}

/// A unique id per probe in this process: `<pid>-<counter>`.
fn next_probe_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// Finding and killing a probe's descendants that left its process group (Linux: `/proc`).
///
/// Only processes carrying the probe's id are touched: this code may run inside a bigger
/// program (or a test harness) whose other children are none of its business, so it never
/// kills or reaps an unmarked process, nor the probe's own command (tokio reaps that one).
#[cfg(target_os = "linux")]
mod tree {
    use std::collections::BTreeSet;
    use std::sync::Once;
    use std::time::{Duration, Instant};

    /// Become a child subreaper once, so a probe's orphans are re-parented to this process
    /// (and reaped here) rather than to init.
    pub fn become_subreaper() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes one integer argument.
            let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
            if rc != 0 {
                tracing::debug!(
                    "cannot become a child subreaper ({}); orphans of exec probes go to init",
                    std::io::Error::last_os_error()
                );
            }
        });
    }

    /// `(state, ppid)` from `/proc/<pid>/stat` (the command name may hold spaces and parens).
    fn stat(pid: i32) -> Option<(char, i32)> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = text.rsplit_once(')')?.1;
        let mut fields = rest.split_whitespace();
        let state = fields.next()?.chars().next()?;
        let ppid = fields.next()?.parse().ok()?;
        Some((state, ppid))
    }

    fn has_marker(pid: i32, marker: &[u8]) -> bool {
        std::fs::read(format!("/proc/{pid}/environ"))
            .map(|env| env.split(|b| *b == 0).any(|kv| kv == marker))
            .unwrap_or(false)
    }

    fn pids() -> Vec<i32> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect()
    }

    /// SIGKILL every live process whose environment carries `probe_id` (but `leader`, the
    /// probe's command, which the group kill and tokio handle), and reap those that were
    /// re-parented to this process. Bounded: a few scans and at most half a second of reaping.
    pub fn kill_marked(probe_id: &str, leader: i32) {
        let me = i32::try_from(std::process::id()).unwrap_or(0);
        let marker = format!("{}={probe_id}", super::PROBE_ID_ENV).into_bytes();
        // Killed here and our children (adopted): a zombie until waited for.
        let mut reap: BTreeSet<i32> = BTreeSet::new();
        for _ in 0..5 {
            let mut killed = false;
            for pid in pids() {
                if pid == me || pid == leader || reap.contains(&pid) {
                    continue;
                }
                let Some((state, ppid)) = stat(pid) else {
                    continue;
                };
                if state == 'Z' || state == 'X' || !has_marker(pid, &marker) {
                    continue;
                }
                // SAFETY: kill(2) with a pid read from /proc; ESRCH is fine.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
                killed = true;
                if ppid == me {
                    reap.insert(pid);
                }
            }
            if !killed {
                break;
            }
            // A process forking while we scanned: look again.
            std::thread::sleep(Duration::from_millis(10));
        }
        let deadline = Instant::now() + Duration::from_millis(500);
        while !reap.is_empty() && Instant::now() < deadline {
            reap.retain(|&pid| {
                let mut status = 0;
                // SAFETY: waitpid on one pid that is our child (adopted) and not tokio's.
                let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                // 0: killed but not dead yet; the pid or -1 (ECHILD): done with it.
                rc == 0
            });
            if !reap.is_empty() {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod tree {
    pub fn become_subreaper() {}
    pub fn kill_marked(_: &str, _: i32) {}
}

/// How reading a pipe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drained {
    /// End of file (or a read error).
    Eof,
    /// More than the cap was written (head mode only).
    Overflow,
}

/// Read a pipe to the end into `buf`, keeping at most `cap` bytes. `tail`: keep the last `cap`
/// bytes and drain past the cap so the writer never blocks; head mode: stop with
/// [`Drained::Overflow`] as soon as more than `cap` bytes arrived.
async fn drain(
    mut pipe: impl AsyncRead + Unpin,
    buf: Arc<Mutex<Vec<u8>>>,
    cap: usize,
    tail: bool,
) -> Drained {
    let mut chunk = vec![0u8; 8192];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return Drained::Eof,
            Ok(n) => {
                let Ok(mut b) = buf.lock() else {
                    return Drained::Eof;
                };
                if tail {
                    b.extend_from_slice(&chunk[..n]);
                    if b.len() > cap {
                        let cut = b.len() - cap;
                        b.drain(..cut);
                    }
                } else if b.len() + n > cap {
                    return Drained::Overflow;
                } else {
                    b.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }
}

/// Captured stdout as text, every secret redacted where it enters the program.
fn text_of(buf: &Mutex<Vec<u8>>) -> String {
    buf.lock()
        .map(|b| crate::secret::redact(String::from_utf8_lossy(&b).trim()).into_owned())
        .unwrap_or_default()
}

/// Captured stderr for a message: redacted, control characters escaped (one line).
fn stderr_of(buf: &Mutex<Vec<u8>>) -> String {
    buf.lock()
        .map(|b| crate::secret::sanitize_captured(String::from_utf8_lossy(&b).trim()))
        .unwrap_or_default()
}

impl ExecCollector {
    fn signal(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    fn describe(&self) -> String {
        self.argv.join(" ")
    }

    /// What the command inherits: [`BASE_ENV`] and `pass_env`, those that are set.
    fn passed_env(&self) -> Vec<(String, std::ffi::OsString)> {
        BASE_ENV
            .iter()
            .copied()
            .chain(self.pass_env.iter().map(String::as_str))
            .filter_map(|name| std::env::var_os(name).map(|v| (name.to_string(), v)))
            .collect()
    }

    /// Observations from the command's stdout: one per JSON-object line.
    fn parse_lines(&self, stdout: &str, now: DateTime<Utc>) -> (Vec<Observation>, usize) {
        let mut out = Vec::new();
        let mut bad = 0;
        for (i, line) in stdout.lines().enumerate() {
            // A byte-order mark (a tool written on Windows) is not part of the JSON.
            let line = line.trim().trim_start_matches('\u{feff}');
            if !line.starts_with('{') {
                continue;
            }
            match serde_json::from_str::<LineObservation>(line) {
                Ok(l) if !l.signal.trim().is_empty() && check_ids(&l.value, &l.ids).is_err() => {
                    bad += 1;
                    let why = check_ids(&l.value, &l.ids).err().unwrap_or_default();
                    tracing::warn!(
                        "`{}` stdout line {} (signal {:?}): bad ids: {why}; skipped",
                        self.describe(),
                        i + 1,
                        crate::secret::sanitize_captured(&l.signal)
                    );
                }
                Ok(l) if !l.signal.trim().is_empty() => {
                    // JSON escapes can carry line breaks and terminal codes into texts that
                    // are printed and logged: escape them as for stderr.
                    let clean = |t: String| crate::secret::sanitize_captured(&t);
                    out.push(Observation {
                        signal: clean(l.signal),
                        value: match l.value {
                            Value::Text(t) => Value::Text(clean(t)),
                            v => v,
                        },
                        unit: l.unit.map(clean),
                        timestamp: l.timestamp.unwrap_or(now),
                        tags: l
                            .tags
                            .into_iter()
                            .map(|(k, v)| (clean(k), clean(v)))
                            .collect(),
                        ids: l.ids,
                        unknown_reason: None,
                    })
                }
                Ok(_) => {
                    bad += 1;
                    tracing::warn!("`{}` stdout line {}: empty signal", self.describe(), i + 1);
                }
                Err(e) => {
                    bad += 1;
                    tracing::warn!(
                        "`{}` stdout line {}: not an observation ({}); skipped",
                        self.describe(),
                        i + 1,
                        crate::secret::sanitize_captured(&e.to_string())
                    );
                }
            }
        }
        (out, bad)
    }

    async fn run(&self, now: DateTime<Utc>) -> Result<Vec<Observation>, CollectError> {
        tree::become_subreaper();
        let probe_id = next_probe_id();
        let mut cmd = tokio::process::Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .current_dir(&self.cwd)
            .env_clear()
            .envs(self.passed_env())
            .envs(&self.env)
            .env(PROBE_ID_ENV, &probe_id)
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
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .unwrap_or(0);
        let _guard = ProbeGuard { pgid, probe_id };
        let out_buf = Arc::new(Mutex::new(Vec::new()));
        let err_buf = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let finished = async {
            let read_out = async {
                match stdout {
                    Some(p) => drain(p, out_buf.clone(), MAX_STDOUT, false).await,
                    None => Drained::Eof,
                }
            };
            let read_err = async {
                if let Some(p) = stderr {
                    drain(p, err_buf.clone(), STDERR_TAIL, true).await;
                }
            };
            let mut read_out = std::pin::pin!(read_out);
            let mut read_err = std::pin::pin!(read_err);
            let (mut out_done, mut err_done) = (false, false);
            // Done when the command exits; a descendant holding the pipes open does not count.
            let status = loop {
                tokio::select! {
                    drained = &mut read_out, if !out_done => {
                        out_done = true;
                        if drained == Drained::Overflow {
                            return Ok(None);
                        }
                    }
                    () = &mut read_err, if !err_done => err_done = true,
                    status = child.wait() => break status?,
                }
            };
            // What the command wrote before exiting is in the pipe: a short grace to read it.
            let rest = async {
                let out = if out_done {
                    Drained::Eof
                } else {
                    (&mut read_out).await
                };
                if !err_done {
                    (&mut read_err).await;
                }
                out
            };
            if let Ok(Drained::Overflow) = tokio::time::timeout(EXIT_GRACE, rest).await {
                return Ok(None);
            }
            Ok(Some(status))
        };
        let status = match tokio::time::timeout(self.timeout, finished).await {
            Ok(Ok(Some(status))) => status,
            Ok(Ok(None)) => {
                return Err(CollectError::OutputTooLarge(format!(
                    "`{}` printed more than {} MiB on stdout (output too large); it was killed and none of its observations are used: print less, or only the JSON lines",
                    self.describe(),
                    MAX_STDOUT / (1024 * 1024)
                )));
            }
            Ok(Err(source)) => {
                return Err(CollectError::Io {
                    context: format!("waiting for `{}`", self.describe()),
                    source,
                });
            }
            Err(_) => {
                let stderr = stderr_of(&err_buf);
                return Err(CollectError::Timeout(format!(
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
        let stderr = stderr_of(&err_buf);
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
            pass_env: Vec::new(),
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
    async fn stdout_past_the_cap_is_an_error_not_a_silent_cut() {
        // The signal line comes after the cap: cutting silently would lose it.
        let c = collector(
            &[
                "sh",
                "-c",
                r#"head -c 5000000 /dev/zero | tr '\0' 'a'; echo; echo '{"signal":"late","value":1}'"#,
            ],
            20_000,
        );
        let started = Instant::now();
        let err = c.run(Utc::now()).await.unwrap_err();
        assert_eq!(err.error_type(), "output_too_large");
        assert_eq!(
            err.unknown_reason(),
            crate::observation::UnknownReason::OutputTooLarge
        );
        let text = err.to_string();
        assert!(
            text.contains("output too large") && text.contains("4 MiB"),
            "{text}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));

        // Just under the cap is fine.
        let c = collector(
            &[
                "sh",
                "-c",
                r#"head -c 4000000 /dev/zero | tr '\0' 'a'; echo; echo '{"signal":"late","value":1}'"#,
            ],
            20_000,
        );
        let obs = c.run(Utc::now()).await.unwrap();
        assert_eq!(get(&obs, "late"), &Value::Number(1.0));
    }

    #[tokio::test]
    async fn the_probe_is_done_when_the_command_exits() {
        // A background child keeps stdout open for 30s; the probe must not wait for it.
        let c = collector(
            &[
                "sh",
                "-c",
                r#"sleep 30 & echo '{"signal":"remote_eval.latency","value":2}'"#,
            ],
            10_000,
        );
        let started = Instant::now();
        let obs = c.run(Utc::now()).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            get(&obs, "remote_eval.result"),
            &Value::Text("success".into())
        );
        assert_eq!(get(&obs, "remote_eval.latency"), &Value::Number(2.0));
    }

    #[tokio::test]
    async fn lines_with_bad_ids_are_bad_lines_and_the_rest_still_count() {
        let c = collector(
            &[
                "sh",
                "-c",
                r#"printf '\357\273\277{"signal":"bom","value":1}\n'
echo '{"signal":"mismatch","value":[1,2,3],"ids":["a","b"]}'
echo '{"signal":"dup","value":[1,2],"ids":["a","a"]}'
echo '{"signal":"good","value":[1,2],"ids":["a","b"]}'"#,
            ],
            5000,
        );
        let obs = c.run(Utc::now()).await.unwrap();
        assert_eq!(get(&obs, "remote_eval.bad_lines"), &Value::Number(2.0));
        assert_eq!(get(&obs, "good"), &Value::Samples(vec![1.0, 2.0]));
        assert_eq!(get(&obs, "bom"), &Value::Number(1.0));
        let c = collector(
            &[
                "sh",
                "-c",
                r#"printf '%s\n' '{"signal":"text","value":"ok\nFORGED line","tags":{"runner":"a\u001b[31m"}}'"#,
            ],
            5000,
        );
        let obs = c.run(Utc::now()).await.unwrap();
        let text = obs.iter().find(|o| o.signal == "text").unwrap();
        assert_eq!(text.value, Value::Text("ok\\nFORGED line".into()));
        assert_eq!(text.tags["runner"], "a\\u{1b}[31m");
        assert!(
            !obs.iter()
                .any(|o| o.signal == "mismatch" || o.signal == "dup")
        );
    }

    #[tokio::test]
    async fn the_command_gets_a_clean_environment_and_its_output_is_redacted() {
        // SAFETY: variable names only this test uses.
        unsafe {
            std::env::set_var("INFRA_HEALTH_TEST_PASSED", "passed-value");
            std::env::set_var("INFRA_HEALTH_TEST_HIDDEN", "hidden-value");
        }
        crate::secret::register("exec-test-secret-4711");
        let mut c = collector(
            &[
                "sh",
                "-c",
                r#"echo "{\"signal\":\"env\",\"value\":\"$(env | sort | tr '\n' ' ')\"}"; echo 'exec-test-secret-4711 line1
forged line2' >&2; exit 1"#,
            ],
            5000,
        );
        c.pass_env = vec!["INFRA_HEALTH_TEST_PASSED".into()];
        let obs = c.run(Utc::now()).await.unwrap();
        let Value::Text(env) = get(&obs, "env") else {
            panic!("no env line")
        };
        assert!(
            env.contains("INFRA_HEALTH_TEST_PASSED=passed-value"),
            "{env}"
        );
        assert!(!env.contains("hidden-value"), "{env}");
        assert!(env.contains("PATH="), "{env}");
        assert!(env.contains(PROBE_ID_ENV), "{env}");
        let stderr = stderr_of(&Mutex::new(b"exec-test-secret-4711 a\nb".to_vec()));
        assert_eq!(stderr, "[redacted] a\\nb");
    }

    #[tokio::test]
    async fn a_missing_program_is_an_error_naming_it() {
        let c = collector(&["/nonexistent/request_eval"], 1000);
        let err = c.run(Utc::now()).await.unwrap_err().to_string();
        assert!(err.contains("/nonexistent/request_eval"), "{err}");
    }
}
