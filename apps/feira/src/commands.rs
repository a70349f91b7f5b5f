//! What each subcommand does.

use std::sync::Arc;

use anyhow::Context as _;
use platform::config::{Config, GLOBAL_VARS, STANDARD_VARS, service_vars};
use platform::messaging::{Broker, Topology, dlq as ops};
use platform::service::{self, ServiceSpec};
use tokio_util::sync::CancellationToken;

use crate::cli::DlqCommand;
use crate::targets;

fn load_config() -> anyhow::Result<Config> {
    Config::from_env(&targets::ports(), &targets::vars()).context("invalid configuration")
}

fn select(names: Option<Vec<String>>) -> anyhow::Result<Vec<&'static ServiceSpec>> {
    match names {
        None => Ok(targets::TARGETS.iter().collect()),
        Some(names) if names.is_empty() => Ok(targets::TARGETS.iter().collect()),
        Some(names) => names
            .iter()
            .map(|n| {
                targets::find(n).with_context(|| {
                    let known: Vec<_> = targets::TARGETS.iter().map(|t| t.name).collect();
                    format!("unknown target {n:?}; targets are: {}", known.join(", "))
                })
            })
            .collect(),
    }
}

/// `feira up` (all targets) and `feira run <targets>`.
pub async fn run(names: Option<Vec<String>>) -> anyhow::Result<()> {
    let specs = select(names)?;
    let config = Arc::new(load_config()?);
    let service_name = match specs.as_slice() {
        [one] => one.name,
        _ => "feira",
    };
    let _telemetry = platform::telemetry::init(service_name, config.log_format)?;
    let shutdown = CancellationToken::new();
    service::cancel_on_signal(shutdown.clone());

    let mut started = Vec::new();
    for spec in &specs {
        let svc = service::start(spec, config.clone(), shutdown.clone())
            .await
            .with_context(|| format!("start {}", spec.name))?;
        started.push((spec, svc));
    }
    let mut tasks = tokio::task::JoinSet::new();
    println!("feira is up ({} services). Ctrl-C stops it.", started.len());
    for (spec, svc) in started {
        let url = format!("http://{}", svc.local_addr());
        println!("  {:<10} {url:<24} docs {url}/docs  ready {url}/health/ready", spec.name);
        let name = spec.name;
        let token = shutdown.clone();
        let fut = (spec.run)(svc);
        tasks.spawn(async move {
            let result = fut.await;
            if result.is_err() {
                // One service failing takes the process down, so an
                // orchestrator restarts it whole.
                token.cancel();
            }
            (name, result)
        });
    }
    let mut failed = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(e))) => {
                tracing::error!(service = name, error = format!("{e:#}"), "service failed");
                failed.get_or_insert_with(|| format!("{name}: {e:#}"));
            }
            Err(e) => {
                failed.get_or_insert_with(|| format!("a service panicked: {e}"));
                shutdown.cancel();
            }
        }
    }
    match failed {
        Some(reason) => anyhow::bail!(reason),
        None => {
            tracing::info!("feira stopped");
            Ok(())
        }
    }
}

pub fn targets() -> anyhow::Result<()> {
    for t in targets::TARGETS {
        let consumers: Vec<_> = t.consumers.iter().map(|c| c.name).collect();
        println!(
            "{:<10} port {:<5} consumes: {}",
            t.name,
            t.default_port,
            if consumers.is_empty() { "-".to_string() } else { consumers.join(", ") }
        );
    }
    Ok(())
}

pub async fn migrate(names: Vec<String>) -> anyhow::Result<()> {
    let specs = select(Some(names))?;
    let config = load_config()?;
    for spec in specs {
        let sc = config.service(spec.name)?;
        let Some(migrator) = spec.migrator else {
            println!("{:<10} has no database", spec.name);
            continue;
        };
        let pool =
            platform::db::connect(&sc.database, 2, migrator).await.with_context(|| format!("migrate {}", spec.name))?;
        pool.close().await;
        println!("{:<10} migrated ({})", spec.name, sc.database.get_database().unwrap_or("?"));
    }
    Ok(())
}

fn actor() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    let host =
        std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host}")
}

