//! wire (placeholder)
