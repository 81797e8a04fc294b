//! The observation reader of the `file` collector: any text is observations or an error
//! naming the file.
#![no_main]

use infra_health::collectors::file::FileCollector;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("a valid time");
    let c = FileCollector::new("fuzz.json".into());
    if let Err(e) = c.parse(text, now) {
        assert!(e.to_string().contains("fuzz.json"), "{e}");
    }
});
