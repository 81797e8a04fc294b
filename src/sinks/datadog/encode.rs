//! The encoder: intake entries in, compressed request bodies out, each within Datadog's limits.
//!
//! Entries are serialised one at a time straight into the body of the batch being filled, so a
//! million series never exist as one document: memory is one batch (≤ 5 MiB) plus what is in
//! flight. A batch is sealed when the next entry would break the uncompressed size or point
//! limit; sealing compresses it and, if the result is over the compressed limit, keeps the
//! longest prefix that fits and *hands back* the rest, which stays in the buffer and opens the
//! next batch (no entry is serialised twice). The target uncompressed size then follows the
//! compression ratio actually seen, so incompressible data does not keep overshooting.
//!
//! The same entry types deserialise, so a sent body can be read back into entries: that is how a
//! 413 is split and how an undelivered request is spooled, without keeping the metrics around.
//!
//! Bodies: `POST /api/v2/series` `{"series":[{"metric","type","points":[{"timestamp","value"}],
//! "tags","unit","interval"}]}`; `POST /api/v1/distribution_points`
//! `{"series":[{"metric","points":[[ts,[v,…]]],"tags"}]}`.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::{Read, Write};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::config::Compression;
use crate::schema::{Metric, MetricValue};

/// Datadog's per-request limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes on the wire.
    pub compressed: usize,
    /// Bytes after decompression.
    pub uncompressed: usize,
    /// Points per payload (the Datadog Agent's cap).
    pub points: usize,
}

/// The intake's documented limits.
pub const LIMITS: Limits = Limits {
    compressed: 512_000,
    uncompressed: 5_242_880,
    points: 10_000,
};

/// Which intake endpoint a body is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Series,
    DistributionPoints,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Series => "/api/v2/series",
            Endpoint::DistributionPoints => "/api/v1/distribution_points",
        }
    }
}

/// One v2 series entry (one point: every metric we build has one timestamp).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series<'a> {
    pub metric: Cow<'a, str>,
    /// 1 count, 2 rate, 3 gauge.
    #[serde(rename = "type")]
    pub kind: u8,
    pub points: [Point; 1],
    pub tags: Cow<'a, [String]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub timestamp: i64,
    pub value: f64,
}

/// One v1 distribution entry: every sample at one timestamp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistributionSeries<'a> {
    pub metric: Cow<'a, str>,
    pub points: [(i64, Cow<'a, [f64]>); 1],
    pub tags: Cow<'a, [String]>,
}

/// Either kind of entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    Series(Series<'a>),
    Distribution(DistributionSeries<'a>),
}

impl Series<'_> {
    pub fn into_owned(self) -> Series<'static> {
        Series {
            metric: Cow::Owned(self.metric.into_owned()),
            kind: self.kind,
            points: self.points,
            tags: Cow::Owned(self.tags.into_owned()),
            unit: self.unit.map(|u| Cow::Owned(u.into_owned())),
            interval: self.interval,
        }
    }
}

