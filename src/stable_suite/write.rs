//! Writing artifacts: the producer side of the format (`emit-stable`), to a file (atomically),
//! to `s3://bucket/key`, or to stdout; and reading one back from a file to validate or convert.

use std::path::PathBuf;

use anyhow::Context;
use bytes::Bytes;

use super::{Artifact, ArtifactError, Format};

/// Encode `artifact` for `destination` (by its extension; JSON when there is none).
pub fn encode_for(
    artifact: &Artifact,
    destination: Option<&str>,
) -> Result<Vec<u8>, ArtifactError> {
    match destination.and_then(Format::of) {
        Some(Format::Parquet) => super::parquet::write(artifact),
        _ => super::write_json(artifact),
    }
}

/// Write an artifact to a file (atomically: temp file then rename), to `s3://bucket/key`, or to
/// stdout when `destination` is `None` or `-`.
pub async fn write_artifact(
    artifact: &Artifact,
    destination: Option<&str>,
) -> anyhow::Result<String> {
    let dest = destination.filter(|d| *d != "-");
    let bytes = encode_for(artifact, dest)?;
    match dest {
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes).context("cannot write to stdout")?;
            out.flush().context("cannot write to stdout")?;
            Ok("stdout".into())
        }
        Some(url) if url.starts_with("s3://") => {
            use object_store::ObjectStoreExt;
            let (bucket, key) = crate::store_url::split_s3_url(url)
                .filter(|(_, k)| Format::of(k).is_some())
                .with_context(|| format!("{url:?}: expected s3://bucket/key.json or .parquet"))?;
            let store = crate::store_url::s3(bucket)?;
            store
                .put(
                    &object_store::path::Path::from(key),
                    Bytes::from(bytes).into(),
                )
                .await
                .with_context(|| format!("cannot upload {url}"))?;
            Ok(url.to_string())
        }
        Some(path) => {
            let path = PathBuf::from(path.strip_prefix("file://").unwrap_or(path));
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
            std::fs::write(&tmp, &bytes)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            std::fs::rename(&tmp, &path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(path.display().to_string())
        }
    }
}

/// Read a JSON artifact from a file, for `emit-stable --input` (validate or convert).
pub fn read_artifact_file(path: &std::path::Path) -> anyhow::Result<Artifact> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path.display().to_string();
    let format = Format::of(&name).unwrap_or(Format::Json);
    Ok(super::parse(&bytes, format, &name)?)
}
