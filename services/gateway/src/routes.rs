//! The routes file: its format, its validation, and the table requests are
//! matched against. Pure: no I/O (the caller reads the file and says how a
//! `service:<name>` upstream resolves).
//!
//! ```toml
//! [defaults]                 # every key optional
//! timeout = "15s"            # per attempt, until the upstream's response head
//! connect_timeout = "2s"
//! attempts = 2               # tries in all; only GET/HEAD/OPTIONS/PUT/DELETE are retried
//! rate_limit = "default"     # policy of routes that name none ("none": no limit)
//!
//! [breaker]                  # one circuit breaker per upstream
//! failure_threshold = 5      # consecutive failures (connect errors, timeouts, 502/503/504)
//! open_for = "10s"
//!
//! [retry_budget]             # retries allowed: min_retries + ratio x requests, over the window
//! ratio = 0.2
//! min_retries = 10
//! window = "10s"
//!
//! [rate_limits.default]      # GCRA: `rate` requests per `per`, bursts of up to `burst`
//! rate = 50
//! per = "1s"
//! burst = 100
//!
//! [[routes]]
//! name = "products-read"     # unique; the `route` label of metrics and logs
//! prefix = "/products"       # matches /products and /products/...; the longest prefix wins
//! methods = ["GET", "HEAD"]  # optional: any method
//! upstreams = ["service:catalog"]   # or "http://host:port"; round robin
//! auth = "optional"          # required (default) | optional | public
//! roles = []                 # any of customer, seller, admin (needs auth = "required")
//! rate_limit = "default"     # a [rate_limits.<name>], or "none"
//! timeout = "5s"
//! attempts = 2
//! strip_prefix = false       # true: /products/1 reaches the upstream as /1
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::Method;
use platform::config::parse_duration;
use platform::resilience::{BreakerConfig, CircuitBreaker};
use serde::Deserialize;

/// The routes compiled into the image, used when the routes file is missing.
pub const DEFAULT_ROUTES: &str = include_str!("../../../config/gateway.toml");

/// A routes file that cannot be used, naming the route and field at fault.
#[derive(Debug, thiserror::Error)]
pub enum RoutesError {
    #[error("{0}")]
    Syntax(String),
    #[error("route {route:?}: field `{field}`: {reason}")]
    Route { route: String, field: &'static str, reason: String },
    #[error("`{section}`: field `{field}`: {reason}")]
    Section { section: String, field: &'static str, reason: String },
}

// The file, as written -----------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    breaker: Breaker,
    #[serde(default)]
    retry_budget: Budget,
    #[serde(default)]
    rate_limits: BTreeMap<String, PolicyFile>,
    #[serde(default)]
    routes: Vec<RouteFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    timeout: Option<String>,
    connect_timeout: Option<String>,
    attempts: Option<u32>,
    rate_limit: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Breaker {
    failure_threshold: Option<u32>,
    open_for: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Budget {
    ratio: Option<f64>,
    min_retries: Option<u32>,
    window: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    rate: u32,
    per: String,
    burst: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    name: String,
    prefix: String,
    methods: Option<Vec<String>>,
    upstreams: Vec<String>,
    auth: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    rate_limit: Option<String>,
    timeout: Option<String>,
    attempts: Option<u32>,
    #[serde(default)]
    strip_prefix: bool,
}

// The table, as used -------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// A valid token is needed.
    Required,
    /// A token is verified when sent; without one the caller is anonymous.
    Optional,
    /// Tokens are ignored: the upstream always sees an anonymous caller.
    Public,
}

/// A named rate: `rate` requests per `per`, in bursts of up to `burst`.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub rate: u32,
    pub per: Duration,
    pub burst: u32,
}

/// One upstream server and its circuit breaker (shared by every route that
/// names it).
#[derive(Debug)]
pub struct Upstream {
    /// `http://host:port`, no trailing slash.
    pub base: String,
    /// What the routes file said (`service:catalog` or the URL).
    pub label: String,
    pub breaker: CircuitBreaker,
    /// `gateway_upstream_duration_seconds{upstream}`.
    pub duration: metrics::Histogram,
}

impl Upstream {
    /// `host:port`.
    pub fn authority(&self) -> &str {
        self.base.strip_prefix("http://").unwrap_or(&self.base)
    }
}

#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub prefix: String,
    pub methods: Option<Vec<Method>>,
    pub upstreams: Vec<Arc<Upstream>>,
    pub auth: Auth,
    pub roles: Vec<String>,
    pub rate_limit: Option<Arc<Policy>>,
    pub timeout: Duration,
    pub attempts: u32,
    pub strip_prefix: bool,
    next: AtomicUsize,
}