impl<'a> Series<'a> {
    /// The v2 entry for a gauge, count or rate; `None` for a distribution.
    pub fn from_metric(m: &'a Metric) -> Option<Series<'a>> {
        let (value, interval) = match &m.value {
            MetricValue::Gauge(v) => (*v, None),
            MetricValue::Count { value, interval } | MetricValue::Rate { value, interval } => {
                (*value, Some(*interval))
            }
            MetricValue::Distribution(_) => return None,
        };
        Some(Series {
            metric: Cow::Borrowed(&m.name),
            kind: m.value.intake_type().unwrap_or(0),
            points: [Point {
                timestamp: m.timestamp,
                value,
            }],
            tags: Cow::Borrowed(&m.tags),
            unit: m.unit.as_deref().map(Cow::Borrowed),
            interval,
        })
    }
}

impl<'a> DistributionSeries<'a> {
    /// The v1 entry for a distribution; `None` for the others.
    pub fn from_metric(m: &'a Metric) -> Option<DistributionSeries<'a>> {
        match &m.value {
            MetricValue::Distribution(v) => Some(DistributionSeries {
                metric: Cow::Borrowed(&m.name),
                points: [(m.timestamp, Cow::Borrowed(v.as_slice()))],
                tags: Cow::Borrowed(&m.tags),
            }),
            _ => None,
        }
    }

    pub fn point_count(&self) -> usize {
        self.points[0].1.len().max(1)
    }

    /// The same samples as entries of at most `max` samples each (one series, one timestamp):
    /// a catch-up of a million samples fits requests of [`MAX_SAMPLES_PER_ENTRY`] each, where
    /// one entry would fit no request at all.
    pub fn chunks(&self, max: usize) -> impl Iterator<Item = DistributionSeries<'_>> {
        let (ts, values) = (&self.points[0].0, &self.points[0].1);
        let values: &[f64] = values;
        let pieces: Vec<&[f64]> = if values.is_empty() {
            vec![values]
        } else {
            values.chunks(max.max(1)).collect()
        };
        pieces.into_iter().map(move |piece| DistributionSeries {
            metric: Cow::Borrowed(&self.metric),
            points: [(*ts, Cow::Borrowed(piece))],
            tags: Cow::Borrowed(&self.tags),
        })
    }

    pub fn into_owned(self) -> DistributionSeries<'static> {
        let [(ts, values)] = self.points;
        DistributionSeries {
            metric: Cow::Owned(self.metric.into_owned()),
            points: [(ts, Cow::Owned(values.into_owned()))],
            tags: Cow::Owned(self.tags.into_owned()),
        }
    }

    /// [`DistributionSeries::chunks`], owned.
    pub fn into_chunks(self, max: usize) -> Vec<DistributionSeries<'static>> {
        self.chunks(max)
            .map(|c| DistributionSeries {
                metric: Cow::Owned(c.metric.into_owned()),
                points: [(c.points[0].0, Cow::Owned(c.points[0].1.to_vec()))],
                tags: Cow::Owned(c.tags.into_owned()),
            })
            .collect()
    }
}

/// Samples per distribution entry: half of a request's point limit, so an entry always fits a
/// request with room for others (5,000 samples are about 100 KB of JSON).
pub const MAX_SAMPLES_PER_ENTRY: usize = LIMITS.points / 2;

/// Samples per distribution entry under `limits` (smaller limits in tests: half their points).
pub fn samples_per_entry(limits: Limits) -> usize {
    (limits.points / 2).clamp(1, MAX_SAMPLES_PER_ENTRY)
}

/// A whole body, for reading one back and for the local sink's files.
#[derive(Debug, Serialize, Deserialize)]
pub struct Payload<T> {
    pub series: Vec<T>,
}

/// Both payloads of a set of metrics, unbatched (the local sink's files).
pub fn payloads(metrics: &[Metric]) -> (Payload<Series<'_>>, Payload<DistributionSeries<'_>>) {
    (
        Payload {
            series: metrics.iter().filter_map(Series::from_metric).collect(),
        },
        Payload {
            series: metrics
                .iter()
                .filter_map(DistributionSeries::from_metric)
                .collect(),
        },
    )
}

