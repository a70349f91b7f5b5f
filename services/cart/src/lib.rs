//! cart (being built).
