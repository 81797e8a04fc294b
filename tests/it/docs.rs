//! The collector docs stay in step with the code.

use infra_health::collectors::REGISTRY;

#[test]
fn every_collector_and_signal_is_documented() {
    // Collectors are documented in docs/*.md (docs/collectors.md indexes them).
    let mut docs = String::new();
    for entry in std::fs::read_dir(crate::support::repo_root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push_str(&std::fs::read_to_string(&path).unwrap());
            docs.push_str("\n## (end of file)\n");
        }
    }
    for kind in REGISTRY {
        // A collector's section is `## `name`` or `### `name``, and runs to the next heading
        // of the same or a higher level.
        let name = format!("`{}`", kind.name);
        let Some((level, start)) = ["## ", "### "].iter().find_map(|hashes| {
            docs.find(&format!("\n{hashes}{name}\n"))
                .map(|at| (hashes.len() - 1, at + 1 + hashes.len() + name.len()))
        }) else {
            panic!("no docs/*.md has a section ## {name}");
        };
        let rest = &docs[start..];
        let end = rest
            .match_indices("\n#")
            .find(|(at, _)| {
                let hashes = rest[at + 1..].chars().take_while(|c| *c == '#').count();
                hashes <= level
            })
            .map(|(at, _)| at)
            .unwrap_or(rest.len());
        let section = &rest[..end];
        let heading = format!("{} {name}", "#".repeat(level));
        for signal in kind.signals {
            assert!(
                section.contains(&format!("`{signal}`")),
                "the docs section {heading} does not document signal `{signal}`"
            );
        }
    }
}

/// Every exit code of src/exit.rs has its row in the README's and the operations guide's exit
/// code tables, and the README's Limits table carries the id limit the reader enforces.
#[test]
fn every_exit_code_and_the_id_limit_are_documented() {
    let root = crate::support::repo_root();
    let exit = std::fs::read_to_string(root.join("src/exit.rs")).unwrap();
    let codes: Vec<u8> = exit
        .lines()
        .filter_map(|l| l.strip_prefix("pub const "))
        .filter_map(|l| l.split_once(": u8 = "))
        .map(|(_, v)| v.trim_end_matches(';').parse().unwrap())
        .collect();
    assert!(codes.contains(&infra_health::exit::DROPPED), "{codes:?}");
    for doc in ["README.md", "docs/deploy.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for code in &codes {
            assert!(
                text.lines().any(|l| l.starts_with(&format!("| {code} |"))),
                "{doc} has no exit-code row for {code}"
            );
        }
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let limit = infra_health::observation::MAX_ID_BYTES;
    assert!(
        readme
            .lines()
            .any(|l| l.starts_with("| an id in") && l.contains(&format!("{limit} bytes"))),
        "README's Limits table lacks the {limit}-byte id limit"
    );
}
