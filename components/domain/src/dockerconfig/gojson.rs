//! JSON text as Go's encoding/json writes it, so stored and exported configs are byte for byte
//! what kubectl builds.

use std::fmt::Write as _;

/// Writes a JSON string as Go's encoding/json does (kubectl's encoder), so that our output is
/// byte-identical to kubectl's: HTML-sensitive characters and U+2028/9 escaped as `\u....`.
pub(super) fn push_go_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

pub(super) fn push_field(out: &mut String, name: &str, value: &str) {
    if !out.ends_with('{') {
        out.push(',');
    }
    push_go_json_string(out, name);
    out.push(':');
    push_go_json_string(out, value);
}
