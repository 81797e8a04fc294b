//! The Parquet form of an artifact: the same fields as the JSON form, in one flat table.
//!
//! One file holds one suite run. Every row repeats the run's fields (`suite`, `job`, `run_id`,
//! `started_at`, …) and carries at most one metric (`metric_name`, `metric_value`,
//! `metric_unit`) and at most one acceptance criterion (`acceptance_metric`,
//! `acceptance_condition`); a run with neither is one row with those columns null. This "long"
//! layout is what a pandas/pyarrow producer writes naturally, and it reads with the `parquet`
//! crate's own record API (no arrow, which is slow to build).
//!
//! `started_at` / `finished_at` are `INT64 TIMESTAMP(MILLIS, UTC)`; microsecond timestamps and
//! RFC 3339 strings are read too. The run's fields must agree on every row.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::record::Field;

use super::{Artifact, ArtifactError, Criterion, ExitStatus, RUN_FIELDS, RunMetric};

/// The Parquet schema this build writes (documented in `docs/stable-suite-artifact.md`).
pub const MESSAGE_TYPE: &str = "
message stable_suite_artifact {
  REQUIRED INT32 schema_version;
  REQUIRED BYTE_ARRAY suite (UTF8);
  REQUIRED BYTE_ARRAY job (UTF8);
  OPTIONAL BYTE_ARRAY recipe (UTF8);
  REQUIRED BYTE_ARRAY run_id (UTF8);
  OPTIONAL BYTE_ARRAY runner (UTF8);
  REQUIRED INT64 started_at (TIMESTAMP(MILLIS,true));
  REQUIRED INT64 finished_at (TIMESTAMP(MILLIS,true));
  REQUIRED BYTE_ARRAY exit_status (UTF8);
  OPTIONAL INT64 exit_code;
  OPTIONAL BYTE_ARRAY metric_name (UTF8);
  OPTIONAL DOUBLE metric_value;
  OPTIONAL BYTE_ARRAY metric_unit (UTF8);
  OPTIONAL BYTE_ARRAY acceptance_metric (UTF8);
  OPTIONAL BYTE_ARRAY acceptance_condition (UTF8);
}
";

/// The per-row columns after the run's fields ([`RUN_FIELDS`]).
const ROW_COLUMNS: &[&str] = &[
    "metric_name",
    "metric_value",
    "metric_unit",
    "acceptance_metric",
    "acceptance_condition",
];

fn columns() -> impl Iterator<Item = &'static str> {
    RUN_FIELDS.iter().chain(ROW_COLUMNS).copied()
}

/// More rows than this is not a suite run's summary; refuse instead of reading it all.
const MAX_ROWS: usize = 100_000;

/// Read one artifact from Parquet bytes. A malformed file is an error, never a panic: the
/// `parquet` crate is guarded with `catch_unwind` as well, because a reader of untrusted bytes
/// must not take the whole import down.
pub fn read(bytes: &[u8], file: &str) -> Result<Artifact, ArtifactError> {
    let data = Bytes::copy_from_slice(bytes);
    match std::panic::catch_unwind(|| read_inner(data, file)) {
        Ok(r) => r,
        Err(_) => Err(ArtifactError::new(
            file,
            None,
            "not a readable Parquet file (the reader gave up on its structure)",
        )),
    }
}

type RowFields = BTreeMap<String, Field>;

