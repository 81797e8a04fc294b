//! `datadog plan` and `datadog apply`: what the config implies against what the account holds.
//!
//! The plan compares three kinds of objects, each found the way it can be found again:
//! - **the dashboard** by the id the last push stored, else by its title ([`DashboardApi`]);
//! - **monitors** by name among those tagged `managed-by:infra-health` and the config's `env`
//!   (nothing without both tags is ever read, changed or deleted);
//! - **metric tag configurations** by metric name; the names infra-health configured are kept
//!   in the state store, because a tag configuration carries no tags of its own, and `--prune`
//!   only deletes a configuration that list holds.
//!
//! Each object gets one [`Action`]. `apply` makes them in order — tag configurations, dashboard
//! (its URL goes into the monitors' messages), monitors, each validated by Datadog first — so a
//! second `apply` finds nothing to do. Monitors and configurations the config no longer implies
//! are listed as orphans, and deleted only with `--prune`.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api::SideApi;
use super::metric_config::{TagConfig, tag_configs};
use super::monitors::{MonitorSpec, monitors};
use crate::catalog::Catalog;
use crate::config::Plan;
use crate::dashboard::api::{DashboardApi, Located};
use crate::dashboard::diff::{self, Change};
use crate::state::StateStore;

/// What kind of object an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dashboard,
    Monitor,
    TagConfig,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Dashboard => "dashboard",
            Kind::Monitor => "monitor",
            Kind::TagConfig => "metric tag configuration",
        })
    }
}

/// What apply does to one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Create,
    /// With what would change, for a person.
    Update(Vec<String>),
    Keep,
    /// Created by infra-health, no longer implied: deleted with `--prune`.
    Delete,
    /// As `Delete`, without `--prune`: left alone, shown.
    Orphan,
}

/// One object of the plan.
#[derive(Debug, Clone)]
pub struct Item {
    pub kind: Kind,
    /// The dashboard's title, the monitor's name, the metric's name.
    pub name: String,
    pub action: Action,
    /// The live object's id, when there is one.
    id: Option<String>,
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (sign, what) = match &self.action {
            Action::Create => ("+", "create".to_string()),
            Action::Update(c) => (
                "~",
                format!(
                    "update ({} change{})",
                    c.len(),
                    if c.len() == 1 { "" } else { "s" }
                ),
            ),
            Action::Keep => ("=", "no change".to_string()),
            Action::Delete => ("-", "delete".to_string()),
            Action::Orphan => (
                "?",
                "no longer in the config (delete with --prune)".to_string(),
            ),
        };
        write!(f, "{sign} {} {:?}: {what}", self.kind, self.name)?;
        if let Action::Update(changes) = &self.action {
            for c in changes {
                write!(f, "\n    {c}")?;
            }
        }
        Ok(())
    }
}

/// The whole plan, and what apply needs to carry it out.
pub struct SidePlan {
    pub items: Vec<Item>,
    dashboard: Value,
    /// The live dashboard's browser URL, when it exists.
    dashboard_url: Option<String>,
    configs: Vec<TagConfig>,
    /// Metric names infra-health configured before (from the state store).
    recorded: BTreeSet<String>,
}

impl SidePlan {
    /// Items that change something (create, update, delete).
    pub fn changes(&self) -> usize {
        self.items
            .iter()
            .filter(|i| {
                matches!(
                    i.action,
                    Action::Create | Action::Update(_) | Action::Delete
                )
            })
            .count()
    }

    pub fn count(&self, pick: fn(&Action) -> bool) -> usize {
        self.items.iter().filter(|i| pick(&i.action)).count()
    }
}

/// What the state store remembers about the tag configurations infra-health made.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Recorded {
    metrics: BTreeSet<String>,
}

fn record_key(site: &str, env: &str) -> String {
    format!("datadog/{site}/{env}/metric-tag-configurations.json")
}

/// The link monitors put in their messages: the configured one, else the live dashboard's.
fn dashboard_link(plan: &Plan, dashboards: &DashboardApi, live: Option<&Value>) -> String {
    if let Some(u) = &plan.datadog.dashboard_url {
        return u.clone();
    }
    match live.and_then(|l| l["url"].as_str()) {
        Some(path) => dashboards.browser_url(path),
        None => format!("(the dashboard {:?})", plan.dashboard.title),
    }
}