impl Route {
    /// The upstreams in the order to try them: round robin, starting one
    /// further on every call.
    pub fn rotation(&self) -> impl Iterator<Item = &Arc<Upstream>> + Clone {
        let n = self.upstreams.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n.max(1);
        (0..n).map(move |i| &self.upstreams[(start + i) % n])
    }

    fn matches_path(&self, path: &str) -> bool {
        self.prefix == "/"
            || path
                .strip_prefix(self.prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || self.prefix.ends_with('/'))
    }

    /// The path the upstream sees.
    pub fn upstream_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        if !self.strip_prefix || self.prefix == "/" {
            return path.into();
        }
        let rest = path.strip_prefix(self.prefix.trim_end_matches('/')).unwrap_or(path);
        if rest.starts_with('/') { rest.into() } else { format!("/{rest}").into() }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BudgetConfig {
    pub ratio: f64,
    pub min_retries: u32,
    pub window: Duration,
}

/// Every route, longest prefix first, and what they share.
#[derive(Debug)]
pub struct Table {
    pub routes: Vec<Route>,
    pub policies: Vec<Arc<Policy>>,
    pub upstreams: Vec<Arc<Upstream>>,
    pub connect_timeout: Duration,
    pub budget: BudgetConfig,
}

/// The result of matching a request.
#[derive(Debug)]
pub enum Match<'a> {
    Route(&'a Route),
    /// A route has the path but not the method; these are the methods it has.
    WrongMethod(Vec<Method>),
    None,
}

impl Table {
    /// Parses and checks a routes file. `resolve` gives the port of a
    /// service named in a `service:<name>` upstream.
    pub fn parse(text: &str, resolve: impl Fn(&str) -> Option<u16>) -> Result<Table, RoutesError> {
        let file: File = toml::from_str(text).map_err(|e| RoutesError::Syntax(e.to_string()))?;
        let d = &file.defaults;
        let section = |s: &str, field: &'static str, reason: String| RoutesError::Section {
            section: s.to_string(),
            field,
            reason,
        };
        let dur = |raw: &Option<String>, default: Duration, s: &str, field: &'static str| match raw {
            Some(r) => parse_duration(r).map_err(|e| section(s, field, e)),
            None => Ok(default),
        };
        let default_timeout = dur(&d.timeout, Duration::from_secs(15), "defaults", "timeout")?;
        let connect_timeout = dur(&d.connect_timeout, Duration::from_secs(2), "defaults", "connect_timeout")?;
        let default_attempts = d.attempts.unwrap_or(2);
        if default_attempts == 0 {
            return Err(section("defaults", "attempts", "must be at least 1".into()));
        }
        let breaker = BreakerConfig {
            failure_threshold: file.breaker.failure_threshold.unwrap_or(5).max(1),
            open_for: dur(&file.breaker.open_for, Duration::from_secs(10), "breaker", "open_for")?,
            half_open_probes: 1,
        };
        let budget = BudgetConfig {
            ratio: file.retry_budget.ratio.unwrap_or(0.2),
            min_retries: file.retry_budget.min_retries.unwrap_or(10),
            window: dur(&file.retry_budget.window, Duration::from_secs(10), "retry_budget", "window")?,
        };
        if !(0.0..=1.0).contains(&budget.ratio) {
            return Err(section("retry_budget", "ratio", "must be between 0 and 1".into()));
        }
        if budget.window < Duration::from_secs(1) {
            return Err(section("retry_budget", "window", "must be at least 1s".into()));
        }

