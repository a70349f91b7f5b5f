//! catalog-publisher (being built).
