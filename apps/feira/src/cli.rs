//! Command-line parsing and dispatch.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands;

#[derive(Parser)]
#[command(name = "feira", version, about = "feira: an e-commerce platform as microservices, in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every service in this process, each on its own port, database and queues.
    Up,
    /// Run the named targets only (as one Kubernetes Deployment does).
    Run {
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// List the targets with their default ports.
    Targets,
    /// Create and migrate the databases of the named targets (all by default), then exit.
    Migrate { targets: Vec<String> },
    /// Inspect and replay dead-lettered messages.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Manage accounts in identity.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Drive load against running services and measure it.
    Load {
        #[command(subcommand)]
        command: crate::load::LoadCommand,
    },
    /// Print every configuration variable with its default and effective value.
    Config,
    /// Print a target's OpenAPI document (JSON) without starting it.
    Openapi { target: String },
    /// Print the message catalog: every event with its routing key and publisher.
    Events {
        /// Print it as an AsyncAPI 3.0 document (JSON), payload schemas included.
        #[arg(long)]
        asyncapi: bool,
    },
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create an administrator account (the first one, typically).
    Create {
        #[arg(long)]
        email: String,
        /// The password; read from standard input when absent (so it stays
        /// out of the shell history and the process list).
        #[arg(long)]
        password: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum DlqCommand {
    /// A table of every parked message of every dead-letter queue.
    List {
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        /// At most this many messages per queue.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Everything about one parked message, its body included.
    Show { message_id: String },
    /// Send a parked message (or all) back to its original queue.
    Replay {
        message_id: Option<String>,
        #[arg(long, conflicts_with = "message_id")]
        all: bool,
    },
    /// Delete every parked message.
    Purge {
        /// Required: purging cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Up => commands::run(None).await,
            Command::Run { targets } => commands::run(Some(targets)).await,
            Command::Targets => commands::targets(),
            Command::Migrate { targets } => commands::migrate(targets).await,
            Command::Dlq { command } => commands::dlq(command).await,
            Command::Admin { command } => commands::admin(command).await,
            Command::Load { command } => crate::load::run(command).await,
            Command::Config => commands::config(),
            Command::Events { asyncapi } => commands::events(asyncapi),
            Command::Openapi { target } => commands::openapi(&target),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