        let mut policies: HashMap<String, Arc<Policy>> = HashMap::new();
        for (name, p) in &file.rate_limits {
            let s = format!("rate_limits.{name}");
            let per = parse_duration(&p.per).map_err(|e| section(&s, "per", e))?;
            if p.rate == 0 {
                return Err(section(&s, "rate", "must be at least 1".into()));
            }
            if per.is_zero() {
                return Err(section(&s, "per", "must be positive".into()));
            }
            if p.burst == 0 {
                return Err(section(&s, "burst", "must be at least 1".into()));
            }
            if name == "none" {
                return Err(section(&s, "name", "`none` means no limit and cannot name a policy".into()));
            }
            policies.insert(name.clone(), Arc::new(Policy { name: name.clone(), rate: p.rate, per, burst: p.burst }));
        }
        let policy_of = |name: &str| -> Result<Option<Arc<Policy>>, String> {
            if name == "none" {
                return Ok(None);
            }
            match policies.get(name) {
                Some(p) => Ok(Some(p.clone())),
                None => {
                    Err(format!("unknown rate limit policy {name:?} (define [rate_limits.{name}] or use \"none\")"))
                }
            }
        };
        let default_policy = match &d.rate_limit {
            Some(n) => policy_of(n).map_err(|e| section("defaults", "rate_limit", e))?,
            None => None,
        };

        let mut upstreams: Vec<Arc<Upstream>> = Vec::new();
        let mut routes = Vec::new();
        for r in &file.routes {
            let err = |field: &'static str, reason: String| RoutesError::Route { route: r.name.clone(), field, reason };
            if r.name.trim().is_empty() {
                return Err(err("name", "must not be empty".into()));
            }
            if routes.iter().any(|x: &Route| x.name == r.name) {
                return Err(err("name", "another route has this name".into()));
            }
            if !r.prefix.starts_with('/') || r.prefix.contains(['?', '#', ' ']) {
                return Err(err("prefix", format!("{:?} must be a path starting with '/'", r.prefix)));
            }
            let methods = match &r.methods {
                None => None,
                Some(ms) if ms.is_empty() => return Err(err("methods", "empty list (omit it for any method)".into())),
                Some(ms) => Some(
                    ms.iter()
                        .map(|m| match m.as_str() {
                            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => {
                                Method::from_bytes(m.as_bytes()).map_err(|e| err("methods", e.to_string()))
                            }
                            other => Err(err("methods", format!("unknown method {other:?} (use upper case)"))),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            };
            if r.upstreams.is_empty() {
                return Err(err("upstreams", "at least one upstream is needed".into()));
            }
            let mut ups = Vec::new();
            for label in &r.upstreams {
                let base = resolve_upstream(label, &resolve).map_err(|e| err("upstreams", e))?;
                let up = match upstreams.iter().find(|u| u.base == base) {
                    Some(u) => u.clone(),
                    None => {
                        // Breaker names are 'static; there is one per distinct
                        // upstream of the file, made once at start.
                        let name: &'static str = Box::leak(format!("gateway:{base}").into_boxed_str());
                        let u = Arc::new(Upstream {
                            base: base.clone(),
                            label: label.clone(),
                            breaker: CircuitBreaker::new(name, breaker),
                            duration: metrics::histogram!(
                                "gateway_upstream_duration_seconds",
                                "upstream" => label.clone()
                            ),
                        });
                        upstreams.push(u.clone());
                        u
                    }
                };
                ups.push(up);
            }
            let auth = match r.auth.as_deref() {
                None | Some("required") => Auth::Required,
                Some("optional") => Auth::Optional,
                Some("public") => Auth::Public,
                Some(other) => return Err(err("auth", format!("{other:?}: use required, optional or public"))),
            };
            for role in &r.roles {
                if !["customer", "seller", "admin"].contains(&role.as_str()) {
                    return Err(err("roles", format!("unknown role {role:?}: use customer, seller or admin")));
                }
            }
            if !r.roles.is_empty() && auth != Auth::Required {
                return Err(err("roles", "roles need auth = \"required\"".into()));
            }
            let rate_limit = match &r.rate_limit {
                Some(n) => policy_of(n).map_err(|e| err("rate_limit", e))?,
                None => default_policy.clone(),
            };
            let timeout = match &r.timeout {
                Some(t) => parse_duration(t).map_err(|e| err("timeout", e))?,
                None => default_timeout,
            };
            if timeout.is_zero() {
                return Err(err("timeout", "must be positive".into()));
            }
            let attempts = r.attempts.unwrap_or(default_attempts);
            if attempts == 0 {
                return Err(err("attempts", "must be at least 1".into()));
            }
            routes.push(Route {
                name: r.name.clone(),
                prefix: r.prefix.clone(),
                methods,
                upstreams: ups,
                auth,
                roles: r.roles.clone(),
                rate_limit,
                timeout,
                attempts,
                strip_prefix: r.strip_prefix,
                next: AtomicUsize::new(0),
            });
        }
        // Longest prefix first; among equal prefixes, file order.
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.trim_end_matches('/').len()));
        let mut policies: Vec<Arc<Policy>> = policies.into_values().collect();
        policies.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Table { routes, policies, upstreams, connect_timeout, budget })
    }

    /// The route for `method` on `path`.
    pub fn find(&self, method: &Method, path: &str) -> Match<'_> {
        let mut prefix: Option<&str> = None;
        let mut allowed = Vec::new();
        for r in &self.routes {
            if !r.matches_path(path) {
                continue;
            }
            // Only routes with the longest matching prefix compete.
            match prefix {
                Some(p) if p.trim_end_matches('/').len() > r.prefix.trim_end_matches('/').len() => break,
                _ => prefix = Some(&r.prefix),
            }
            match &r.methods {
                None => return Match::Route(r),
                Some(ms) if ms.contains(method) => return Match::Route(r),
                Some(ms) => allowed.extend(ms.iter().cloned()),
            }
        }
        if prefix.is_some() { Match::WrongMethod(allowed) } else { Match::None }
    }
}

