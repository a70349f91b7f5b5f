//! Use cases over the in-memory booking book (the simulator is stateless:
//! it stands in for an outside party, so it keeps no database).

pub mod bookings;
