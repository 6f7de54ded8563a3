//! Spawning the lanswarm binaries and waiting on their output.
