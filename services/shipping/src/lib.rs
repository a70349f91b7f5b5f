//! shipping (being built).
