//! notifications (being built).
