//! Where artifacts are read from: an S3 prefix, a directory, or one file, through `object_store`.
//!
//! | URL | reads |
//! | --- | --- |
//! | `s3://bucket/prefix/` (or `s3://bucket`) | every `.json` / `.parquet` object under the prefix |
//! | `s3://bucket/prefix/run.json` | that one object |
//! | `file:///dir/` or a directory path | every `.json` / `.parquet` file under the directory (recursively) |
//! | `file:///dir/run.parquet` or a file path | that one file |
//!
//! S3 settings follow [`crate::store_url`] (AWS environment, `AWS_ENDPOINT_URL`, loopback-only
//! `http://`). Other objects in a listing (`_SUCCESS`, logs) are not artifacts and are ignored.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use thiserror::Error;

use super::Format;

/// Artifacts larger than this are refused without being downloaded: a run summary is small.
pub const MAX_ARTIFACT_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("invalid artifact URL {url:?}: {why}")]
    BadUrl { url: String, why: String },
    #[error("{0}")]
    S3(#[from] crate::store_url::S3Error),
    #[error("cannot list {url}: {source}")]
    List {
        url: String,
        #[source]
        source: object_store::Error,
    },
    #[error("cannot read {object}: {source}")]
    Read {
        object: String,
        #[source]
        source: object_store::Error,
    },
}

/// One artifact object, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRef {
    /// The object's path in its store; the checkpoint's key.
    pub key: String,
    pub size: u64,
    /// The store's ETag (S3) or its equivalent (local: inode/size/mtime), when it has one.
    pub etag: Option<String>,
    pub format: Format,
}

/// A place artifacts are read from.
pub struct ArtifactSource {
    url: String,
    store: Arc<dyn ObjectStore>,
    /// List under this prefix, or read exactly this object.
    target: Target,
    /// How to show an object's key to a person (`s3://bucket/` or the directory).
    display_root: String,
}

enum Target {
    Prefix(Path),
    Single(Path),
}

impl std::fmt::Debug for ArtifactSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactSource")
            .field("url", &self.url)
            .finish()
    }
}

impl ArtifactSource {
    /// Open `url`; relative paths are taken from the current directory.
    pub fn open(url: &str) -> Result<ArtifactSource, SourceError> {
        let bad = |why: &str| SourceError::BadUrl {
            url: url.to_string(),
            why: why.to_string(),
        };
        if url.starts_with("s3://") {
            let (bucket, key) =
                crate::store_url::split_s3_url(url).ok_or_else(|| bad("no bucket name"))?;
            let store = Arc::new(crate::store_url::s3(bucket)?);
            let target = if Format::of(key).is_some() {
                Target::Single(Path::from(key))
            } else {
                Target::Prefix(Path::from(key))
            };
            return Ok(ArtifactSource {
                url: url.to_string(),
                store,
                target,
                display_root: format!("s3://{bucket}/"),
            });
        }
        let path = match url.strip_prefix("file://") {
            Some(p) => PathBuf::from(p),
            None if url.contains("://") => {
                return Err(bad("expected s3://bucket/prefix, file:///dir or a path"));
            }
            None => PathBuf::from(url),
        };
        Self::open_local(url, &path)
    }

    fn open_local(url: &str, path: &FsPath) -> Result<ArtifactSource, SourceError> {
        let bad = |why: String| SourceError::BadUrl {
            url: url.to_string(),
            why,
        };
        let abs = std::fs::canonicalize(path)
            .map_err(|e| bad(format!("cannot open {}: {e}", path.display())))?;
        let (dir, target) = if abs.is_dir() {
            (abs.clone(), Target::Prefix(Path::default()))
        } else {
            let name = abs
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| bad("the file name is not UTF-8".into()))?
                .to_string();
            let parent = abs
                .parent()
                .map(FsPath::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/"));
            (parent, Target::Single(Path::from(name)))
        };
        let store =
            object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(|source| {
                SourceError::List {
                    url: url.to_string(),
                    source,
                }
            })?;
        Ok(ArtifactSource {
            url: url.to_string(),
            store: Arc::new(store),
            target,
            display_root: format!("{}/", dir.display()),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The object as a person would find it: `s3://bucket/runs/a.json`, `/dir/a.json`.
    pub fn describe(&self, r: &ArtifactRef) -> String {
        format!("{}{}", self.display_root, r.key)
    }

    /// The artifacts at this source, sorted by key.
    pub async fn list(&self) -> Result<Vec<ArtifactRef>, SourceError> {
        let list_err = |source| SourceError::List {
            url: self.url.clone(),
            source,
        };
        let metas = match &self.target {
            Target::Single(path) => vec![self.store.head(path).await.map_err(list_err)?],
            Target::Prefix(prefix) => {
                let prefix = (!prefix.as_ref().is_empty()).then_some(prefix);
                self.store
                    .list(prefix)
                    .try_collect()
                    .await
                    .map_err(list_err)?
            }
        };
        let mut out: Vec<ArtifactRef> = metas
            .into_iter()
            .filter_map(|m| {
                let key = m.location.to_string();
                let format = Format::of(&key)?;
                Some(ArtifactRef {
                    key,
                    size: m.size,
                    etag: m.e_tag,
                    format,
                })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The bytes of one artifact.
    pub async fn read(&self, r: &ArtifactRef) -> Result<Bytes, SourceError> {
        let read_err = |source| SourceError::Read {
            object: self.describe(r),
            source,
        };
        let got = self
            .store
            .get(&Path::from(r.key.as_str()))
            .await
            .map_err(read_err)?;
        got.bytes().await.map_err(read_err)
    }
}
