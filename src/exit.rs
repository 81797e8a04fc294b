//! Exit codes, documented in the README, so a CronJob's failure alert means something.

/// Everything collected and delivered.
pub const OK: u8 = 0;
/// A fatal error before delivery: bad config, unreadable state, bad credentials file.
pub const FATAL: u8 = 1;
/// Command-line usage error (clap's own code), flags that would do nothing, `--only` naming no
/// collector.
pub const USAGE: u8 = 2;
/// Delivered, but one or more collectors failed: their rows are `unknown`.
pub const PARTIAL: u8 = 3;
/// Delivery failed; what could not be sent is spooled for the next run.
pub const DELIVERY_FAILED: u8 = 4;
/// Stopped by SIGTERM or SIGINT: what was collected was delivered or spooled within the grace
/// period, the collectors still running were stopped (see [`crate::shutdown`]).
pub const INTERRUPTED: u8 = 5;
/// Delivered, but the state store could not be written (row memory, checkpoints, board): until
/// it is fixed, rows are not carried forward and samples and events may be sent again.
pub const STATE_FAILED: u8 = 6;
/// `verify` (or `run --verify`): something delivered is not visible in Datadog as it was sent
/// (missing, late, a different value, status or tag), or a dashboard widget shows it wrongly.
pub const VERIFY_FAILED: u8 = 7;
/// Delivered, but points the intake refused as invalid (HTTP 400) or too large to fit any
/// request were dropped: they are not spooled (they would be refused again) and are counted in
/// `<prefix>.delivery.dropped_points` with `reason:rejected`.
pub const DROPPED: u8 = 8;
