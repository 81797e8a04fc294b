//! Writing a command's output to stdout without panicking when the reader has gone.
//!
//! `print!` panics (exit 101) when stdout is a pipe whose reader closed it early, as in
//! `infra-health state show --json | head`. A reader that stopped reading has what it wanted:
//! [`stdout`] treats a broken pipe as done, and reports any other write error.

use std::io::{ErrorKind, Write};

use anyhow::Context;

/// Write `text` to stdout and flush it; a closed pipe is not an error.
pub fn stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e).context("cannot write to stdout"),
    }
}

/// `n` and the noun that agrees with it: `1 row`, `2 rows`, `0 rows`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn count_agrees_with_its_number() {
        assert_eq!(count(1, "row", "rows"), "1 row");
        assert_eq!(count(0, "row", "rows"), "0 rows");
        assert_eq!(count(2, "artifact", "artifacts"), "2 artifacts");
    }
}
