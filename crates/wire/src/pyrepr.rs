//! Python `bytes` reprs, the form in which the seed project's tool wrote
//! piece hashes: `b'\xa9\x99>6G…'`.
//!
//! Python writes printable ASCII as itself; escapes `\\`, `\t`, `\n`, `\r` and
//! the quote it uses; writes other bytes below 0x20 or at 0x7f and above as
//! `\xhh`; and quotes with `"` when the bytes hold a `'` but no `"`.

/// Why a string is not a Python bytes repr.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReprError {
    #[error("a bytes repr starts with b' or b\"")]
    NoPrefix,
    #[error("unterminated bytes repr")]
    Unterminated,
    #[error("text after the closing quote")]
    TrailingText,
    #[error("bad escape sequence at character {0}")]
    BadEscape(usize),
    #[error("character {0:?} cannot appear unescaped in a bytes repr")]
    BadChar(char),
}

/// Parses a Python bytes repr back into its bytes.
pub fn parse(repr: &str) -> Result<Vec<u8>, ReprError> {
    let rest = repr.strip_prefix('b').ok_or(ReprError::NoPrefix)?;
    let mut chars = rest.char_indices();
    let quote = match chars.next() {
        Some((_, q @ ('\'' | '"'))) => q,
        _ => return Err(ReprError::NoPrefix),
    };
    let mut out = Vec::new();
    loop {
        let Some((pos, c)) = chars.next() else {
            return Err(ReprError::Unterminated);
        };
        match c {
            c if c == quote => {
                return if chars.next().is_none() {
                    Ok(out)
                } else {
                    Err(ReprError::TrailingText)
                };
            }
            '\\' => {
                let (_, e) = chars.next().ok_or(ReprError::Unterminated)?;
                match e {
                    '\\' => out.push(b'\\'),
                    '\'' => out.push(b'\''),
                    '"' => out.push(b'"'),
                    't' => out.push(b'\t'),
                    'n' => out.push(b'\n'),
                    'r' => out.push(b'\r'),
                    'x' => {
                        let hi = chars.next().and_then(|(_, c)| c.to_digit(16));
                        let lo = chars.next().and_then(|(_, c)| c.to_digit(16));
                        match (hi, lo) {
                            (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                            _ => return Err(ReprError::BadEscape(pos + 1)),
                        }
                    }
                    _ => return Err(ReprError::BadEscape(pos + 1)),
                }
            }
            ' '..='~' => out.push(c as u8),
            other => return Err(ReprError::BadChar(other)),
        }
    }
}

/// Writes bytes the way Python's `repr(bytes)` does.
pub fn to_repr(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut s = String::with_capacity(bytes.len() * 2 + 3);
    s.push('b');
    s.push(quote);
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b if b as char == quote => {
                s.push('\\');
                s.push(quote);
            }
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push(quote);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_of_abc_from_the_spec() {
        let repr = r"b'\xa9\x99>6G\x06\x81j\xba>%qxP\xc2l\x9c\xd0\xd8\x9d'";
        let bytes = parse(repr).unwrap();
        assert_eq!(
            crate::ids::to_hex(&bytes),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(to_repr(&bytes), repr);
    }

    #[test]
    fn python_quoting_rules() {
        // Reference outputs of CPython's repr().
        assert_eq!(to_repr(b"it's"), r#"b"it's""#);
        assert_eq!(to_repr(b"'\""), r#"b'\'"'"#);
        assert_eq!(to_repr(b"\\\t\n\r\x00\x7f\xff"), r"b'\\\t\n\r\x00\x7f\xff'");
        assert_eq!(parse(r#"b"it's""#).unwrap(), b"it's");
        assert_eq!(parse(r#"b'\'"'"#).unwrap(), b"'\"");
    }

    #[test]
    fn malformed_reprs_are_refused() {
        assert_eq!(parse("'abc'"), Err(ReprError::NoPrefix));
        assert_eq!(parse("b'abc"), Err(ReprError::Unterminated));
        assert_eq!(parse("b'abc'x"), Err(ReprError::TrailingText));
        assert!(matches!(parse(r"b'\q'"), Err(ReprError::BadEscape(_))));
        assert!(matches!(parse(r"b'\x4'"), Err(ReprError::BadEscape(_))));
        assert_eq!(parse("b'\u{e9}'"), Err(ReprError::BadChar('\u{e9}')));
        assert_eq!(parse("b'\\"), Err(ReprError::Unterminated));
    }
}
