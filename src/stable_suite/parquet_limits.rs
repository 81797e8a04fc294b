//! How much a Parquet file may grow when it is decoded, checked before anything is decoded.
//!
//! The 16 MiB cap on an artifact's bytes says nothing about what they decode to: a dictionary
//! page holding one 5 MB string, referenced by 2,000 rows, is a 233 KB file that the record
//! reader turns into 10 GB of strings (the process aborts on a failed allocation). So before the
//! `parquet` crate reads a page, every page header of every column chunk is walked here (the
//! headers are a few bytes of Thrift each, read straight from the file's bytes) and the file is
//! refused, naming the column, when
//!
//! - a page would decompress to more than [`MAX_PAGE_BYTES`] (a dictionary page to more than
//!   [`MAX_DICTIONARY_PAGE_BYTES`]), or all pages together to more than [`MAX_DECODED_BYTES`];
//! - an upper bound of what the values decode to passes [`MAX_DECODED_BYTES`]: a plain page
//!   decodes to at most its own size, but a dictionary-encoded value can be as long as the whole
//!   dictionary page and a `DELTA_BYTE_ARRAY` value as long as its page, once per row;
//! - the row-group or column-chunk sizes the footer declares pass the same limit;
//! - a gzip, brotli or legacy LZ4-frame page decompresses to more than its header says (the
//!   crate's decoders for those codecs read to the end of the stream, whatever the header says;
//!   snappy, zstd, LZ4 and LZ4_RAW are bounded by the header there already).
//!
//! The limits are in the README's Limits table and in `docs/stable-suite-artifact.md`.

use std::io::Read;

use parquet::basic::{Compression, Type as PhysicalType};
use parquet::file::metadata::ParquetMetaData;

use super::ArtifactError;

/// What all the pages of one file may decompress to, and what its values may decode to.
pub const MAX_DECODED_BYTES: u64 = 64 * 1024 * 1024;
/// What one page may decompress to.
pub const MAX_PAGE_BYTES: u64 = 16 * 1024 * 1024;
/// What one dictionary page may decompress to (the artifact's strings are at most 200 bytes).
pub const MAX_DICTIONARY_PAGE_BYTES: u64 = 1024 * 1024;

const PAGE_DICTIONARY: i32 = 2;
const ENCODING_PLAIN_DICTIONARY: i32 = 2;
const ENCODING_RLE_DICTIONARY: i32 = 8;
const ENCODING_DELTA_BYTE_ARRAY: i32 = 7;

/// Check `data` (the whole file) against the limits, using its already-parsed footer.
pub fn check(data: &[u8], meta: &ParquetMetaData, file: &str) -> Result<(), ArtifactError> {
    let mut decoded_total: u64 = 0;
    let mut pages_total: u64 = 0;
    for rg in meta.row_groups() {
        let rows = u64::try_from(rg.num_rows()).unwrap_or(0);
        if u64::try_from(rg.total_byte_size()).unwrap_or(0) > MAX_DECODED_BYTES {
            return Err(ArtifactError::new(
                file,
                None,
                format!(
                    "a row group declares {} bytes uncompressed, more than the {MAX_DECODED_BYTES} \
                     an artifact may decode to",
                    rg.total_byte_size()
                ),
            ));
        }
        for col in rg.columns() {
            let name = col.column_path().string();
            let too_big = |what: String| {
                ArtifactError::new(
                    file,
                    Some(&name),
                    format!("{what}; refused before decoding (see the Limits table)"),
                )
            };
            if u64::try_from(col.uncompressed_size()).unwrap_or(u64::MAX) > MAX_DECODED_BYTES {
                return Err(too_big(format!(
                    "the column chunk declares {} bytes uncompressed, more than the \
                     {MAX_DECODED_BYTES} an artifact may decode to",
                    col.uncompressed_size()
                )));
            }
            let chunk = walk_chunk(data, col, file, &name)?;
            pages_total = pages_total.saturating_add(chunk.page_bytes);
            if pages_total > MAX_DECODED_BYTES {
                return Err(too_big(format!(
                    "the pages decompress to more than the {MAX_DECODED_BYTES} bytes an artifact \
                     may decode to"
                )));
            }
            let by_dictionary = chunk
                .dictionary_values
                .min(rows)
                .saturating_mul(chunk.dictionary_bytes);
            let by_delta = chunk
                .delta_values
                .min(rows)
                .saturating_mul(chunk.largest_delta_page);
            let variable = matches!(
                col.column_type(),
                PhysicalType::BYTE_ARRAY | PhysicalType::FIXED_LEN_BYTE_ARRAY
            );
            let decoded = if variable {
                chunk
                    .plain_bytes
                    .saturating_add(by_dictionary)
                    .saturating_add(by_delta)
            } else {
                chunk.page_bytes
            };
            decoded_total = decoded_total.saturating_add(decoded);
            if decoded_total > MAX_DECODED_BYTES {
                let why = if by_dictionary >= by_delta && by_dictionary > chunk.plain_bytes {
                    format!(
                        "a dictionary page of {} bytes used by {} rows",
                        chunk.dictionary_bytes,
                        chunk.dictionary_values.min(rows)
                    )
                } else {
                    format!("{} bytes of pages", chunk.page_bytes)
                };
                return Err(too_big(format!(
                    "the values may decode to {decoded} bytes ({why}), more than the \
                     {MAX_DECODED_BYTES} an artifact may decode to"
                )));
            }
        }
    }
    Ok(())
}

