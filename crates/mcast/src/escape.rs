//! Escaping control characters in untrusted text: the kit's
//! [`lanio::escape`], which `peer chat` shares.

pub use lanio::escape::{escape_bytes, escape_str};
