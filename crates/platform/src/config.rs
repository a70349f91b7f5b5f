//! Configuration: defaults that run on a developer machine with no setup,
//! overridden by `FEIRA_*` environment variables.
//!
//! Every variable is declared once, in [`GLOBAL_VARS`] or by the per-service
//! pattern in [`service_vars`], and `feira config` prints them all. An unknown
//! `FEIRA_*` variable, or a value that does not parse, stops start-up with an
//! error that names the variable.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

/// One documented environment variable.
#[derive(Debug, Clone, Copy)]
pub struct Var {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// Variables that apply to every service in the process.
pub const GLOBAL_VARS: &[Var] = &[
    Var {
        name: "FEIRA_BIND_HOST",
        default: "127.0.0.1",
        help: "address every HTTP listener binds (0.0.0.0 in containers)",
    },
    Var {
        name: "FEIRA_DATABASE_URL",
        default: "postgres://postgres@127.0.0.1:5432/postgres",
        help: "PostgreSQL server; each service uses its own database `feira_<service>` on it, created if missing",
    },
    Var { name: "FEIRA_DATABASE_MAX_CONNECTIONS", default: "10", help: "pool size per service" },
    Var {
        name: "FEIRA_AMQP_URL",
        default: "amqp://guest:guest@127.0.0.1:5672/%2f",
        help: "RabbitMQ broker (the vhost is the URL path)",
    },
    Var {
        name: "FEIRA_REDIS_URL",
        default: "redis://127.0.0.1:6379",
        help: "Redis for caches and shared rate limits (a service keeps working from its database when Redis is down)",
    },
    Var {
        name: "FEIRA_AMQP_NAMESPACE",
        default: "feira",
        help: "prefix of every exchange and queue name, so several installations (or tests) share one vhost",
    },
    Var { name: "FEIRA_AMQP_PREFETCH", default: "32", help: "unacknowledged messages a consumer may hold" },
    Var {
        name: "FEIRA_RETRY_DELAYS",
        default: "1s,10s,60s",
        help: "broker-side delays between handling attempts; after the last one the message is dead-lettered",
    },
    Var {
        name: "FEIRA_OUTBOX_SWEEP_INTERVAL",
        default: "1s",
        help: "how often the outbox relay looks for unsent rows when no NOTIFY woke it",
    },
    Var { name: "FEIRA_OUTBOX_BATCH_SIZE", default: "200", help: "outbox rows published per relay transaction" },
    Var {
        name: "FEIRA_OUTBOX_RETENTION",
        default: "7d",
        help: "how long published outbox rows and inbox records are kept",
    },
    Var {
        name: "FEIRA_HTTP_BODY_LIMIT",
        default: "1048576",
        help: "largest accepted request body, in bytes (larger answers 413)",
    },
    Var { name: "FEIRA_HTTP_REQUEST_TIMEOUT", default: "30s", help: "time a request may take before it answers 408" },
    Var {
        name: "FEIRA_IDEMPOTENCY_TTL",
        default: "24h",
        help: "how long an Idempotency-Key and its response are kept",
    },
    Var {
        name: "FEIRA_SHUTDOWN_GRACE",
        default: "20s",
        help: "time given to in-flight requests and messages after SIGTERM or Ctrl-C",
    },
    Var {
        name: "FEIRA_LOG_FORMAT",
        default: "auto",
        help: "`json`, `pretty`, or `auto` (pretty on a terminal, JSON otherwise)",
    },
];

/// Variables read by the telemetry layer under their standard names.
pub const STANDARD_VARS: &[Var] = &[
    Var { name: "RUST_LOG", default: "info", help: "log filter (tracing-subscriber EnvFilter syntax)" },
    Var {
        name: "OTEL_EXPORTER_OTLP_ENDPOINT",
        default: "(unset)",
        help: "when set, traces are exported over OTLP/HTTP to this collector",
    },
    Var { name: "OTEL_SERVICE_NAME", default: "feira", help: "service.name resource attribute of exported traces" },
];

/// The per-service variables, with `{SERVICE}` standing for the upper-cased
/// target name (for example `FEIRA_ORDERS_PORT`).
pub fn service_vars(service: &str, default_port: u16) -> Vec<(String, String, &'static str)> {
    let up = service.to_uppercase().replace('-', "_");
    vec![
        (format!("FEIRA_{up}_PORT"), default_port.to_string(), "HTTP port of the service (0 picks a free port)"),
        (
            format!("FEIRA_{up}_DATABASE_URL"),
            format!("FEIRA_DATABASE_URL with database feira_{}", service.replace('-', "_")),
            "the service's own database, overriding the derived one",
        ),
        (
            format!("FEIRA_{up}_READ_DATABASE_URL"),
            "(unset: reads go to the primary)".to_string(),
            "a streaming replica of the service's database for read-only queries",
        ),
    ]
}

/// A configuration problem, always naming the variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value {value:?} for {name}: {reason}")]
    Invalid { name: String, value: String, reason: String },
    #[error("unknown variable {name}; `feira config` lists the known ones")]
    Unknown { name: String },
}