#[derive(Debug, Error)]
pub enum EncodeError {
    #[error("cannot serialise an entry: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("cannot compress a request body ({encoding}): {source}")]
    Compress {
        encoding: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot decompress a request body ({encoding}): {source}")]
    Decompress {
        encoding: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown Content-Encoding {0:?}")]
    UnknownEncoding(String),
}

impl EncodeError {
    /// A short stable tag for logs and self-metrics.
    pub fn error_type(&self) -> &'static str {
        match self {
            EncodeError::Serialize(_) => "serialize_failed",
            EncodeError::Compress { .. } => "compression_failed",
            EncodeError::Decompress { .. } | EncodeError::UnknownEncoding(_) => {
                "decompression_failed"
            }
        }
    }
}

/// One request ready to send.
#[derive(Debug, Clone)]
pub struct EncodedRequest {
    pub endpoint: Endpoint,
    pub compression: Compression,
    /// The compressed body.
    pub body: Bytes,
    /// The uncompressed body, kept only when asked for (dry run).
    pub raw: Option<Vec<u8>>,
    pub uncompressed_len: usize,
    pub series: usize,
    pub points: usize,
}

impl EncodedRequest {
    /// The uncompressed body.
    pub fn uncompressed(&self) -> Result<Cow<'_, [u8]>, EncodeError> {
        match &self.raw {
            Some(r) => Ok(Cow::Borrowed(r)),
            None => decompress(self.compression.content_encoding(), &self.body).map(Cow::Owned),
        }
    }

    /// Read the entries back (to split on 413 or to spool).
    pub fn entries(&self) -> Result<Vec<Entry<'static>>, EncodeError> {
        let body = self.uncompressed()?;
        Ok(match self.endpoint {
            Endpoint::Series => serde_json::from_slice::<Payload<Series<'static>>>(&body)?
                .series
                .into_iter()
                .map(Entry::Series)
                .collect(),
            Endpoint::DistributionPoints => {
                serde_json::from_slice::<Payload<DistributionSeries<'static>>>(&body)?
                    .series
                    .into_iter()
                    .map(Entry::Distribution)
                    .collect()
            }
        })
    }
}

/// Compress with the given encoding.
pub fn compress(compression: Compression, data: &[u8]) -> Result<Vec<u8>, EncodeError> {
    let encoding = compression.content_encoding();
    let err = |source| EncodeError::Compress { encoding, source };
    match compression {
        Compression::Zstd1 => zstd::bulk::compress(data, 1).map_err(err),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 8),
                flate2::Compression::fast(),
            );
            e.write_all(data).and_then(|_| e.finish()).map_err(err)
        }
        Compression::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(
                Vec::with_capacity(data.len() / 8),
                flate2::Compression::fast(),
            );
            e.write_all(data).and_then(|_| e.finish()).map_err(err)
        }
    }
}

/// Decompress a body sent with `Content-Encoding: encoding` (Datadog's `deflate` is zlib).
pub fn decompress(encoding: &str, body: &[u8]) -> Result<Vec<u8>, EncodeError> {
    let err = |source| EncodeError::Decompress {
        encoding: encoding.to_string(),
        source,
    };
    let mut out = Vec::with_capacity(body.len() * 8);
    match Compression::from_content_encoding(encoding) {
        Some(Compression::Zstd1) => return zstd::stream::decode_all(body).map_err(err),
        Some(Compression::Gzip) => flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .map_err(err)?,
        Some(Compression::Deflate) => flate2::read::ZlibDecoder::new(body)
            .read_to_end(&mut out)
            .map_err(err)?,
        None => return Err(EncodeError::UnknownEncoding(encoding.to_string())),
    };
    Ok(out)
}

const HEADER: &[u8] = b"{\"series\":[";
const FOOTER: &[u8] = b"]}";

/// Fills, seals and compresses batches for one endpoint.
pub struct Encoder {
    endpoint: Endpoint,
    compression: Compression,
    limits: Limits,
    keep_raw: bool,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    /// `{"series":[` then the entries, comma-separated; no footer.
    buf: Vec<u8>,
    /// Per entry in `buf`: its end offset and the points up to and including it.
    ends: Vec<(usize, usize)>,
    /// Uncompressed size a batch aims for (follows the compression ratio seen).
    target: usize,
    ready: VecDeque<EncodedRequest>,
    /// Points of entries that fit in no request at all (counted as rejected by the caller).
    pub unfit_points: usize,
}

