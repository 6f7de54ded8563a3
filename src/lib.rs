//! Shared helpers for the cross-binary integration tests (`tests/`), demos and
//! benchmarks (`examples/`). Not part of the shipped toolkit.
//!
//! - [`process`]: finding the built binaries, spawning them, waiting on their output lines.
//! - [`netns`]: throw-away network namespaces, veth pairs and bridges, cleaned up on drop.

pub mod netns;
pub mod process;
