//! Switchyard's engine: everything with state — configuration, storage, the HTTP API and the
//! processes the `switchyard` binary runs. See ARCHITECTURE.md for the map.

pub mod api;
pub mod cli;
pub mod config;
pub mod domain;
pub mod executor;
pub mod integrations;
pub mod queue;
pub mod scheduler;
pub mod secrets;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod workflow_spec;

pub use config::{Cli, Command, Settings};
pub use server::{App, Roles};
