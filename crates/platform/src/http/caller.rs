//! Who is calling: the identity the gateway forwards.
//!
//! # Header contract
//! - `x-feira-user-id`: the authenticated user's UUID; absent for anonymous
//!   calls.
//! - `x-feira-roles`: comma-separated roles (`customer`, `seller`, `admin`);
//!   unknown roles are ignored.
//! - `x-feira-channel`: set by an internal service calling another on a
//!   user's behalf (the cart's checkout sets `cart` when it places the
//!   order), never by the gateway, which strips it from clients like every
//!   `x-feira-*` header. A service may accept a call only from a channel:
//!   orders places an order only from the cart, which prices it from the
//!   catalog, or from an admin.
//!
//! Services trust these headers because only the gateway can reach them: the
//! gateway verifies the caller's token, **removes any `x-feira-*` header the
//! client sent**, and sets these two. Services must therefore never be
//! exposed except through the gateway (in Kubernetes, a NetworkPolicy that
//! admits only the gateway; locally, `FEIRA_BIND_HOST=127.0.0.1`). A value that
//! does not parse is rejected with 400 rather than treated as anonymous.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use uuid::Uuid;

use crate::error::{ApiError, ErrorKind};

pub const USER_ID_HEADER: &str = "x-feira-user-id";
pub const ROLES_HEADER: &str = "x-feira-roles";
pub const CHANNEL_HEADER: &str = "x-feira-channel";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Customer,
    Seller,
    Admin,
}

impl Role {
    fn parse(s: &str) -> Option<Role> {
        match s.trim() {
            "customer" => Some(Role::Customer),
            "seller" => Some(Role::Seller),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: Option<Uuid>,
    pub roles: Vec<Role>,
}

impl Caller {
    pub fn anonymous() -> Self {
        Caller { user_id: None, roles: Vec::new() }
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }

    /// The user id, or 401 for an anonymous caller.
    pub fn require_user(&self) -> Result<Uuid, ApiError> {
        self.user_id.ok_or_else(|| ApiError::new(ErrorKind::Unauthenticated, "authentication required"))
    }

    /// True if the caller may act on a resource owned by `owner`.
    pub fn may_access(&self, owner: Uuid) -> bool {
        self.is_admin() || self.user_id == Some(owner)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let user_id = match parts.headers.get(USER_ID_HEADER) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| Uuid::parse_str(s.trim()).ok())
                    .ok_or_else(|| ApiError::new(ErrorKind::BadRequest, format!("{USER_ID_HEADER} is not a UUID")))?,
            ),
        };
        let roles = match (user_id, parts.headers.get(ROLES_HEADER)) {
            (Some(_), Some(v)) => v
                .to_str()
                .map_err(|_| ApiError::new(ErrorKind::BadRequest, format!("{ROLES_HEADER} is not text")))?
                .split(',')
                .filter_map(Role::parse)
                .collect(),
            // Roles without a user are meaningless: anonymous.
            _ => Vec::new(),
        };
        Ok(Caller { user_id, roles })
    }
}
