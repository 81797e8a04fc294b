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
//!
//! A directory is walked here rather than by `object_store` (whose listing ends at the first
//! error): symlinks are followed, and a path that cannot be listed — a symlink loop, a directory
//! without permission — is reported by [`ArtifactSource::list_reporting`] with its path while
//! everything else is still listed. Only regular files are artifacts (a FIFO named `x.json` is
//! skipped, never opened).

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
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

/// How deep a directory walk goes: deeper is a mistake (or a loop through bind mounts).
const MAX_WALK_DEPTH: usize = 64;

/// What a listing found: the artifacts, and the paths that could not be listed.
#[derive(Debug, Default)]
pub struct Listing {
    pub artifacts: Vec<ArtifactRef>,
    /// One line per path that could not be listed, naming it and saying why (a symlink loop,
    /// permission denied). The rest of the source is listed regardless.
    pub problems: Vec<String>,
}

/// A place artifacts are read from.
pub struct ArtifactSource {
    url: String,
    store: Arc<dyn ObjectStore>,
    /// List under this prefix, or read exactly this object.
    target: Target,
    /// A local directory source: walked by [`walk_dir`] instead of the store's listing.
    local_dir: Option<PathBuf>,
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
                local_dir: None,
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
        // A FIFO or a device given as "one file" would block or never end on read.
        if !abs.is_dir() && !abs.is_file() {
            return Err(bad(format!(
                "{} is not a regular file or a directory (a FIFO, a device or a socket); give an artifact file or a directory",
                path.display()
            )));
        }
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
        let local_dir = matches!(target, Target::Prefix(_)).then(|| dir.clone());
        Ok(ArtifactSource {
            url: url.to_string(),
            store: Arc::new(store),
            target,
            local_dir,
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

    /// The artifacts at this source, sorted by key; paths that could not be listed are logged.
    pub async fn list(&self) -> Result<Vec<ArtifactRef>, SourceError> {
        let listing = self.list_reporting().await?;
        for p in &listing.problems {
            tracing::warn!("{p}");
        }
        Ok(listing.artifacts)
    }

    /// The artifacts at this source, sorted by key, and the paths that could not be listed.
    /// Only a source that cannot be listed at all is an error.
    pub async fn list_reporting(&self) -> Result<Listing, SourceError> {
        let list_err = |source| SourceError::List {
            url: self.url.clone(),
            source,
        };
        let mut problems = Vec::new();
        let metas = match &self.target {
            Target::Prefix(_) if self.local_dir.is_some() => {
                let root = self.local_dir.clone().unwrap_or_default();
                let (keys, walk_problems) = tokio::task::spawn_blocking(move || walk_dir(&root))
                    .await
                    .map_err(|e| SourceError::BadUrl {
                        url: self.url.clone(),
                        why: format!("the directory walk failed: {e}"),
                    })?;
                problems = walk_problems;
                let heads: Vec<_> = futures::stream::iter(keys)
                    .map(|key| async move {
                        let got = self.store.head(&Path::from(key.as_str())).await;
                        (key, got)
                    })
                    .buffer_unordered(32)
                    .collect()
                    .await;
                let mut metas = Vec::with_capacity(heads.len());
                for (key, got) in heads {
                    match got {
                        Ok(m) => metas.push(m),
                        Err(e) => problems.push(format!(
                            "{}{key}: cannot read its metadata ({e}); skipped",
                            self.display_root
                        )),
                    }
                }
                metas
            }
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
        problems.sort();
        Ok(Listing {
            artifacts: out,
            problems,
        })
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

/// Walk `root` for artifact files (by extension), following symlinks. Returns their keys
/// (relative, `/`-separated, sorted) and one message per path that could not be walked: a
/// symlink loop (a directory that leads back to one of its ancestors, or a link to itself), a
/// directory that cannot be read. Blocking: run it on a blocking thread.
pub fn walk_dir(root: &FsPath) -> (Vec<String>, Vec<String>) {
    use std::os::unix::fs::MetadataExt;
    let mut keys = Vec::new();
    let mut problems = Vec::new();
    let Ok(root_meta) = std::fs::metadata(root) else {
        problems.push(format!("{}: cannot read the directory", root.display()));
        return (keys, problems);
    };
    // (directory, its key prefix, the (device, inode) of it and its ancestors)
    let mut stack = vec![(
        root.to_path_buf(),
        String::new(),
        vec![(root_meta.dev(), root_meta.ino(), root.to_path_buf())],
    )];
    while let Some((dir, prefix, ancestors)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                problems.push(format!(
                    "{}: cannot list the directory ({e}); its artifacts are skipped",
                    dir.display()
                ));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    problems.push(format!(
                        "{}: cannot list the directory ({e}); some artifacts may be skipped",
                        dir.display()
                    ));
                    break;
                }
            };
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                problems.push(format!(
                    "{}: the name is not UTF-8; skipped",
                    path.display()
                ));
                continue;
            };
            let key = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                // A dangling symlink points at nothing: not an artifact (as object_store).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                    problems.push(format!(
                        "{}: symlink loop ({e}); skipped, the rest is imported",
                        path.display()
                    ));
                    continue;
                }
                Err(e) => {
                    problems.push(format!("{}: cannot read it ({e}); skipped", path.display()));
                    continue;
                }
            };
            if meta.is_dir() {
                let id = (meta.dev(), meta.ino());
                if let Some((_, _, first)) =
                    ancestors.iter().find(|(dev, ino, _)| (*dev, *ino) == id)
                {
                    problems.push(format!(
                        "{}: symlink loop (it leads back to {}); skipped, the rest is imported",
                        path.display(),
                        first.display()
                    ));
                    continue;
                }
                if ancestors.len() > MAX_WALK_DEPTH {
                    problems.push(format!(
                        "{}: more than {MAX_WALK_DEPTH} directories deep; skipped",
                        path.display()
                    ));
                    continue;
                }
                let mut next = ancestors.clone();
                next.push((id.0, id.1, path.clone()));
                stack.push((path, key, next));
            } else if meta.is_file() && Format::of(&name).is_some() {
                keys.push(key);
            }
        }
    }
    keys.sort();
    (keys, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_or_device_as_the_source_is_refused() {
        let err = ArtifactSource::open("/dev/zero").unwrap_err().to_string();
        assert!(
            err.contains("/dev/zero") && err.contains("not a regular file"),
            "{err}"
        );
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("run.json");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path and a mode.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = ArtifactSource::open(fifo.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("run.json") && err.contains("FIFO"), "{err}");
    }

    #[test]
    fn a_symlink_loop_is_reported_and_the_rest_is_walked() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("top.json"), "{}").unwrap();
        std::fs::write(root.join("a/b/deep.parquet"), "x").unwrap();
        std::fs::write(root.join("a/notes.txt"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("a/b/up")).unwrap();
        std::os::unix::fs::symlink("self.json", root.join("self.json")).unwrap();
        std::os::unix::fs::symlink("nowhere.json", root.join("dangling.json")).unwrap();
        let (keys, problems) = walk_dir(root);
        assert_eq!(keys, vec!["a/b/deep.parquet", "top.json"]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("a/b/up") && p.contains("symlink loop")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("self.json") && p.contains("symlink loop")),
            "{problems:?}"
        );
    }
}