/// What the page headers of one column chunk say.
#[derive(Debug, Default)]
struct ChunkPages {
    /// All pages, decompressed.
    page_bytes: u64,
    /// The dictionary page, decompressed (0 without one).
    dictionary_bytes: u64,
    /// Values in data pages that index the dictionary.
    dictionary_values: u64,
    /// Values in `DELTA_BYTE_ARRAY` pages, and the largest such page.
    delta_values: u64,
    largest_delta_page: u64,
    /// Data pages whose values decode to at most the page's own bytes.
    plain_bytes: u64,
}

fn walk_chunk(
    data: &[u8],
    col: &parquet::file::metadata::ColumnChunkMetaData,
    file: &str,
    name: &str,
) -> Result<ChunkPages, ArtifactError> {
    let bad = |msg: String| ArtifactError::new(file, Some(name), msg);
    // The same byte range the crate's page reader walks (`ColumnChunkMetaData::byte_range`).
    let start = col
        .dictionary_page_offset()
        .unwrap_or(col.data_page_offset());
    let start = usize::try_from(start).map_err(|_| bad("a negative page offset".into()))?;
    let len = usize::try_from(col.compressed_size())
        .map_err(|_| bad("a negative column chunk size".into()))?;
    let end = start
        .checked_add(len)
        .filter(|&e| e <= data.len())
        .ok_or_else(|| bad("the column chunk lies outside the file".into()))?;
    let codec = col.compression();
    let mut pages = ChunkPages::default();
    let mut at = start;
    while at < end {
        let mut r = Thrift {
            buf: &data[at..end],
            pos: 0,
        };
        let h = r
            .page_header()
            .map_err(|e| bad(format!("unreadable page header at byte {at}: {e}")))?;
        let body_start = at + r.pos;
        let body_end = body_start
            .checked_add(h.compressed)
            .filter(|&e| e <= end)
            .ok_or_else(|| bad(format!("the page at byte {at} runs past its column chunk")))?;
        let limit = if h.page_type == PAGE_DICTIONARY {
            MAX_DICTIONARY_PAGE_BYTES
        } else {
            MAX_PAGE_BYTES
        };
        if h.uncompressed > limit {
            let kind = if h.page_type == PAGE_DICTIONARY {
                "dictionary page"
            } else {
                "page"
            };
            return Err(bad(format!(
                "a {kind} decompresses to {} bytes, more than the {limit} a {kind} may hold; \
                 refused before decoding (see the Limits table)",
                h.uncompressed
            )));
        }
        check_stream_bound(codec, &data[body_start..body_end], h.uncompressed)
            .map_err(|m| bad(format!("the page at byte {at} {m}")))?;
        pages.page_bytes = pages.page_bytes.saturating_add(h.uncompressed);
        if h.page_type == PAGE_DICTIONARY {
            pages.dictionary_bytes = pages.dictionary_bytes.max(h.uncompressed);
        } else {
            match h.encoding {
                Some(ENCODING_PLAIN_DICTIONARY | ENCODING_RLE_DICTIONARY) => {
                    pages.dictionary_values = pages.dictionary_values.saturating_add(h.values)
                }
                Some(ENCODING_DELTA_BYTE_ARRAY) => {
                    pages.delta_values = pages.delta_values.saturating_add(h.values);
                    pages.largest_delta_page = pages.largest_delta_page.max(h.uncompressed);
                }
                _ => pages.plain_bytes = pages.plain_bytes.saturating_add(h.uncompressed),
            }
        }
        at = body_end;
    }
    Ok(pages)
}

