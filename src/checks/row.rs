//! A row's identity ([`RowId`]: the five identifying tags) and its [`Status`]. They belong to the
//! checks, which evaluate rows; the schema, the state store and the sinks read them from here.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The state of one row of the health matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// The main condition failed but the row's looser `warn` condition held.
    Warn,
    Fail,
    /// No observation, the collector failed, the value was not a number, or the data is stale.
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Unknown => "unknown",
        }
    }

    /// The value of the row's health gauge: 1 pass, 0.5 warn, 0 fail. Unknown has none: a
    /// placeholder zero would paint a missing row red.
    pub fn gauge_value(self) -> Option<f64> {
        match self {
            Status::Pass => Some(1.0),
            Status::Warn => Some(0.5),
            Status::Fail => Some(0.0),
            Status::Unknown => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which row of the matrix a metric belongs to: the five identifying tags, and the repository
/// when the row is one of several a check makes, one per repository its collector covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RowId {
    pub source: String,
    pub workflow_category: String,
    pub workflow_name: String,
    pub task: String,
    pub check: String,
    /// `owner/name` for a row of a check applied to every repository of an organisation (or of
    /// a `repos` list); `None` for a check of one source. Its metrics carry it as `repo:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
}

impl RowId {
    /// The identity of one of the tool's own metrics: `workflow_category:self`.
    pub fn self_row(source: &str, workflow_name: &str, task: &str, check: &str) -> RowId {
        RowId {
            source: source.to_string(),
            workflow_category: "self".into(),
            workflow_name: workflow_name.to_string(),
            task: task.to_string(),
            check: check.to_string(),
            repo: None,
        }
    }

    /// This row for one repository.
    pub fn for_repo(&self, repo: &str) -> RowId {
        RowId {
            repo: Some(repo.to_string()),
            ..self.clone()
        }
    }

    /// The check's row this one was made from (itself, for a row of no repository).
    pub fn template(&self) -> RowId {
        RowId {
            repo: None,
            ..self.clone()
        }
    }

    /// The pipeline segment of metric names for this row's source: `stable_suite` writes
    /// `stablesuite` (the plan's `metta.infra.stablesuite.training.sps`), others as they are.
    pub fn pipeline(&self) -> String {
        pipeline_for_source(&self.source)
    }
}

impl fmt::Display for RowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.workflow_category, self.workflow_name, self.task, self.check
        )?;
        match &self.repo {
            Some(repo) => write!(f, "@{repo}"),
            None => Ok(()),
        }
    }
}

pub fn pipeline_for_source(source: &str) -> String {
    source.replace('_', "")
}
