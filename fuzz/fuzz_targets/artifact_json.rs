//! The JSON artifact reader: any bytes are an artifact or an error naming the file.
#![no_main]

use infra_health::stable_suite::{Format, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Err(e) = parse(bytes, Format::Json, "fuzz.json") {
        assert_eq!(e.file, "fuzz.json");
    }
});
