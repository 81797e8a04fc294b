//! Turning byte spans into `file:line` and finding the line of a key inside a table.
//!
//! serde stops at the first error and TOML values lose their positions once deserialized, so
//! the loader keeps each table's span and, when a key inside it is wrong, finds the key's own
//! line by looking for `key =` within the table's text. That is how every error can name
//! file, line and key.

use std::ops::Range;

/// 1-based line of byte offset `pos` in `text`.
pub fn line_of(text: &str, pos: usize) -> usize {
    let pos = pos.min(text.len());
    text.as_bytes()[..pos]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The text range of the table whose header (or first key) is at `span`: from there to the
/// next table header. TOML spans of a table cover its header only, not its keys.
pub fn section_range(text: &str, span: &Range<usize>) -> Range<usize> {
    let start = span.start.min(text.len());
    let after_header = span.end.clamp(start, text.len());
    let mut offset = after_header;
    for line in text[after_header..].split_inclusive('\n') {
        if offset > after_header && line.trim_start().starts_with('[') {
            return start..offset;
        }
        offset += line.len();
    }
    start..text.len()
}

/// The line where `key` is assigned inside the table at `span`, or the table's first line.
pub fn key_line(text: &str, span: &Range<usize>, key: &str) -> usize {
    let range = section_range(text, span);
    let start = range.start;
    let end = range.end;
    let Some(slice) = text.get(start..end) else {
        return line_of(text, start);
    };
    let mut offset = start;
    for line in slice.split_inclusive('\n') {
        let t = line.trim_start();
        let t = t.strip_prefix('"').unwrap_or(t);
        if let Some(rest) = t.strip_prefix(key) {
            let rest = rest.strip_prefix('"').unwrap_or(rest).trim_start();
            if rest.starts_with('=') || rest.starts_with('.') {
                return line_of(text, offset);
            }
        }
        offset += line.len();
    }
    line_of(text, start)
}

/// The line of the table header (`[[check]]`, `[defaults]`) that opens the table at `span`:
/// the span of a table's value may start at its first key, so walk back to the header.
pub fn header_line(text: &str, span: &Range<usize>) -> usize {
    let start = span.start.min(text.len());
    let before = text.get(..start).unwrap_or("");
    let mut line = line_of(text, start);
    let first = text[start..].lines().next().unwrap_or("").trim_start();
    if first.starts_with('[') {
        return line;
    }
    for l in before.lines().rev() {
        line -= 1;
        if l.trim_start().starts_with('[') {
            return line.max(1);
        }
    }
    line_of(text, start)
}

/// The key named in a serde error message (`unknown field `tresh``, `missing field `x``,
/// `invalid type: ... for key `y``), so the error can point at its line.
pub use crate::collectors::serde_message_key as key_in_message;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lines() {
        let text = "a = 1\n[[check]]\nname = \"x\"\ncondition = \"<5\"\n[[check]]\ncondition = 1\n";
        assert_eq!(line_of(text, 0), 1);
        let start = text.find("name").unwrap();
        let span = start..text.len();
        assert_eq!(key_line(text, &span, "condition"), 4);
        assert_eq!(key_line(text, &span, "missing"), 3);
        let header = text.find("[[check]]").unwrap();
        assert_eq!(key_line(text, &(header..header + 9), "condition"), 4);
        assert_eq!(header_line(text, &span), 2);
        assert_eq!(
            key_in_message("unknown field `tresh`, expected one of"),
            Some("tresh".into())
        );
    }
}
