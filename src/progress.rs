//! Progress for long work, on a terminal only.
//!
//! A first GitHub run makes thousands of requests and an import can read thousands of
//! artifacts; on a laptop that is minutes of silence. So while collectors run, each gets a line
//! on stderr with a spinner, its elapsed time and its own figures (GitHub requests so far). The
//! lines are drawn only when stderr is a terminal: in a CronJob, under `| tee` or in CI the
//! output is the log lines alone.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The terminal's progress lines, once any were drawn: log lines go around them.
static TERMINAL: OnceLock<MultiProgress> = OnceLock::new();

/// Where log lines go: stderr, written around the progress lines so neither garbles the
/// other (`tracing_subscriber::fmt().with_writer(|| LogWriter)`), with every secret's value
/// replaced ([`crate::secret::redact`]): the last edge before a log line leaves the process.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let clean = crate::secret::redact(&text);
        let out = clean.as_bytes();
        match TERMINAL.get() {
            Some(multi) => multi.suspend(|| std::io::stderr().write_all(out))?,
            None => std::io::stderr().write_all(out)?,
        }
        // The whole event was written (redacted): the caller's bytes are all consumed.
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The spinners of one collection, or nothing when stderr is not a terminal.
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// Spinners on stderr if it is a terminal, else a `Progress` that draws nothing.
    pub fn for_stderr() -> Progress {
        let multi = std::io::stderr().is_terminal().then(|| {
            TERMINAL
                .get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
                .clone()
        });
        Progress { multi }
    }

    /// A line for one collector.
    pub fn line(&self, name: &str) -> Line {
        let Some(multi) = &self.multi else {
            return Line(None);
        };
        let bar = multi.add(ProgressBar::new_spinner());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix:<28} {elapsed:>4} {msg}")
        {
            bar.set_style(style);
        }
        bar.set_prefix(name.to_string());
        bar.set_message("collecting");
        bar.enable_steady_tick(Duration::from_millis(120));
        Line(Some(bar))
    }
}

/// One collector's line (a no-op off a terminal).
pub struct Line(Option<ProgressBar>);

impl Line {
    pub fn is_drawn(&self) -> bool {
        self.0.is_some()
    }

    pub fn message(&self, text: String) {
        if let Some(b) = &self.0 {
            b.set_message(text);
        }
    }

    pub fn finish(&self, text: String) {
        if let Some(b) = &self.0 {
            b.finish_with_message(text);
        }
    }
}