/// For the codecs whose decoder in the `parquet` crate reads to the end of the stream, make sure
/// the stream ends within `declared` bytes.
fn check_stream_bound(codec: Compression, body: &[u8], declared: u64) -> Result<(), String> {
    let reader: Box<dyn Read + '_> = match codec {
        Compression::GZIP(_) => Box::new(flate2::read::MultiGzDecoder::new(body)),
        Compression::BROTLI(_) => Box::new(brotli_decompressor::Decompressor::new(body, 4096)),
        // The legacy LZ4 codec falls back to the LZ4 frame format when the Hadoop framing fails.
        Compression::LZ4 if body.starts_with(&[0x04, 0x22, 0x4d, 0x18]) => {
            Box::new(lz4_flex::frame::FrameDecoder::new(body))
        }
        _ => return Ok(()),
    };
    let mut sink = std::io::sink();
    // A stream that does not decode is left to the parquet reader, which reports it.
    let got = std::io::copy(&mut reader.take(declared + 1), &mut sink).unwrap_or(0);
    if got > declared {
        return Err(format!(
            "decompresses to more than the {declared} bytes its header declares"
        ));
    }
    Ok(())
}

/// What a page header says, of what the limits need.
#[derive(Debug, Default)]
struct PageHeader {
    page_type: i32,
    uncompressed: u64,
    compressed: usize,
    /// Values in a data page (0 for a dictionary page).
    values: u64,
    /// A data page's value encoding.
    encoding: Option<i32>,
}

/// A reader of the Thrift compact protocol, just enough for Parquet's `PageHeader`.
struct Thrift<'a> {
    buf: &'a [u8],
    pos: usize,
}

const T_TRUE: u8 = 1;
const T_FALSE: u8 = 2;
const T_BYTE: u8 = 3;
const T_I16: u8 = 4;
const T_I32: u8 = 5;
const T_I64: u8 = 6;
const T_DOUBLE: u8 = 7;
const T_BINARY: u8 = 8;
const T_LIST: u8 = 9;
const T_SET: u8 = 10;
const T_MAP: u8 = 11;
const T_STRUCT: u8 = 12;
/// Nesting deeper than this is not a page header.
const MAX_DEPTH: u32 = 16;

