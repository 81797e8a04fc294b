//! The Parquet artifact reader, decoded-size limits included: any bytes are an artifact or an
//! error naming the file, within libFuzzer's memory limit (run with `-rss_limit_mb=1024`: the
//! reader's own limits keep a file far below it).
//!
//! The first pass (issue 21) stopped at once on a panic inside the `parquet` crate (an
//! out-of-bounds slice in `PlainDecoder<ByteArray>` reading a dictionary page), which the reader
//! already turns into an error: see below.
#![no_main]

use infra_health::stable_suite::{Format, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    // The reader contains the `parquet` crate's own panics with `catch_unwind` (an error naming
    // the file, never a crash), but libFuzzer's panic hook aborts on any panic. Keep quiet on
    // those: a panic that escapes the reader still aborts in libfuzzer-sys and is a finding.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    if let Err(e) = parse(bytes, Format::Parquet, "fuzz.parquet") {
        assert_eq!(e.file, "fuzz.parquet");
    }
});
