//! Accounts and the values they are made of.

use std::fmt;

use time::OffsetDateTime;
use uuid::Uuid;

/// A normalized e-mail address: trimmed, lower-case, `local@domain.tld`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Email, &'static str> {
        let s = Self::normalize(raw);
        if s.is_empty() {
            return Err("must not be empty");
        }
        if s.len() > Self::MAX_LEN {
            return Err("must be at most 254 characters");
        }
        let (local, domain) = s.split_once('@').ok_or("must contain @")?;
        if local.is_empty() || local.len() > 64 {
            return Err("the part before @ must have 1 to 64 characters");
        }
        let local_ok = local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c))
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..");
        if !local_ok {
            return Err("the part before @ has characters an address cannot have");
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !domain_ok {
            return Err("the domain must be like example.com");
        }
        Ok(Email(s))
    }

    /// What a lookup compares: the input trimmed and lower-cased (used at
    /// login, where a malformed address simply matches no account).
    pub fn normalize(raw: &str) -> String {
        raw.trim().to_lowercase()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An address read back from the database (already normalized).
    pub fn from_stored(s: String) -> Email {
        Email(s)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Personal data: the domain only.
        let domain = self.0.split_once('@').map(|(_, d)| d).unwrap_or_default();
        write!(f, "Email(***@{domain})")
    }
}

/// A new password that meets the policy: 10 to 128 characters.
/// Its `Debug` never shows it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 10;
    pub const MAX_CHARS: usize = 128;

    pub fn parse(raw: &str) -> Result<Password, &'static str> {
        let n = raw.chars().count();
        if n < Self::MIN_CHARS {
            return Err("must have at least 10 characters");
        }
        if n > Self::MAX_CHARS {
            return Err("must have at most 128 characters");
        }
        Ok(Password(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A display name: trimmed, 1 to 120 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// `None` for an absent or blank name.
    pub fn parse_optional(raw: Option<&str>) -> Result<Option<DisplayName>, &'static str> {
        let Some(s) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        if s.chars().count() > 120 {
            return Err("must be at most 120 characters");
        }
        if s.chars().any(char::is_control) {
            return Err("must not contain control characters");
        }
        Ok(Some(DisplayName(s.to_string())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Customer,
    Seller,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Result<Role, String> {
        match s {
            "customer" => Ok(Role::Customer),
            "seller" => Ok(Role::Seller),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}; use customer, seller or admin")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Seller => "seller",
            Role::Admin => "admin",
        }
    }
}

/// A non-empty set of roles, sorted, without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles(Vec<Role>);

impl Roles {
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Roles, String> {
        let mut roles = raw.iter().map(|r| Role::parse(r.as_ref().trim())).collect::<Result<Vec<_>, _>>()?;
        roles.sort();
        roles.dedup();
        if roles.is_empty() {
            return Err("must name at least one role".to_string());
        }
        Ok(Roles(roles))
    }

    pub fn one(role: Role) -> Roles {
        Roles(vec![role])
    }

    pub fn contains(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|r| r.as_str().to_string()).collect()
    }
}

/// An account as stored.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub email: Email,
    pub name: Option<String>,
    pub roles: Roles,
    pub created_at: OffsetDateTime,
}

/// An account to create; the password hash is computed by the caller.
#[derive(Debug)]
pub struct NewUser {
    pub email: Email,
    pub name: Option<DisplayName>,
    pub password: Password,
    pub roles: Roles,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        assert_eq!(Email::parse("  Ana.Souza@Example.COM ").map(|e| e.0), Ok("ana.souza@example.com".to_string()));
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in
            ["", "ana", "ana@", "@example.com", "ana@example", "a b@example.com", "ana@exa_mple.com", "ana..b@x.com"]
        {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn passwords_have_10_to_128_characters_counted_as_characters() {
        assert!(Password::parse("123456789").is_err());
        assert!(Password::parse("1234567890").is_ok());
        assert!(Password::parse(&"é".repeat(128)).is_ok(), "256 bytes but 128 characters");
        assert!(Password::parse(&"a".repeat(129)).is_err());
        assert_eq!(format!("{:?}", Password::parse("secret-password").ok()), "Some(Password(***))");
    }

    #[test]
    fn roles_are_known_sorted_and_never_empty() {
        assert_eq!(
            Roles::parse(&["admin", "seller", "admin"]).map(|r| r.names()),
            Ok(vec!["seller".into(), "admin".into()])
        );
        assert!(Roles::parse::<&str>(&[]).is_err());
        assert!(Roles::parse(&["root"]).is_err());
    }

    #[test]
    fn blank_names_are_no_name() {
        assert_eq!(DisplayName::parse_optional(Some("   ")), Ok(None));
        assert_eq!(DisplayName::parse_optional(Some(" Ana ")).map(|n| n.map(|n| n.0)), Ok(Some("Ana".into())));
        assert!(DisplayName::parse_optional(Some(&"x".repeat(121))).is_err());
    }
}
