//! Property tests ("fuzzing") of the artifact readers: arbitrary bytes, mutated valid artifacts,
//! truncated and bit-flipped Parquet files must give an error naming the file (and, for a bad
//! field, the field), never a panic.

use proptest::prelude::*;
use serde_json::Value;

use super::tests::sample;
use super::{Format, RUN_FIELDS, parquet, parse, write_json};

/// The top-level fields a mutation may hit.
fn top() -> Vec<&'static str> {
    RUN_FIELDS
        .iter()
        .copied()
        .chain(["metrics", "acceptance"])
        .collect()
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        ".{0,12}".prop_map(Value::String),
        Just(Value::String("2026-11-20T04:10:00Z".into())),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Inputs `cargo fuzz` found (docs/fuzzing.md), each kept as a regression test.
#[test]
fn fuzz_findings_are_errors_naming_the_file() {
    // A dictionary page whose value length runs past the page: the `parquet` crate panics on an
    // out-of-bounds slice in `PlainDecoder<ByteArray>`; the reader contains it.
    let bytes = include_bytes!("../../tests/data/fuzz/parquet-plain-decoder-panic.parquet");
    let err = parse(bytes, Format::Parquet, "found.parquet").unwrap_err();
    assert_eq!(err.file, "found.parquet");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        for format in [Format::Json, Format::Parquet] {
            if let Err(e) = parse(&bytes, format, "fuzz/a") {
                prop_assert_eq!(e.file.as_str(), "fuzz/a");
                prop_assert!(!e.message.is_empty());
            }
        }
    }

    #[test]
    fn a_mutated_field_is_named_in_the_error(
        key_index in 0..RUN_FIELDS.len() + 5,
        replacement in prop::option::of(any_json()),
    ) {
        let mut doc: Value = serde_json::from_slice(&write_json(&sample()).unwrap()).unwrap();
        let top = top();
        let (path, slot) = match key_index.checked_sub(top.len()) {
            None => (top[key_index].to_string(), doc.as_object_mut().unwrap()),
            Some(i) => {
                let key = ["name", "value", "unit"][i];
                (format!("metrics[0].{key}"), doc["metrics"][0].as_object_mut().unwrap())
            }
        };
        let key = path.rsplit('.').next().unwrap().to_string();
        match replacement {
            Some(v) => { slot.insert(key.clone(), v); }
            None => { slot.remove(&key); }
        }
        if let Err(e) = parse(doc.to_string().as_bytes(), Format::Json, "fuzz/a.json") {
            let field = e.field.clone().unwrap_or_default();
            let related = field.starts_with(&path)
                || (path.ends_with("_at") && field == "finished_at")
                || (path.starts_with("metrics") && field.starts_with("metrics["))
                || (path == "metrics" && field.starts_with("acceptance["));
            prop_assert!(related, "mutating {} gave {}", path, e);
        }
    }

    #[test]
    fn truncated_or_bit_flipped_parquet_never_panics(
        truncate in any::<bool>(),
        cut in 0usize..4000,
        flips in prop::collection::vec((0usize..4000, 0u8..8), 0..6),
    ) {
        let mut bytes = parquet::write(&sample()).unwrap();
        for (at, bit) in flips {
            let at = at % bytes.len();
            bytes[at] ^= 1 << bit;
        }
        if truncate {
            let keep = cut % (bytes.len() + 1);
            bytes.truncate(keep);
        }
        if let Err(e) = parse(&bytes, Format::Parquet, "fuzz/a.parquet") {
            prop_assert_eq!(e.file.as_str(), "fuzz/a.parquet");
        }
    }
}