fn read_inner(data: Bytes, file: &str) -> Result<Artifact, ArtifactError> {
    let parquet_err = |e: parquet::errors::ParquetError| {
        ArtifactError::new(file, None, format!("not a readable Parquet file: {e}"))
    };
    let reader = SerializedFileReader::new(data.clone()).map_err(parquet_err)?;
    super::parquet_limits::check(&data, reader.metadata(), file)?;
    let schema = reader.metadata().file_metadata().schema_descr();
    for col in schema.columns() {
        let name = col.path().string();
        if !columns().any(|c| c == name) {
            return Err(ArtifactError::new(
                file,
                Some(&name),
                format!(
                    "unknown column; expected: {}",
                    columns().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    // The row groups' counts are what the reader goes by; the footer's total may disagree.
    let total = reader
        .metadata()
        .row_groups()
        .iter()
        .map(|rg| rg.num_rows().max(0))
        .fold(0i64, i64::saturating_add)
        .max(reader.metadata().file_metadata().num_rows());
    if total <= 0 {
        return Err(ArtifactError::new(
            file,
            None,
            "the Parquet file has no rows",
        ));
    }
    if total as usize > MAX_ROWS {
        return Err(ArtifactError::new(
            file,
            None,
            format!("{total} rows is more than the {MAX_ROWS} a suite run may have"),
        ));
    }
    let mut rows: Vec<RowFields> = Vec::new();
    for row in reader.get_row_iter(None).map_err(parquet_err)? {
        let row = row.map_err(parquet_err)?;
        rows.push(row.into_columns().into_iter().collect());
    }
    let Some(first) = rows.first() else {
        return Err(ArtifactError::new(
            file,
            None,
            "the Parquet file has no rows",
        ));
    };
    let run = RowReader {
        file,
        row: 0,
        fields: first,
    };
    let schema_version = run.int("schema_version")?;
    let status_text = run.string("exit_status")?;
    let mut artifact = Artifact {
        schema_version: u32::try_from(schema_version).map_err(|_| {
            run.err(
                "schema_version",
                format!("{schema_version} is not a schema version"),
            )
        })?,
        suite: run.string("suite")?,
        job: run.string("job")?,
        recipe: run.opt_string("recipe")?,
        run_id: run.string("run_id")?,
        runner: run.opt_string("runner")?,
        started_at: run.time("started_at")?,
        finished_at: run.time("finished_at")?,
        exit_status: ExitStatus::parse_explained(&status_text)
            .map_err(|m| run.err("exit_status", m))?,
        exit_code: run.opt_int("exit_code")?,
        metrics: Vec::new(),
        acceptance: Vec::new(),
    };
    for (i, fields) in rows.iter().enumerate() {
        let r = RowReader {
            file,
            row: i,
            fields,
        };
        for key in RUN_FIELDS {
            if fields.get(*key) != first.get(*key) {
                return Err(r.err(key, "differs from row 0; one file holds one suite run"));
            }
        }
        if let Some(name) = r.opt_string("metric_name")? {
            artifact.metrics.push(RunMetric {
                name,
                value: r.double("metric_value")?,
                unit: r.string("metric_unit")?,
            });
        }
        if let Some(metric) = r.opt_string("acceptance_metric")? {
            artifact.acceptance.push(Criterion {
                metric,
                condition: r.string("acceptance_condition")?,
            });
        }
    }
    Ok(artifact)
}

struct RowReader<'a> {
    file: &'a str,
    row: usize,
    fields: &'a RowFields,
}

impl RowReader<'_> {
    fn err(&self, key: &str, msg: impl Into<String>) -> ArtifactError {
        ArtifactError::new(self.file, Some(&format!("{key} (row {})", self.row)), msg)
    }

    fn get(&self, key: &str) -> Option<&Field> {
        self.fields.get(key).filter(|f| !matches!(f, Field::Null))
    }

    fn required(&self, key: &str) -> Result<&Field, ArtifactError> {
        self.get(key)
            .ok_or_else(|| self.err(key, "required column is missing or null"))
    }

    fn string(&self, key: &str) -> Result<String, ArtifactError> {
        match self.required(key)? {
            Field::Str(s) => Ok(s.clone()),
            other => Err(self.err(key, format!("expected a UTF8 string, got {other}"))),
        }
    }

    fn opt_string(&self, key: &str) -> Result<Option<String>, ArtifactError> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.string(key).map(Some),
        }
    }

    fn int(&self, key: &str) -> Result<i64, ArtifactError> {
        match self.required(key)? {
            Field::Byte(v) => Ok(i64::from(*v)),
            Field::Short(v) => Ok(i64::from(*v)),
            Field::Int(v) => Ok(i64::from(*v)),
            Field::Long(v) => Ok(*v),
            Field::UByte(v) => Ok(i64::from(*v)),
            Field::UShort(v) => Ok(i64::from(*v)),
            Field::UInt(v) => Ok(i64::from(*v)),
            other => Err(self.err(key, format!("expected an integer, got {other}"))),
        }
    }

    fn opt_int(&self, key: &str) -> Result<Option<i64>, ArtifactError> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.int(key).map(Some),
        }
    }

    fn double(&self, key: &str) -> Result<f64, ArtifactError> {
        match self.required(key)? {
            Field::Double(v) => Ok(*v),
            Field::Float(v) => Ok(f64::from(*v)),
            Field::Int(v) => Ok(f64::from(*v)),
            Field::Long(v) => Ok(*v as f64),
            other => Err(self.err(key, format!("expected a number, got {other}"))),
        }
    }

    fn time(&self, key: &str) -> Result<DateTime<Utc>, ArtifactError> {
        let t = match self.required(key)? {
            Field::TimestampMillis(ms) => DateTime::from_timestamp_millis(*ms),
            Field::TimestampMicros(us) => DateTime::from_timestamp_micros(*us),
            Field::Str(s) => DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            other => {
                return Err(self.err(
                    key,
                    format!(
                        "expected a timestamp (millis or micros, UTC) or RFC 3339 text, got {other}"
                    ),
                ));
            }
        };
        t.ok_or_else(|| self.err(key, "the timestamp is out of range"))
    }
}

