//! Integration tests, compiled into one binary (one link instead of one per file).
//!
//! Every server these tests talk to is started here on 127.0.0.1 (see `support/`) and stops by
//! itself; nothing else is mocked.

mod github;
mod support;
