//! The condition grammar (`<5m`, `in [0.5, 1]`, `==success`): any text parses or is an error,
//! and a parsed condition's forms read back.
#![no_main]

use infra_health::checks::Condition;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(c) = Condition::parse(text) {
        let human = c.to_string();
        let again = Condition::parse(&human).expect("a condition's human form parses");
        assert_eq!(again.to_string(), human);
    }
});
