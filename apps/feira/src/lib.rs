//! The `feira` binary's library: the target list and the commands, so tests
//! can start exactly what `feira up` starts.
//!
//! # Layout
//! - [`targets`]: every deployable target (adding a service is one line).
//! - [`cli`]: argument parsing and dispatch.
//! - `commands`: what each subcommand does.
//! - `load`: `feira load checkout`, the checkout load driver.

pub mod cli;
mod commands;
mod load;
pub mod targets;
