//! psp-sim (being built).
