//! Pure types and rules of identity: what an e-mail, a password, a name and a
//! role are, the account, the access token's claims and what a presented
//! refresh token leads to. No I/O.

mod account;
mod claims;
mod refresh;

pub use account::{DisplayName, Email, NewUser, Password, Role, Roles, User};
pub use claims::AccessClaims;
pub use refresh::{RefreshState, RefreshVerdict, judge_refresh};