/// Settings shared by every service of the process.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind_host: IpAddr,
    pub redis_url: String,
    pub database: PgConnectOptions,
    pub database_max_connections: u32,
    pub amqp_url: String,
    pub messaging: MessagingConfig,
    pub http: HttpConfig,
    pub shutdown_grace: Duration,
    pub log_format: LogFormat,
    services: BTreeMap<String, ServiceConfig>,
    /// Service-specific variables (declared in each `ServiceSpec::vars`), as set.
    extra: BTreeMap<String, String>,
    extra_vars: Vec<Var>,
}

#[derive(Debug, Clone)]
pub struct MessagingConfig {
    pub namespace: String,
    pub prefetch: u16,
    pub retry_delays: Vec<Duration>,
    pub outbox_sweep_interval: Duration,
    pub outbox_batch_size: i64,
    pub retention: Duration,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub body_limit: usize,
    pub request_timeout: Duration,
    pub idempotency_ttl: Duration,
}

/// Settings of one service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub name: String,
    pub port: u16,
    pub database: PgConnectOptions,
    /// A replica for read-only queries; `None` reads from `database`.
    pub read_database: Option<PgConnectOptions>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Auto,
    Json,
    Pretty,
}

impl Config {
    /// Reads the process environment. `services` lists every known target
    /// with its default port, so per-service variables can be checked.
    pub fn from_env(services: &[(&str, u16)], extra: &[Var]) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with("FEIRA_")).collect();
        Self::from_map(&env, services, extra)
    }

    /// Reads configuration from a map of variables (the environment, or a
    /// test's own settings).
    /// `extra` lists the service-specific variables (every target's
    /// `ServiceSpec::vars`).
    pub fn from_map(
        env: &BTreeMap<String, String>,
        services: &[(&str, u16)],
        extra: &[Var],
    ) -> Result<Self, ConfigError> {
        let mut known: Vec<String> = GLOBAL_VARS.iter().chain(extra).map(|v| v.name.to_string()).collect();
        for (svc, port) in services {
            known.extend(service_vars(svc, *port).into_iter().map(|(n, _, _)| n));
        }
        if let Some(name) = env.keys().find(|k| k.starts_with("FEIRA_") && !known.contains(k)) {
            return Err(ConfigError::Unknown { name: name.clone() });
        }
        let redis_url = env.get("FEIRA_REDIS_URL").cloned().unwrap_or_else(|| "redis://127.0.0.1:6379".to_string());
        if !(redis_url.starts_with("redis://") || redis_url.starts_with("rediss://")) {
            return Err(invalid("FEIRA_REDIS_URL", &redis_url, "must start with redis:// or rediss://"));
        }
        let get = |name: &str| -> String {
            env.get(name).cloned().unwrap_or_else(|| {
                GLOBAL_VARS.iter().find(|v| v.name == name).map(|v| v.default.to_string()).unwrap_or_default()
            })
        };

        let database: PgConnectOptions = parse("FEIRA_DATABASE_URL", &get("FEIRA_DATABASE_URL"))?;
        let mut service_map = BTreeMap::new();
        for (svc, default_port) in services {
            let [(port_var, _, _), (db_var, _, _), (read_var, _, _)] =
                <[_; 3]>::try_from(service_vars(svc, *default_port))
                    .map_err(|_| ConfigError::Unknown { name: svc.to_string() })?;
            let port = match env.get(&port_var) {
                Some(v) => parse(&port_var, v)?,
                None => *default_port,
            };
            let db = match env.get(&db_var) {
                Some(v) => parse(&db_var, v)?,
                None => database.clone().database(&format!("feira_{}", svc.replace('-', "_"))),
            };
            let read_database = env.get(&read_var).map(|v| parse(&read_var, v)).transpose()?;
            service_map
                .insert(svc.to_string(), ServiceConfig { name: svc.to_string(), port, database: db, read_database });
        }

        let amqp_url = get("FEIRA_AMQP_URL");
        if !(amqp_url.starts_with("amqp://") || amqp_url.starts_with("amqps://")) {
            return Err(invalid("FEIRA_AMQP_URL", &amqp_url, "must start with amqp:// or amqps://"));
        }
        let namespace = get("FEIRA_AMQP_NAMESPACE");
        if namespace.is_empty() || !namespace.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(invalid("FEIRA_AMQP_NAMESPACE", &namespace, "use letters, digits, '_' or '-'"));
        }
        let retry_raw = get("FEIRA_RETRY_DELAYS");
        let retry_delays = retry_raw
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| parse_duration(s.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| invalid("FEIRA_RETRY_DELAYS", &retry_raw, &reason))?;
        if retry_delays.iter().any(|d| d.is_zero()) {
            return Err(invalid("FEIRA_RETRY_DELAYS", &retry_raw, "delays must be positive"));
        }
        let log_format = match get("FEIRA_LOG_FORMAT").as_str() {
            "auto" => LogFormat::Auto,
            "json" => LogFormat::Json,
            "pretty" => LogFormat::Pretty,
            other => return Err(invalid("FEIRA_LOG_FORMAT", other, "use auto, json or pretty")),
        };
        let prefetch: u16 = parse("FEIRA_AMQP_PREFETCH", &get("FEIRA_AMQP_PREFETCH"))?;
        let batch: i64 = parse("FEIRA_OUTBOX_BATCH_SIZE", &get("FEIRA_OUTBOX_BATCH_SIZE"))?;
        let body_limit: usize = parse("FEIRA_HTTP_BODY_LIMIT", &get("FEIRA_HTTP_BODY_LIMIT"))?;
        let max_conn: u32 = parse("FEIRA_DATABASE_MAX_CONNECTIONS", &get("FEIRA_DATABASE_MAX_CONNECTIONS"))?;
        for (name, value) in [
            ("FEIRA_AMQP_PREFETCH", prefetch as i64),
            ("FEIRA_OUTBOX_BATCH_SIZE", batch),
            ("FEIRA_HTTP_BODY_LIMIT", body_limit as i64),
            ("FEIRA_DATABASE_MAX_CONNECTIONS", max_conn as i64),
        ] {
            if value <= 0 {
                return Err(invalid(name, &value.to_string(), "must be at least 1"));
            }
        }
        let duration = |name: &str| -> Result<Duration, ConfigError> {
            let raw = get(name);
            parse_duration(&raw).map_err(|reason| invalid(name, &raw, &reason))
        };

        let extra_values = env
            .iter()
            .filter(|(k, _)| extra.iter().any(|v| v.name == k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Config {
            bind_host: parse("FEIRA_BIND_HOST", &get("FEIRA_BIND_HOST"))?,
            redis_url,
            extra: extra_values,
            extra_vars: extra.to_vec(),
            database,
            database_max_connections: max_conn,
            amqp_url,
            messaging: MessagingConfig {
                namespace,
                prefetch,
                retry_delays,
                outbox_sweep_interval: duration("FEIRA_OUTBOX_SWEEP_INTERVAL")?,
                outbox_batch_size: batch,
                retention: duration("FEIRA_OUTBOX_RETENTION")?,
            },
            http: HttpConfig {
                body_limit,
                request_timeout: duration("FEIRA_HTTP_REQUEST_TIMEOUT")?,
                idempotency_ttl: duration("FEIRA_IDEMPOTENCY_TTL")?,
            },
            shutdown_grace: duration("FEIRA_SHUTDOWN_GRACE")?,
            log_format,
            services: service_map,
        })
    }

    /// The settings of one service; an unknown name (one not listed when the
    /// config was built) is an `Unknown` error.
    pub fn service(&self, name: &str) -> Result<&ServiceConfig, ConfigError> {
        self.services.get(name).ok_or_else(|| ConfigError::Unknown { name: name.to_string() })
    }

    /// A service-specific variable: its value, or its declared default.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.extra
            .get(name)
            .map(String::as_str)
            .or_else(|| self.extra_vars.iter().find(|v| v.name == name).map(|v| v.default))
    }

    /// A service-specific duration variable (`30s`, `15m`), parsed.
    pub fn duration(&self, name: &str) -> Result<Duration, ConfigError> {
        let raw = self.var(name).ok_or_else(|| ConfigError::Unknown { name: name.to_string() })?;
        parse_duration(raw).map_err(|reason| invalid(name, raw, &reason))
    }
}

