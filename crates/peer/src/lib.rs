//! peer (placeholder)
