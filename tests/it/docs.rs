//! The collector docs stay in step with the code.

use infra_health::collectors::REGISTRY;

#[test]
fn every_collector_and_signal_is_documented() {
    let docs = std::fs::read_to_string(crate::support::repo_root().join("docs/collectors.md"))
        .expect("docs/collectors.md exists");
    for kind in REGISTRY {
        let heading = format!("## `{}`", kind.name);
        let Some(start) = docs.find(&heading) else {
            panic!("docs/collectors.md has no section {heading}");
        };
        let section = &docs[start + heading.len()..];
        let section = &section[..section.find("\n## ").unwrap_or(section.len())];
        for signal in kind.signals {
            assert!(
                section.contains(&format!("`{signal}`")),
                "docs/collectors.md section {heading} does not document signal `{signal}`"
            );
        }
    }
}
