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
        let heading = format!("## `{}`", kind.name);
        let Some(start) = docs.find(&heading) else {
            panic!("no docs/*.md has a section {heading}");
        };
        let section = &docs[start + heading.len()..];
        let section = &section[..section.find("\n## ").unwrap_or(section.len())];
        for signal in kind.signals {
            assert!(
                section.contains(&format!("`{signal}`")),
                "the docs section {heading} does not document signal `{signal}`"
            );
        }
    }
}