/// The monitor as compared: tags sorted (Datadog does not keep their order).
fn comparable(monitor: &Value) -> Value {
    let mut m = monitor.clone();
    if let Some(tags) = m.get_mut("tags").and_then(Value::as_array_mut) {
        tags.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    }
    m
}

fn lines(changes: &[Change]) -> Vec<String> {
    changes.iter().map(ToString::to_string).collect()
}

/// Everything `apply` would do.
pub async fn plan(
    plan: &Plan,
    api: &SideApi,
    dashboards: &DashboardApi,
    state: &StateStore,
    prune: bool,
) -> anyhow::Result<SidePlan> {
    let catalog = Catalog::of(plan)?;
    let dashboard = crate::dashboard::render(plan)?;
    let mut items = Vec::new();

    // Metric tag configurations.
    let configs = tag_configs(&catalog);
    let recorded: Recorded = state
        .get_json(&record_key(api.site(), plan.schema.env()))
        .await?
        .unwrap_or_default();
    for c in &configs {
        let action = match api.tag_config(&c.metric).await? {
            None => Action::Create,
            Some(live) => match c.problems(&live) {
                p if p.is_empty() => Action::Keep,
                p => Action::Update(p),
            },
        };
        items.push(Item {
            kind: Kind::TagConfig,
            name: c.metric.clone(),
            action,
            id: None,
        });
    }
    for m in &recorded.metrics {
        if !configs.iter().any(|c| c.metric == *m) {
            items.push(Item {
                kind: Kind::TagConfig,
                name: m.clone(),
                action: if prune {
                    Action::Delete
                } else {
                    Action::Orphan
                },
                id: None,
            });
        }
    }

    // The dashboard.
    let located = dashboards.locate(state, &plan.dashboard.title).await?;
    let live_dashboard = match &located {
        Located::Stored { live, .. } | Located::ByTitle { live, .. } => Some(live),
        Located::Missing => None,
    };
    items.push(Item {
        kind: Kind::Dashboard,
        name: plan.dashboard.title.clone(),
        action: match live_dashboard {
            None => Action::Create,
            Some(live) => match diff::changes(&dashboard, live) {
                c if c.is_empty() => Action::Keep,
                c => Action::Update(lines(&c)),
            },
        },
        id: match &located {
            Located::Stored { id, .. } | Located::ByTitle { id, .. } => Some(id.clone()),
            Located::Missing => None,
        },
    });

    // Monitors.
    let dashboard_url = live_dashboard
        .and_then(|l| l["url"].as_str())
        .map(|p| dashboards.browser_url(p));
    let link = dashboard_link(plan, dashboards, live_dashboard);
    let wanted = monitors(plan, &catalog, &link);
    let live = api.managed_monitors(plan.schema.env()).await?;
    let mut matched: BTreeSet<i64> = BTreeSet::new();
    for m in &wanted {
        let found = live.iter().find(|l| {
            l["name"].as_str() == Some(m.name())
                && l["id"].as_i64().is_some_and(|id| !matched.contains(&id))
        });
        let (action, id) = match found {
            None => (Action::Create, None),
            Some(l) => {
                let id = l["id"].as_i64().unwrap_or_default();
                matched.insert(id);
                let c = diff::changes(&comparable(&m.body), &comparable(l));
                let action = if c.is_empty() {
                    Action::Keep
                } else {
                    Action::Update(lines(&c))
                };
                (action, Some(id.to_string()))
            }
        };
        items.push(Item {
            kind: Kind::Monitor,
            name: m.name().to_string(),
            action,
            id,
        });
    }
    for l in &live {
        let Some(id) = l["id"].as_i64() else { continue };
        if matched.contains(&id) {
            continue;
        }
        items.push(Item {
            kind: Kind::Monitor,
            name: l["name"].as_str().unwrap_or("").to_string(),
            action: if prune {
                Action::Delete
            } else {
                Action::Orphan
            },
            id: Some(id.to_string()),
        });
    }
    Ok(SidePlan {
        items,
        dashboard,
        dashboard_url,
        configs,
        recorded: recorded.metrics,
    })
}

/// What an apply did, per item (in plan order).
pub struct Applied {
    pub items: Vec<Item>,
    pub dashboard_url: Option<String>,
}

