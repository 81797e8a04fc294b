//! The Parquet artifact reader, decoded-size limits included: any bytes are an artifact or an
//! error naming the file, within libFuzzer's memory limit (run with `-rss_limit_mb=1024`: the
//! reader's own limits keep a file far below it).
#![no_main]

use infra_health::stable_suite::{Format, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Err(e) = parse(bytes, Format::Parquet, "fuzz.parquet") {
        assert_eq!(e.file, "fuzz.parquet");
    }
});
