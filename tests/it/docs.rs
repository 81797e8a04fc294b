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