impl Encoder {
    pub fn new(endpoint: Endpoint, compression: Compression, limits: Limits) -> Encoder {
        let mut buf = Vec::with_capacity(64 * 1024);
        buf.extend_from_slice(HEADER);
        Encoder {
            endpoint,
            compression,
            limits,
            keep_raw: false,
            zstd: None,
            buf,
            ends: Vec::new(),
            target: limits.uncompressed,
            ready: VecDeque::new(),
            unfit_points: 0,
        }
    }

    /// Also keep each request's uncompressed body (dry run prints it).
    pub fn keep_raw(mut self, keep: bool) -> Encoder {
        self.keep_raw = keep;
        self
    }

    fn points(&self) -> usize {
        self.ends.last().map(|e| e.1).unwrap_or(0)
    }

    /// Add one entry of `points` points; sealed requests become available from [`Self::pop`].
    pub fn push<T: Serialize>(&mut self, entry: &T, points: usize) -> Result<(), EncodeError> {
        let start = self.buf.len();
        if !self.ends.is_empty() {
            self.buf.push(b',');
        }
        let body_start = self.buf.len();
        if let Err(e) = serde_json::to_writer(&mut self.buf, entry) {
            self.buf.truncate(start);
            return Err(e.into());
        }
        let entry_len = self.buf.len() - body_start;
        if HEADER.len() + entry_len + FOOTER.len() > self.limits.uncompressed
            || points > self.limits.points
        {
            self.buf.truncate(start);
            self.unfit_points += points;
            return Ok(());
        }
        let over = |enc: &Encoder, len: usize, pts: usize| {
            len + FOOTER.len() > enc.target || pts > enc.limits.points
        };
        if !self.ends.is_empty() && over(self, self.buf.len(), self.points() + points) {
            // Move the new entry out, seal what was there, then put it back.
            let entry_bytes = self.buf[body_start..].to_vec();
            self.buf.truncate(start);
            while !self.ends.is_empty()
                && over(
                    self,
                    self.buf.len() + 1 + entry_bytes.len(),
                    self.points() + points,
                )
            {
                self.seal_one()?;
            }
            if !self.ends.is_empty() {
                self.buf.push(b',');
            }
            self.buf.extend_from_slice(&entry_bytes);
        }
        let total = self.points() + points;
        self.ends.push((self.buf.len(), total));
        Ok(())
    }

    /// Seal everything still buffered.
    pub fn finish(&mut self) -> Result<(), EncodeError> {
        while !self.ends.is_empty() {
            self.seal_one()?;
        }
        Ok(())
    }

    /// The next sealed request, if any.
    pub fn pop(&mut self) -> Option<EncodedRequest> {
        self.ready.pop_front()
    }

    /// Compress the first `k` buffered entries as a complete body.
    fn compress_prefix(&mut self, k: usize) -> Result<(Vec<u8>, usize), EncodeError> {
        let end = self.ends[k - 1].0;
        // Write the footer in place (over the comma that follows, if any) so the body is one
        // contiguous slice, then put the bytes back.
        let appended = end + FOOTER.len() > self.buf.len();
        let saved = if appended {
            self.buf.truncate(end);
            self.buf.extend_from_slice(FOOTER);
            [0, 0]
        } else {
            let s = [self.buf[end], self.buf[end + 1]];
            self.buf[end..end + 2].copy_from_slice(FOOTER);
            s
        };
        let body_len = end + FOOTER.len();
        let result = match self.compression {
            Compression::Zstd1 => {
                let encoding = self.compression.content_encoding();
                let compressor = match &mut self.zstd {
                    Some(c) => c,
                    None => self.zstd.insert(
                        zstd::bulk::Compressor::new(1)
                            .map_err(|source| EncodeError::Compress { encoding, source })?,
                    ),
                };
                compressor
                    .compress(&self.buf[..body_len])
                    .map_err(|source| EncodeError::Compress { encoding, source })
            }
            other => compress(other, &self.buf[..body_len]),
        };
        if appended {
            self.buf.truncate(end);
        } else {
            self.buf[end..end + 2].copy_from_slice(&saved);
        }
        result.map(|c| (c, body_len))
    }

