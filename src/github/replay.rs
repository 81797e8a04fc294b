//! Recorded responses: the files `record_to` writes and a `file://DIR` base answers from (the
//! bundled offline example, regenerated from the test fake).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A recorded response, as stored in replay files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recorded {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    pub body: serde_json::Value,
}

/// A replay file: `{"recorded_at": ..., "responses": {"/repos/...?...": {...}}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplayFile {
    pub recorded_at: DateTime<Utc>,
    pub responses: BTreeMap<String, Recorded>,
}

/// Recorded responses loaded from every `*.json` file of a directory.
#[derive(Debug)]
pub struct Replay {
    pub dir: PathBuf,
    /// When the newest file was recorded: collectors compute windows from it.
    pub recorded_at: DateTime<Utc>,
    pub(super) responses: HashMap<String, Recorded>,
}

impl Replay {
    pub fn load(dir: &Path) -> Result<Replay, String> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("replay directory {}: {e}", dir.display()))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!(
                "replay directory {} has no *.json recordings",
                dir.display()
            ));
        }
        let mut responses = HashMap::new();
        let mut recorded_at: Option<DateTime<Utc>> = None;
        for f in files {
            let text = std::fs::read_to_string(&f)
                .map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            let file: ReplayFile = serde_json::from_str(&text)
                .map_err(|e| format!("{}: not a replay recording: {e}", f.display()))?;
            recorded_at = Some(recorded_at.map_or(file.recorded_at, |r| r.max(file.recorded_at)));
            responses.extend(file.responses);
        }
        Ok(Replay {
            dir: dir.to_path_buf(),
            recorded_at: recorded_at.unwrap_or_else(Utc::now),
            responses,
        })
    }
}