impl Thrift<'_> {
    fn byte(&mut self) -> Result<u8, &'static str> {
        let b = *self.buf.get(self.pos).ok_or("truncated")?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut out: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err("a varint longer than 64 bits")
    }

    fn zigzag(&mut self) -> Result<i64, &'static str> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn i32(&mut self, ty: u8) -> Result<i32, &'static str> {
        if ty != T_I32 {
            return Err("a field of an unexpected type");
        }
        i32::try_from(self.zigzag()?).map_err(|_| "an i32 out of range")
    }

    fn skip_bytes(&mut self, n: u64) -> Result<(), &'static str> {
        let n = usize::try_from(n).map_err(|_| "truncated")?;
        let end = self.pos.checked_add(n).ok_or("truncated")?;
        if end > self.buf.len() {
            return Err("truncated");
        }
        self.pos = end;
        Ok(())
    }

    /// Read a field header: `None` at the end of a struct, else (field id, type).
    fn field(&mut self, last: &mut i16) -> Result<Option<(i16, u8)>, &'static str> {
        let b = self.byte()?;
        if b == 0 {
            return Ok(None);
        }
        let ty = b & 0x0f;
        let delta = i16::from(b >> 4);
        let id = if delta == 0 {
            i16::try_from(self.zigzag()?).map_err(|_| "a field id out of range")?
        } else {
            last.checked_add(delta).ok_or("a field id out of range")?
        };
        *last = id;
        Ok(Some((id, ty)))
    }

    fn skip(&mut self, ty: u8, depth: u32) -> Result<(), &'static str> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply");
        }
        match ty {
            T_TRUE | T_FALSE => Ok(()),
            T_BYTE => self.skip_bytes(1),
            T_I16 | T_I32 | T_I64 => self.varint().map(drop),
            T_DOUBLE => self.skip_bytes(8),
            T_BINARY => {
                let n = self.varint()?;
                self.skip_bytes(n)
            }
            T_LIST | T_SET => {
                let h = self.byte()?;
                let elem = h & 0x0f;
                let n = match h >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                for _ in 0..n {
                    if elem == T_TRUE || elem == T_FALSE {
                        self.skip_bytes(1)?;
                    } else {
                        self.skip(elem, depth + 1)?;
                    }
                }
                Ok(())
            }
            T_MAP => {
                let n = self.varint()?;
                if n == 0 {
                    return Ok(());
                }
                let kv = self.byte()?;
                for _ in 0..n {
                    self.skip(kv >> 4, depth + 1)?;
                    self.skip(kv & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            T_STRUCT => {
                let mut last = 0;
                while let Some((_, t)) = self.field(&mut last)? {
                    self.skip(t, depth + 1)?;
                }
                Ok(())
            }
            _ => Err("an unknown Thrift type"),
        }
    }

    /// `DataPageHeader` (field 1 `num_values`, 2 `encoding`) and `DataPageHeaderV2` (1
    /// `num_values`, 4 `encoding`): (values, encoding).
    fn data_page(&mut self, encoding_field: i16) -> Result<(u64, Option<i32>), &'static str> {
        let (mut values, mut encoding) = (0, None);
        let mut last = 0;
        while let Some((id, ty)) = self.field(&mut last)? {
            match id {
                1 => values = u64::try_from(self.i32(ty)?).map_err(|_| "negative num_values")?,
                id if id == encoding_field => encoding = Some(self.i32(ty)?),
                _ => self.skip(ty, 1)?,
            }
        }
        Ok((values, encoding))
    }

    fn page_header(&mut self) -> Result<PageHeader, &'static str> {
        let mut h = PageHeader::default();
        let (mut has_type, mut has_sizes) = (false, 0);
        let mut last = 0;
        while let Some((id, ty)) = self.field(&mut last)? {
            match (id, ty) {
                (1, _) => {
                    h.page_type = self.i32(ty)?;
                    has_type = true;
                }
                (2, _) => {
                    h.uncompressed =
                        u64::try_from(self.i32(ty)?).map_err(|_| "a negative page size")?;
                    has_sizes += 1;
                }
                (3, _) => {
                    h.compressed =
                        usize::try_from(self.i32(ty)?).map_err(|_| "a negative page size")?;
                    has_sizes += 1;
                }
                (5, T_STRUCT) => (h.values, h.encoding) = self.data_page(2)?,
                (8, T_STRUCT) => (h.values, h.encoding) = self.data_page(4)?,
                _ => self.skip(ty, 1)?,
            }
        }
        if !has_type || has_sizes != 2 {
            return Err("a page header without its type or sizes");
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thrift_reader_refuses_garbage_without_panicking() {
        for bytes in [
            &[][..],
            &[0x15][..],
            &[0xff; 20][..],
            &[0x1c, 0x1c, 0x1c, 0x1c, 0x1c, 0x1c, 0x1c, 0x1c, 0x1c][..],
        ] {
            let mut t = Thrift { buf: bytes, pos: 0 };
            assert!(t.page_header().is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn a_gzip_page_longer_than_its_header_says_is_refused() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; 2 << 20]).unwrap();
        let body = gz.finish().unwrap();
        let gzip = Compression::GZIP(Default::default());
        assert!(check_stream_bound(gzip, &body, 1000).is_err());
        assert!(check_stream_bound(gzip, &body, 2 << 20).is_ok());
        // Codecs whose reader is bounded by the header are not decompressed twice.
        assert!(check_stream_bound(Compression::SNAPPY, &body, 1).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn page_headers_of_any_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let mut t = Thrift { buf: &bytes, pos: 0 };
            if t.page_header().is_ok() {
                proptest::prop_assert!(t.pos <= bytes.len());
            }
        }
    }

    #[test]
    fn thrift_reader_reads_a_page_header() {
        // type=DICTIONARY_PAGE(2), uncompressed=300, compressed=100,
        // dictionary_page_header{num_values=1, encoding=PLAIN(0)}
        let bytes = [
            0x15, 0x04, 0x15, 0xd8, 0x04, 0x15, 0xc8, 0x01, 0x4c, 0x15, 0x02, 0x15, 0x00, 0x00,
            0x00,
        ];
        let mut t = Thrift {
            buf: &bytes,
            pos: 0,
        };
        let h = t.page_header().unwrap();
        assert_eq!(
            (h.page_type, h.uncompressed, h.compressed),
            (PAGE_DICTIONARY, 300, 100)
        );
        assert_eq!(t.pos, bytes.len());
    }
}
