//! payments (being built).
