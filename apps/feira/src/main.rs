//! `feira`: one binary, many targets. See `feira --help`.

mod cli;
mod commands;
mod targets;

fn main() -> std::process::ExitCode {
    cli::main()
}
