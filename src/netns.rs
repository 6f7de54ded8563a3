//! Network namespace test hosts (see crate docs).
