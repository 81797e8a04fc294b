//! Graceful shutdown on SIGTERM and SIGINT.
//!
//! Kubernetes sends SIGTERM when a Job reaches `activeDeadlineSeconds` and when a pod is evicted,
//! then SIGKILL after `terminationGracePeriodSeconds` (30 s by default). Dying at once would lose
//! the run: nothing delivered, nothing spooled. So on the first signal:
//! - collectors still running are stopped (their tasks are dropped; an `exec` probe's process
//!   group is killed with them) and their rows carried forward or `unknown`;
//! - what is ready is delivered within [`GRACE`] of the signal, and whatever is not delivered by
//!   then is spooled for the next run;
//! - the process exits with [`crate::exit::INTERRUPTED`].
//!
//! A second signal exits at once with the same code. [`GRACE`] leaves ten seconds of the default
//! 30-second grace period for spooling and exit; the chart sets `terminationGracePeriodSeconds`
//! to match.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How long after the signal the run may go on delivering.
pub const GRACE: Duration = Duration::from_secs(20);

/// When the stop was asked for (`None`: not yet).
type Stop = Option<Instant>;

fn channel() -> &'static watch::Sender<Stop> {
    static CHANNEL: OnceLock<watch::Sender<Stop>> = OnceLock::new();
    CHANNEL.get_or_init(|| watch::Sender::new(None))
}

/// Listen for SIGTERM and SIGINT (call once, inside the runtime, from `main`).
pub fn install() {
    tokio::spawn(async {
        let mut first = true;
        loop {
            let name = match next_signal().await {
                Some(n) => n,
                None => return,
            };
            if first {
                tracing::warn!(
                    "{name} received: stopping collectors, delivering what is ready within {}s, spooling the rest",
                    GRACE.as_secs()
                );
                request();
                first = false;
            } else {
                eprintln!("{name} received again: exiting now");
                std::process::exit(i32::from(crate::exit::INTERRUPTED));
            }
        }
    });
}

async fn next_signal() -> Option<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for SIGTERM/SIGINT: the run will not shut down gracefully");
        return None;
    };
    tokio::select! {
        _ = term.recv() => Some("SIGTERM"),
        _ = int.recv() => Some("SIGINT"),
    }
}

/// Ask the run to stop (what a signal does; tests call it directly).
pub fn request() {
    channel().send_if_modified(|at| {
        if at.is_none() {
            *at = Some(Instant::now());
            true
        } else {
            false
        }
    });
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    channel().borrow().is_some()
}

/// When delivery must give up: [`GRACE`] after the signal; `None` while no stop was asked for.
pub fn deadline() -> Option<Instant> {
    channel().borrow().map(|at| at + GRACE)
}

/// Resolves when a stop is asked for (never, if it is not).
pub async fn requested_wait() {
    let mut rx = channel().subscribe();
    // An error means the sender is gone, which cannot happen for a static: wait forever then.
    if rx.wait_for(|at| at.is_some()).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves when the grace period after a stop request has run out.
pub async fn grace_over() {
    requested_wait().await;
    if let Some(d) = deadline() {
        tokio::time::sleep_until(d.into()).await;
    }
}