fn write_err(e: parquet::errors::ParquetError) -> ArtifactError {
    ArtifactError::new(
        "<artifact being written>",
        None,
        format!("cannot write Parquet: {e}"),
    )
}

/// Optional values as (values, definition levels) for a column writer.
fn optional<T: Clone>(items: &[Option<T>]) -> (Vec<T>, Vec<i16>) {
    let values = items.iter().flatten().cloned().collect();
    let levels = items.iter().map(|v| i16::from(v.is_some())).collect();
    (values, levels)
}

fn text(s: &str) -> ByteArray {
    ByteArray::from(s.as_bytes().to_vec())
}

/// The artifact as a Parquet file (snappy-compressed), after validating it.
pub fn write(artifact: &Artifact) -> Result<Vec<u8>, ArtifactError> {
    artifact.validate("<artifact being written>")?;
    let schema =
        Arc::new(parquet::schema::parser::parse_message_type(MESSAGE_TYPE).map_err(write_err)?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .build(),
    );
    let n = artifact.metrics.len().max(artifact.acceptance.len()).max(1);
    let repeat = |s: &str| vec![text(s); n];
    let repeat_opt = |s: &Option<String>| vec![s.as_deref().map(text); n];
    let metric_name: Vec<Option<ByteArray>> = (0..n)
        .map(|i| artifact.metrics.get(i).map(|m| text(&m.name)))
        .collect();
    let metric_value: Vec<Option<f64>> = (0..n)
        .map(|i| artifact.metrics.get(i).map(|m| m.value))
        .collect();
    let metric_unit: Vec<Option<ByteArray>> = (0..n)
        .map(|i| artifact.metrics.get(i).map(|m| text(&m.unit)))
        .collect();
    let acc_metric: Vec<Option<ByteArray>> = (0..n)
        .map(|i| artifact.acceptance.get(i).map(|c| text(&c.metric)))
        .collect();
    let acc_condition: Vec<Option<ByteArray>> = (0..n)
        .map(|i| artifact.acceptance.get(i).map(|c| text(&c.condition)))
        .collect();

    let mut out = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut out, schema, props).map_err(write_err)?;
    let mut group = writer.next_row_group().map_err(write_err)?;
    let mut names = columns();
    while let Some(mut col) = group.next_column().map_err(write_err)? {
        let written = match names.next().unwrap_or_default() {
            "schema_version" => col.typed::<Int32Type>().write_batch(
                &vec![artifact.schema_version as i32; n],
                None,
                None,
            ),
            "suite" => {
                col.typed::<ByteArrayType>()
                    .write_batch(&repeat(&artifact.suite), None, None)
            }
            "job" => col
                .typed::<ByteArrayType>()
                .write_batch(&repeat(&artifact.job), None, None),
            "recipe" => {
                let (v, d) = optional(&repeat_opt(&artifact.recipe));
                col.typed::<ByteArrayType>().write_batch(&v, Some(&d), None)
            }
            "run_id" => {
                col.typed::<ByteArrayType>()
                    .write_batch(&repeat(&artifact.run_id), None, None)
            }
            "runner" => {
                let (v, d) = optional(&repeat_opt(&artifact.runner));
                col.typed::<ByteArrayType>().write_batch(&v, Some(&d), None)
            }
            "started_at" => col.typed::<Int64Type>().write_batch(
                &vec![artifact.started_at.timestamp_millis(); n],
                None,
                None,
            ),
            "finished_at" => col.typed::<Int64Type>().write_batch(
                &vec![artifact.finished_at.timestamp_millis(); n],
                None,
                None,
            ),
            "exit_status" => col.typed::<ByteArrayType>().write_batch(
                &repeat(artifact.exit_status.as_str()),
                None,
                None,
            ),
            "exit_code" => {
                let (v, d) = optional(&vec![artifact.exit_code; n]);
                col.typed::<Int64Type>().write_batch(&v, Some(&d), None)
            }
            "metric_name" => {
                let (v, d) = optional(&metric_name);
                col.typed::<ByteArrayType>().write_batch(&v, Some(&d), None)
            }
            "metric_value" => {
                let (v, d) = optional(&metric_value);
                col.typed::<DoubleType>().write_batch(&v, Some(&d), None)
            }
            "metric_unit" => {
                let (v, d) = optional(&metric_unit);
                col.typed::<ByteArrayType>().write_batch(&v, Some(&d), None)
            }
            "acceptance_metric" => {
                let (v, d) = optional(&acc_metric);
                col.typed::<ByteArrayType>().write_batch(&v, Some(&d), None)
            }
            "acceptance_condition" => {
                let (v, d) = optional(&acc_condition);
                col.typed::<ByteArrayType>().write_batch(&v, Some(&d), None)
            }
            other => {
                return Err(ArtifactError::new(
                    "<artifact being written>",
                    None,
                    format!("the schema has a column {other:?} the writer does not know"),
                ));
            }
        };
        written.map_err(write_err)?;
        col.close().map_err(write_err)?;
    }
    group.close().map_err(write_err)?;
    writer.close().map_err(write_err)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stable_suite::tests::sample;
    use crate::stable_suite::{Format, parse};

    #[test]
    fn round_trips() {
        let bytes = write(&sample()).unwrap();
        assert_eq!(&bytes[..4], b"PAR1");
        assert_eq!(
            parse(&bytes, Format::Parquet, "a.parquet").unwrap(),
            sample()
        );
        let mut bare = sample();
        bare.metrics.clear();
        bare.acceptance.clear();
        bare.runner = None;
        bare.recipe = None;
        bare.exit_code = None;
        bare.exit_status = ExitStatus::Timeout;
        let bytes = write(&bare).unwrap();
        assert_eq!(parse(&bytes, Format::Parquet, "b.parquet").unwrap(), bare);
    }

    #[test]
    fn truncated_file_is_an_error_naming_the_file() {
        let bytes = write(&sample()).unwrap();
        let err = parse(&bytes[..bytes.len() / 2], Format::Parquet, "runs/x.parquet").unwrap_err();
        assert!(err.to_string().starts_with("runs/x.parquet: "), "{err}");
    }
}
