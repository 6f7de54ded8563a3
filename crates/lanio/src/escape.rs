//! Escaping untrusted text (datagrams, chat lines, names) for printing on a
//! terminal or in a log.
//!
//! Everything that could move the cursor, ring the bell or change the terminal
//! state is shown as an escape sequence instead: `\n`, `\r`, `\t`, `\0`, `\\`,
//! other control characters as `\u{..}`, and bytes that are not valid UTF-8 as
//! `\xNN`. Printable text (including non-ASCII letters) passes through unchanged.

use std::fmt::Write as _;

/// Returns `bytes` as a single printable line with control characters escaped.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        escape_str_into(chunk.valid(), &mut out);
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Returns `text` with control characters escaped (see the module docs).
pub fn escape_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_str_into(text, &mut out);
    out
}

fn escape_str_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Control characters plus the Unicode bidirectional controls, which can
/// visually reorder a line (the "trojan source" trick): the same set a
/// torrent's names may not hold ([`wire::torrent::is_unprintable`]).
fn needs_escape(c: char) -> bool {
    wire::torrent::is_unprintable(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(escape_bytes(b"Hello Everybody"), "Hello Everybody");
        assert_eq!(escape_str("grüße, 世界"), "grüße, 世界");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_bytes(b"a\nb\rc\td\0"), "a\\nb\\rc\\td\\0");
        assert_eq!(escape_bytes(b"\x1b[31mred\x07"), "\\u{1b}[31mred\\u{7}");
        assert_eq!(escape_str("del\u{7f} c1\u{85}"), "del\\u{7f} c1\\u{85}");
    }

    #[test]
    fn bidi_controls_are_escaped() {
        assert_eq!(
            escape_str("a\u{202e}b\u{200e}c\u{200f}d\u{061c}e\u{2067}f"),
            "a\\u{202e}b\\u{200e}c\\u{200f}d\\u{61c}e\\u{2067}f"
        );
    }

    #[test]
    fn backslash_is_escaped_so_output_is_unambiguous() {
        assert_eq!(escape_bytes(b"\\n"), "\\\\n");
        assert_ne!(escape_bytes(b"\\n"), escape_bytes(b"\n"));
    }

    #[test]
    fn invalid_utf8_bytes_are_hex_escaped() {
        assert_eq!(escape_bytes(b"ok\xff\xfe!"), "ok\\xff\\xfe!");
        assert_eq!(escape_bytes(&[0xe4, 0xb8]), "\\xe4\\xb8");
    }

    #[test]
    fn bidi_overrides_are_escaped() {
        assert_eq!(escape_str("a\u{202e}b"), "a\\u{202e}b");
    }
}