fn resolve_upstream(label: &str, resolve: &impl Fn(&str) -> Option<u16>) -> Result<String, String> {
    if let Some(service) = label.strip_prefix("service:") {
        let port = resolve(service).ok_or_else(|| format!("unknown service {service:?} in {label:?}"))?;
        return Ok(format!("http://127.0.0.1:{port}"));
    }
    let rest = label
        .strip_prefix("http://")
        .ok_or_else(|| format!("{label:?}: use http://host:port or service:<name>"))?
        .trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains(['?', '#', '@']) {
        return Err(format!("{label:?}: use http://host:port (no path)"));
    }
    Ok(format!("http://{rest}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ports(name: &str) -> Option<u16> {
        match name {
            "identity" => Some(8101),
            "catalog" => Some(8104),
            "catalog-publisher" => Some(8113),
            "cart" => Some(8105),
            "orders" => Some(8106),
            "payments" => Some(8107),
            "invoices" => Some(8108),
            "notifications" => Some(8109),
            "shipping" => Some(8110),
            _ => None,
        }
    }

    fn table(text: &str) -> Table {
        Table::parse(text, ports).unwrap()
    }

    fn route<'a>(t: &'a Table, m: Method, p: &str) -> &'a str {
        match t.find(&m, p) {
            Match::Route(r) => &r.name,
            other => panic!("{m} {p}: {other:?}"),
        }
    }

    #[test]
    fn the_default_routes_cover_every_service() {
        let t = table(DEFAULT_ROUTES);
        for (m, p, upstream) in [
            (Method::POST, "/auth/login", 8101),
            (Method::GET, "/me", 8101),
            (Method::GET, "/.well-known/jwks.json", 8101),
            (Method::GET, "/admin/users", 8101),
            (Method::POST, "/admin/keys/rotate", 8101),
            (Method::GET, "/products/1", 8104),
            (Method::POST, "/owners/1/products", 8104),
            (Method::GET, "/categories", 8104),
            (Method::GET, "/reservations/1", 8104),
            (Method::GET, "/catalogs/1", 8113),
            (Method::GET, "/cart", 8105),
            (Method::POST, "/orders", 8106),
            (Method::POST, "/payments/webhooks/psp", 8107),
            (Method::GET, "/payments/1", 8107),
            (Method::GET, "/invoices", 8108),
            (Method::GET, "/emails", 8109),
            (Method::POST, "/shipping/quotes", 8110),
            (Method::GET, "/shipments/1", 8110),
        ] {
            let Match::Route(r) = t.find(&m, p) else { panic!("{m} {p} has no route") };
            assert_eq!(r.upstreams[0].base, format!("http://127.0.0.1:{upstream}"), "{m} {p}");
        }
        let Match::Route(r) = t.find(&Method::GET, "/products") else { panic!() };
        assert_eq!(r.auth, Auth::Optional);
        let Match::Route(r) = t.find(&Method::POST, "/payments/webhooks/psp") else { panic!() };
        assert_eq!(r.auth, Auth::Public);
        let Match::Route(r) = t.find(&Method::GET, "/reservations/1") else { panic!() };
        assert_eq!(r.roles, ["admin"]);
        assert!(matches!(t.find(&Method::GET, "/nowhere"), Match::None));
    }

    #[test]
    fn the_longest_prefix_wins_on_segment_boundaries() {
        let t = table(
            r#"
            [[routes]]
            name = "all"
            prefix = "/"
            upstreams = ["http://a:1"]
            [[routes]]
            name = "p"
            prefix = "/p"
            upstreams = ["http://a:1"]
            [[routes]]
            name = "pq-get"
            prefix = "/p/q"
            methods = ["GET"]
            upstreams = ["http://a:1"]
            "#,
        );
        assert_eq!(route(&t, Method::GET, "/p/q/1"), "pq-get");
        assert_eq!(route(&t, Method::GET, "/p/1"), "p");
        assert_eq!(route(&t, Method::GET, "/p"), "p");
        assert_eq!(route(&t, Method::GET, "/px"), "all");
        assert!(matches!(t.find(&Method::POST, "/p/q"), Match::WrongMethod(m) if m == [Method::GET]));
    }

    #[test]
    fn errors_name_the_route_and_the_field() {
        let base =
            |extra: &str| format!("[[routes]]\nname = \"r1\"\nprefix = \"/a\"\nupstreams = [\"http://a:1\"]\n{extra}");
        for (extra, field) in [
            ("timeout = \"soon\"", "timeout"),
            ("auth = \"maybe\"", "auth"),
            ("roles = [\"root\"]", "roles"),
            ("rate_limit = \"gold\"", "rate_limit"),
            ("methods = [\"FETCH\"]", "methods"),
            ("attempts = 0", "attempts"),
        ] {
            let e = Table::parse(&base(extra), ports).unwrap_err().to_string();
            assert!(e.contains("\"r1\"") && e.contains(field), "{extra}: {e}");
        }
        let e = Table::parse(&base("colour = \"red\""), ports).unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
        let e = Table::parse("[[routes]]\nname=\"x\"\nprefix=\"/x\"\nupstreams=[\"service:nope\"]", ports)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"x\"") && e.contains("nope"), "{e}");
    }

    #[test]
    fn strip_prefix_keeps_a_leading_slash() {
        let t = table("[[routes]]\nname=\"x\"\nprefix=\"/api\"\nupstreams=[\"http://a:1\"]\nstrip_prefix=true");
        let r = &t.routes[0];
        assert_eq!(r.upstream_path("/api/products"), "/products");
        assert_eq!(r.upstream_path("/api"), "/");
    }

    #[test]
    fn round_robin_turns_over_the_upstreams() {
        let t = table("[[routes]]\nname=\"x\"\nprefix=\"/\"\nupstreams=[\"http://a:1\", \"http://b:1\"]");
        let r = &t.routes[0];
        let firsts: Vec<_> = (0..4).map(|_| r.rotation().next().unwrap().base.clone()).collect();
        assert_eq!(firsts, ["http://a:1", "http://b:1", "http://a:1", "http://b:1"]);
    }
}