    /// Seal one request: the longest prefix of the buffered entries that fits the limits.
    fn seal_one(&mut self) -> Result<(), EncodeError> {
        let mut k = self.ends.len();
        let (body, raw_len) = loop {
            let (body, raw_len) = self.compress_prefix(k)?;
            if body.len() <= self.limits.compressed {
                break (body, raw_len);
            }
            if k == 1 {
                // One entry that compresses beyond the limit on its own: it fits nowhere.
                let points = self.ends[0].1;
                self.remove_prefix(1);
                self.unfit_points += points;
                return Ok(());
            }
            let fits = self.limits.compressed as f64 * 0.9 / body.len() as f64;
            k = ((k as f64 * fits) as usize).clamp(1, k - 1);
        };
        // Aim the next batches at what this data actually compresses to.
        let ratio = raw_len as f64 / body.len().max(1) as f64;
        self.target = ((self.limits.compressed as f64 * ratio * 0.9) as usize)
            .min(self.limits.uncompressed)
            .max((64 * 1024).min(self.limits.uncompressed));
        let points = self.ends[k - 1].1;
        let raw = self.keep_raw.then(|| {
            let mut r = self.buf[..self.ends[k - 1].0].to_vec();
            r.extend_from_slice(FOOTER);
            r
        });
        self.ready.push_back(EncodedRequest {
            endpoint: self.endpoint,
            compression: self.compression,
            body: Bytes::from(body),
            raw,
            uncompressed_len: raw_len,
            series: k,
            points,
        });
        self.remove_prefix(k);
        Ok(())
    }

    /// Drop the first `k` entries from the buffer (they were sealed or fit nowhere).
    fn remove_prefix(&mut self, k: usize) {
        let end = self.ends[k - 1].0;
        let (cut_to, pts) = (end, self.ends[k - 1].1);
        if k == self.ends.len() {
            self.buf.truncate(HEADER.len());
            self.ends.clear();
            return;
        }
        // Remove the entries and the comma after the last of them.
        self.buf.drain(HEADER.len()..cut_to + 1);
        let shift = cut_to + 1 - HEADER.len();
        self.ends.drain(..k);
        for e in &mut self.ends {
            e.0 -= shift;
            e.1 -= pts;
        }
    }
}