/// Carry out `side`: tag configurations, then the dashboard, then the monitors (validated
/// first). Stops at the first refusal, naming the object; what was done before stays done, and
/// the next apply picks up from there.
pub async fn apply(
    plan: &Plan,
    side: SidePlan,
    api: &SideApi,
    dashboards: &DashboardApi,
    state: &StateStore,
) -> anyhow::Result<Applied> {
    let SidePlan {
        items,
        dashboard,
        dashboard_url,
        configs,
        mut recorded,
    } = side;
    let key = record_key(api.site(), plan.schema.env());
    for item in items.iter().filter(|i| i.kind == Kind::TagConfig) {
        let Some(c) = configs.iter().find(|c| c.metric == item.name) else {
            if item.action == Action::Delete {
                api.delete_tag_config(&item.name).await?;
                recorded.remove(&item.name);
            }
            continue;
        };
        match &item.action {
            Action::Create => {
                api.put_tag_config(&c.metric, &c.create_body(), true)
                    .await?
            }
            Action::Update(_) => {
                api.put_tag_config(&c.metric, &c.update_body(), false)
                    .await?
            }
            _ => {}
        }
        recorded.insert(c.metric.clone());
    }
    state
        .put_json(
            &key,
            &Recorded {
                metrics: recorded.clone(),
            },
        )
        .await?;

    // An unchanged dashboard is not written again (a PUT would bump its modification time).
    let unchanged = items
        .iter()
        .any(|i| i.kind == Kind::Dashboard && i.action == Action::Keep);
    let pushed = if unchanged {
        None
    } else {
        Some(dashboards.push(state, &dashboard).await?)
    };
    let url = match &pushed {
        Some(p) => p.url.clone(),
        None => dashboard_url,
    };
    let link = match &plan.datadog.dashboard_url {
        Some(u) => u.clone(),
        None => url
            .clone()
            .unwrap_or_else(|| format!("(the dashboard {:?})", plan.dashboard.title)),
    };
    // The messages carry the dashboard's URL, known for sure only now.
    let catalog = Catalog::of(plan)?;
    let wanted = monitors(plan, &catalog, &link);
    let live = api.managed_monitors(plan.schema.env()).await?;
    let mut out = Vec::new();
    for item in items {
        let item = match item.kind {
            Kind::Dashboard => match &pushed {
                None => item,
                Some(pushed) => Item {
                    id: Some(pushed.id.clone()),
                    action: if pushed.created {
                        Action::Create
                    } else if pushed.changes.is_empty() {
                        Action::Keep
                    } else {
                        Action::Update(lines(&pushed.changes))
                    },
                    ..item
                },
            },
            Kind::Monitor => apply_monitor(api, item, &wanted, &live).await?,
            Kind::TagConfig => item,
        };
        out.push(item);
    }
    Ok(Applied {
        items: out,
        dashboard_url: url,
    })
}

async fn apply_monitor(
    api: &SideApi,
    item: Item,
    wanted: &[MonitorSpec],
    live: &[Value],
) -> anyhow::Result<Item> {
    let id: Option<i64> = item.id.as_deref().and_then(|i| i.parse().ok());
    if matches!(item.action, Action::Delete) {
        if let Some(id) = id {
            api.delete_monitor(id).await?;
        }
        return Ok(item);
    }
    if matches!(item.action, Action::Orphan) {
        return Ok(item);
    }
    let Some(spec) = wanted.iter().find(|m| m.name() == item.name) else {
        return Ok(item);
    };
    // The body may differ from the planned one by the dashboard link (a new dashboard).
    let live_body = id.and_then(|id| live.iter().find(|l| l["id"].as_i64() == Some(id)));
    let action = match live_body {
        None => Action::Create,
        Some(l) => match diff::changes(&comparable(&spec.body), &comparable(l)) {
            c if c.is_empty() => Action::Keep,
            c => Action::Update(lines(&c)),
        },
    };
    if !matches!(action, Action::Keep)
        && let Err(why) = api.validate_monitor(&spec.body).await?
    {
        anyhow::bail!(
            "Datadog refused the monitor {:?} ({}): {why}",
            spec.name(),
            spec.body["query"].as_str().unwrap_or("")
        );
    }
    let id = match (&action, id) {
        (Action::Create, _) => Some(api.create_monitor(&spec.body).await?),
        (Action::Update(_), Some(id)) => {
            api.update_monitor(id, &spec.body).await?;
            Some(id)
        }
        (_, id) => id,
    };
    Ok(Item {
        action,
        id: id.map(|i| i.to_string()),
        ..item
    })
}