pub async fn dlq(cmd: DlqCommand) -> anyhow::Result<()> {
    let config = load_config()?;
    let _telemetry = platform::telemetry::init("feira-dlq", config.log_format)?;
    let broker = Broker::new(config.amqp_url.clone(), "feira-dlq", Topology::new(config.messaging.namespace.clone()));
    let consumers = targets::consumers();
    let result = async {
        match cmd {
            DlqCommand::List { json, limit } => {
                let items = ops::list(&broker, &consumers, limit).await?;
                if json {
                    for i in &items {
                        println!("{}", serde_json::to_string(i)?);
                    }
                } else {
                    print_table(&items);
                }
            }
            DlqCommand::Show { message_id } => {
                let items = ops::list(&broker, &consumers, usize::MAX).await?;
                let item = items
                    .iter()
                    .find(|i| i.message_id == message_id)
                    .with_context(|| format!("no dead-lettered message with id {message_id}"))?;
                println!("{}", serde_json::to_string_pretty(item)?);
            }
            DlqCommand::Replay { message_id, all } => {
                if message_id.is_none() && !all {
                    anyhow::bail!("name a message id, or pass --all");
                }
                let done = ops::replay(&broker, &consumers, message_id.as_deref(), &actor()).await?;
                if done.is_empty() {
                    anyhow::bail!("nothing to replay");
                }
                for d in &done {
                    println!("replayed {} ({}) into {}", d.message_id, d.message_type, d.queue);
                }
            }
            DlqCommand::Purge { yes } => {
                if !yes {
                    anyhow::bail!("purging deletes every dead-lettered message; pass --yes to confirm");
                }
                let n = ops::purge(&broker, &consumers, &actor()).await?;
                println!("purged {n} messages");
            }
        }
        anyhow::Ok(())
    }
    .await;
    broker.close().await;
    result
}

fn print_table(items: &[ops::DeadLetter]) {
    if items.is_empty() {
        println!("no dead-lettered messages");
        return;
    }
    println!("{:<36}  {:<26}  {:<30}  {:>8}  {:<20}  ERROR", "MESSAGE ID", "TYPE", "QUEUE", "ATTEMPTS", "FAILED AT");
    for i in items {
        let error: String = i.error.chars().take(80).collect();
        let failed: String = i.failed_at.chars().take(20).collect();
        println!(
            "{:<36}  {:<26}  {:<30}  {:>8}  {:<20}  {}",
            i.message_id, i.message_type, i.queue, i.attempts, failed, error
        );
    }
    println!("{} message(s)", items.len());
}

pub fn config() -> anyhow::Result<()> {
    let effective = |name: &str, default: &str| -> String {
        match std::env::var(name) {
            Ok(v) => platform::config::redact(name, &v),
            Err(_) => format!("{default} (default)"),
        }
    };
    println!("{:<34} {:<46} DESCRIPTION", "VARIABLE", "VALUE");
    for v in GLOBAL_VARS.iter().chain(STANDARD_VARS) {
        println!("{:<34} {:<46} {}", v.name, effective(v.name, v.default), v.help);
    }
    for t in targets::TARGETS {
        for (name, default, help) in service_vars(t.name, t.default_port) {
            println!("{:<34} {:<46} {}", name, effective(&name, &default), help);
        }
        for v in t.vars {
            println!("{:<34} {:<46} {}", v.name, effective(v.name, v.default), v.help);
        }
    }
    load_config().map(|_| ())
}

pub fn events(asyncapi: bool) -> anyhow::Result<()> {
    if asyncapi {
        let namespace = load_config()?.messaging.namespace;
        let subscribers: Vec<contracts::Subscriber<'_>> = targets::TARGETS
            .iter()
            .flat_map(|t| {
                t.consumers.iter().map(|c| contracts::Subscriber {
                    service: t.name,
                    queue: c.name,
                    bindings: c.bindings,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&contracts::asyncapi(&namespace, &subscribers))?);
        return Ok(());
    }
    println!("{:<28} {:>3}  {:<32} PUBLISHER", "TYPE", "V", "ROUTING KEY");
    for e in contracts::catalog() {
        println!("{:<28} {:>3}  {:<32} {}", e.message_type, e.version, e.routing_key, e.publisher);
    }
    Ok(())
}

pub fn openapi(target: &str) -> anyhow::Result<()> {
    let spec = select(Some(vec![target.to_string()]))?[0];
    println!("{}", serde_json::to_string_pretty(&(spec.openapi)())?);
    Ok(())
}

pub async fn admin(command: crate::cli::AdminCommand) -> anyhow::Result<()> {
    match command {
        crate::cli::AdminCommand::Create { email, password } => {
            let password = match password {
                Some(p) => p,
                None => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line).context("read the password from standard input")?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let config = load_config()?;
            let id = identity::create_admin(&config, &email, &password).await?;
            println!("admin {email} created ({id})");
            Ok(())
        }
    }
}
