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
//! A repeated signal within [`SAME_REQUEST`] of the first is the same request: `timeout(1)`,
//! `tini -g` and some `docker stop` set-ups signal the process *and* its process group, so one
//! stop arrives as two signals, sometimes apart. A later signal cuts the grace short
//! ([`hurry`]): delivery gives up at once and what is not delivered is spooled, then the run
//! exits with the same code. Nothing waits past the grace either way: a waiter for the state
//! store's lease gives up on the signal, retries and backoff end at the deadline, and a
//! watchdog exits the process [`HARD_STOP`] after the signal (or [`HURRY_STOP`] after a
//! second one) if something still hangs. [`GRACE`] leaves ten seconds of the default
//! 30-second grace period for spooling and exit; the chart sets `terminationGracePeriodSeconds`
//! to match.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How long after the signal the run may go on delivering.
pub const GRACE: Duration = Duration::from_secs(20);
/// A signal this soon after the first is the same request (one stop delivered twice).
pub const SAME_REQUEST: Duration = Duration::from_secs(2);
/// After the first signal, the process exits by then whatever still hangs.
pub const HARD_STOP: Duration = Duration::from_secs(25);
/// After a later signal cut the grace short, the time left to spool and exit.
pub const HURRY_STOP: Duration = Duration::from_secs(5);

/// A stop request: when it was asked for and when delivery must give up.
#[derive(Debug, Clone, Copy)]
struct Stop {
    asked: Instant,
    deadline: Instant,
}

fn channel() -> &'static watch::Sender<Option<Stop>> {
    static CHANNEL: OnceLock<watch::Sender<Option<Stop>>> = OnceLock::new();
    CHANNEL.get_or_init(|| watch::Sender::new(None))
}

/// Listen for SIGTERM and SIGINT (call once, inside the runtime, from `main`).
pub fn install() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for SIGTERM/SIGINT: the run will not shut down gracefully");
        return;
    };
    tokio::spawn(async move {
        let mut hurried = false;
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            let asked = channel().borrow().map(|s| s.asked);
            match asked {
                None => {
                    tracing::warn!(
                        "{name} received: stopping collectors, delivering what is ready within {}s, spooling the rest",
                        GRACE.as_secs()
                    );
                    request();
                    watchdog(HARD_STOP);
                }
                Some(at) if at.elapsed() < SAME_REQUEST => {
                    tracing::info!(
                        "{name} received again {:.1}s after the first: the same stop request, still delivering",
                        at.elapsed().as_secs_f64()
                    );
                }
                Some(_) if !hurried => {
                    tracing::warn!(
                        "{name} received again: cutting the grace period short; spooling what is not delivered, then exiting"
                    );
                    hurried = true;
                    hurry();
                    watchdog(HURRY_STOP);
                }
                Some(_) => tracing::warn!("{name} received again: already spooling and exiting"),
            }
        }
    });
}

/// Exit the process after `after` if it is still running then: the last resort against a wait
/// that ignores the stop (a state store that hangs), before the kubelet's SIGKILL.
fn watchdog(after: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        eprintln!(
            "still running {}s after the stop request: exiting now",
            after.as_secs()
        );
        std::process::exit(i32::from(crate::exit::INTERRUPTED));
    });
}

/// Ask the run to stop (what a signal does; tests call it directly).
pub fn request() {
    channel().send_if_modified(|stop| {
        if stop.is_none() {
            let now = Instant::now();
            *stop = Some(Stop {
                asked: now,
                deadline: now + GRACE,
            });
            true
        } else {
            false
        }
    });
}

/// Cut the grace period short (a later signal): delivery gives up now and spools the rest.
pub fn hurry() {
    channel().send_modify(|stop| {
        let now = Instant::now();
        *stop = Some(match *stop {
            Some(s) => Stop {
                asked: s.asked,
                deadline: s.deadline.min(now),
            },
            None => Stop {
                asked: now,
                deadline: now,
            },
        });
    });
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    channel().borrow().is_some()
}

/// When delivery must give up: [`GRACE`] after the signal (now, after [`hurry`]); `None` while
/// no stop was asked for.
pub fn deadline() -> Option<Instant> {
    channel().borrow().map(|s| s.deadline)
}

/// Resolves when a stop is asked for (never, if it is not).
pub async fn requested_wait() {
    let mut rx = channel().subscribe();
    // An error means the sender is gone, which cannot happen for a static: wait forever then.
    if rx.wait_for(|stop| stop.is_some()).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves when the grace period after a stop request has run out (at once after [`hurry`]).
pub async fn grace_over() {
    requested_wait().await;
    let mut rx = channel().subscribe();
    loop {
        let Some(d) = deadline() else {
            return;
        };
        tokio::select! {
            () = tokio::time::sleep_until(d.into()) => return,
            changed = rx.changed() => {
                if changed.is_err() {
                    tokio::time::sleep_until(d.into()).await;
                    return;
                }
            }
        }
    }
}
