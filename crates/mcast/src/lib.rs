//! mcast (placeholder)