fn invalid(name: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid { name: name.to_string(), value: redact(name, value), reason: reason.to_string() }
}

/// True for variables whose values are secrets (keys, passwords, tokens).
pub fn is_secret(name: &str) -> bool {
    ["SECRET", "PASSWORD", "TOKEN", "ACCESS_KEY"].iter().any(|w| name.contains(w))
}

/// A value as it may be printed: secrets hidden, URL passwords removed.
pub fn redact(name: &str, value: &str) -> String {
    if is_secret(name) {
        return "***".to_string();
    }
    if name.ends_with("_URL")
        && let (Some(scheme_end), Some(at)) = (value.find("://"), value.rfind('@'))
        && at > scheme_end
    {
        return format!("{}://***@{}", &value[..scheme_end], &value[at + 1..]);
    }
    value.to_string()
}

fn parse<T: FromStr>(name: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| invalid(name, value, &e.to_string()))
}

/// Parses `250ms`, `5s`, `10m`, `24h`, `7d`.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| "missing unit (ms, s, m, h or d)".to_string())?;
    let (num, unit) = raw.split_at(split);
    let n: u64 = num.parse().map_err(|_| "expected a whole number followed by ms, s, m, h or d".to_string())?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("unknown unit {unit:?}; use ms, s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_need_no_variables() {
        let c = Config::from_map(&env(&[]), &[("orders", 8106)], &[]).unwrap();
        assert_eq!(c.service("orders").unwrap().port, 8106);
        assert_eq!(c.service("orders").unwrap().database.get_database(), Some("feira_orders"));
        assert_eq!(c.messaging.retry_delays.len(), 3);
    }

    #[test]
    fn an_invalid_value_names_its_variable() {
        let err = Config::from_map(&env(&[("FEIRA_ORDERS_PORT", "eighty")]), &[("orders", 8106)], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("FEIRA_ORDERS_PORT"), "{err}");
        let err = Config::from_map(&env(&[("FEIRA_RETRY_DELAYS", "1s,soon")]), &[], &[]).unwrap_err().to_string();
        assert!(err.contains("FEIRA_RETRY_DELAYS"), "{err}");
    }

    #[test]
    fn an_unknown_feira_variable_is_rejected() {
        let err =
            Config::from_map(&env(&[("FEIRA_ORDRES_PORT", "1")]), &[("orders", 8106)], &[]).unwrap_err().to_string();
        assert!(err.contains("FEIRA_ORDRES_PORT"), "{err}");
    }

    #[test]
    fn passwords_in_urls_are_not_printed() {
        let err = Config::from_map(&env(&[("FEIRA_AMQP_URL", "http://u:secret@h")]), &[], &[]).unwrap_err().to_string();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn secret_values_are_not_printed() {
        assert_eq!(redact("FEIRA_X_SECRET_ACCESS_KEY", "abc"), "***");
        assert_eq!(redact("FEIRA_DATABASE_URL", "postgres://u:pw@h/db"), "postgres://***@h/db");
        assert_eq!(redact("FEIRA_BIND_HOST", "0.0.0.0"), "0.0.0.0");
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("1y").is_err());
    }
}