/// Encode already-built entries (a spooled batch, or half of a split one) into requests.
pub fn encode_entries(
    entries: &[Entry<'_>],
    compression: Compression,
    limits: Limits,
) -> Result<(Vec<EncodedRequest>, usize), EncodeError> {
    let mut series = Encoder::new(Endpoint::Series, compression, limits);
    let mut dists = Encoder::new(Endpoint::DistributionPoints, Compression::Deflate, limits);
    for e in entries {
        match e {
            Entry::Series(s) => series.push(s, 1)?,
            Entry::Distribution(d) => {
                for c in d.chunks(samples_per_entry(limits)) {
                    dists.push(&c, c.point_count())?;
                }
            }
        }
    }
    series.finish()?;
    dists.finish()?;
    let mut out = Vec::new();
    out.extend(std::iter::from_fn(|| series.pop()));
    out.extend(std::iter::from_fn(|| dists.pop()));
    Ok((out, series.unfit_points + dists.unfit_points))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(i: usize, tag_len: usize) -> Series<'static> {
        // Pseudo-random tag text so compression has real work (and can fail to fit).
        let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let noise: String = (0..tag_len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect();
        Series {
            metric: Cow::Owned(format!("metta.infra.test.m{}", i % 7)),
            kind: 3,
            points: [Point {
                timestamp: 1_700_000_000 + i as i64,
                value: i as f64,
            }],
            tags: Cow::Owned(vec![format!("n:{i}"), format!("noise:{noise}")]),
            unit: None,
            interval: None,
        }
    }

    fn drain(enc: &mut Encoder) -> Vec<EncodedRequest> {
        std::iter::from_fn(|| enc.pop()).collect()
    }

    fn check(reqs: &[EncodedRequest], limits: Limits) -> Vec<Series<'static>> {
        let mut all = Vec::new();
        for r in reqs {
            assert!(
                r.body.len() <= limits.compressed,
                "{} compressed",
                r.body.len()
            );
            assert!(r.uncompressed_len <= limits.uncompressed);
            assert!(r.points <= limits.points);
            let entries = r.entries().unwrap();
            assert_eq!(entries.len(), r.series);
            for e in entries {
                match e {
                    Entry::Series(s) => all.push(s),
                    Entry::Distribution(_) => panic!("wrong endpoint"),
                }
            }
        }
        all
    }

    #[test]
    fn point_limit_splits_and_every_entry_arrives_once_in_order() {
        let limits = Limits {
            points: 100,
            ..LIMITS
        };
        let mut enc = Encoder::new(Endpoint::Series, Compression::Zstd1, limits);
        let input: Vec<_> = (0..1050).map(|i| series(i, 4)).collect();
        for s in &input {
            enc.push(s, 1).unwrap();
        }
        enc.finish().unwrap();
        let reqs = drain(&mut enc);
        assert_eq!(reqs.len(), 11);
        assert_eq!(check(&reqs, limits), input);
    }

    #[test]
    fn incompressible_data_is_cut_to_the_compressed_limit_and_the_rest_handed_back() {
        // Small limits and noisy tags: compression cannot bring the batch under the limit, so
        // sealing must cut and carry.
        let limits = Limits {
            compressed: 20_000,
            uncompressed: 200_000,
            points: 10_000,
        };
        for compression in [Compression::Zstd1, Compression::Gzip, Compression::Deflate] {
            let mut enc = Encoder::new(Endpoint::Series, compression, limits);
            let input: Vec<_> = (0..3000).map(|i| series(i, 60)).collect();
            for s in &input {
                enc.push(s, 1).unwrap();
            }
            enc.finish().unwrap();
            let reqs = drain(&mut enc);
            // 3000 noisy entries are ~400 kB: at most 20 kB compressed per request takes many.
            assert!(reqs.len() >= 5, "{compression:?}: {} requests", reqs.len());
            let fullest = reqs.iter().map(|r| r.body.len()).max().unwrap();
            assert!(
                fullest > limits.compressed / 2,
                "{compression:?}: batches underfilled"
            );
            assert_eq!(check(&reqs, limits), input, "{compression:?}");
            assert_eq!(enc.unfit_points, 0);
        }
    }

    #[test]
    fn an_entry_that_fits_nowhere_is_counted_not_sent() {
        let limits = Limits {
            compressed: 300,
            uncompressed: 2_000,
            points: 10,
        };
        let mut enc = Encoder::new(Endpoint::Series, Compression::Zstd1, limits);
        enc.push(&series(1, 4), 1).unwrap();
        enc.push(&series(2, 3000), 1).unwrap(); // over the uncompressed limit alone
        enc.push(&series(3, 700), 1).unwrap(); // fits uncompressed, not compressed
        enc.push(&series(4, 4), 1).unwrap();
        enc.finish().unwrap();
        let reqs = drain(&mut enc);
        let got = check(&reqs, limits);
        assert_eq!(got, vec![series(1, 4), series(4, 4)]);
        assert_eq!(enc.unfit_points, 2);
    }

    #[test]
    fn every_encoding_round_trips() {
        for c in [Compression::Zstd1, Compression::Gzip, Compression::Deflate] {
            let data = b"{\"series\":[]}".repeat(100);
            let z = compress(c, &data).unwrap();
            assert_eq!(decompress(c.content_encoding(), &z).unwrap(), data);
        }
        assert!(decompress("br", b"x").is_err());
    }
}
