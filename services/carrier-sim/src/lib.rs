//! carrier-sim (being built).
