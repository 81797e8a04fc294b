//! Rows an import derives from the artifacts themselves: one per acceptance criterion an
//! artifact declares (`"acceptance": [{"metric": "sps", "condition": ">40000"}]`) where no
//! config row covers that job and signal, so a new suite job shows on the matrix without a
//! config change.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::checks::{Aggregate, CheckDef, Condition, Encoding, RowId, Summary};
use crate::observation::Observation;
use crate::stable_suite::TAG_ACCEPTANCE;

/// Source tag and pipeline of everything imported.
pub const SOURCE: &str = "stable_suite";
/// How long a row derived from an artifact's acceptance criteria is carried forward: a nightly
/// suite plus two hours of slack.
pub const DERIVED_CARRY_FORWARD: Duration = Duration::from_secs(26 * 3600);

/// Rows for acceptance criteria the artifacts declare and no config row covers: one per
/// (job, signal), from the newest artifact declaring it. Row: `training / <job> / <suite> /
/// <signal>`, metric `training.<signal>`.
pub fn acceptance_rows(
    config_rows: &[CheckDef],
    observations: &[Observation],
    collector: &str,
) -> Vec<CheckDef> {
    let covered: BTreeSet<(String, String)> = config_rows
        .iter()
        .filter_map(|d| Some((d.matches.get("job")?.clone(), d.signal.clone())))
        .collect();
    let mut newest: Vec<&Observation> = observations
        .iter()
        .filter(|o| o.tags.contains_key(TAG_ACCEPTANCE) && o.tags.contains_key("job"))
        .collect();
    newest.sort_by_key(|o| std::cmp::Reverse(o.timestamp));
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for o in newest {
        let job = &o.tags["job"];
        let key = (job.clone(), o.signal.clone());
        if covered.contains(&key) || !seen.insert(key) {
            continue;
        }
        let Ok(condition) = Condition::parse(&o.tags[TAG_ACCEPTANCE]) else {
            continue;
        };
        let suite = o
            .tags
            .get("suite")
            .cloned()
            .unwrap_or_else(|| "stable".into());
        let encoding = match condition.operand() {
            crate::checks::condition::Operand::Text(_) => Encoding::Status,
            _ => Encoding::Gauge,
        };
        let mut matches = std::collections::BTreeMap::new();
        matches.insert("job".to_string(), job.clone());
        out.push(CheckDef {
            row: RowId {
                source: SOURCE.into(),
                workflow_category: "training".into(),
                workflow_name: job.clone(),
                task: suite,
                check: o.signal.replace('.', "_"),
                repo: None,
            },
            collector: collector.to_string(),
            signal: o.signal.clone(),
            matches,
            aggregate: Aggregate::Latest,
            condition,
            warn: None,
            encoding,
            metric: format!("training.{}", o.signal),
            summary: Summary::P90,
            percentiles: false,
            interval: 600,
            unit: o.unit.clone(),
            carry_forward: DERIVED_CARRY_FORWARD,
            tags: Default::default(),
            title: format!("{job}: {} (artifact acceptance)", o.signal),
        });
    }
    out
}
