//! Shared pieces of the `bench` and `chaos` binaries: a webhook receiver that records what it is
//! sent, the real `switchyard` binary as a child process, and the setup both runs need (a fresh
//! database, a tenant, the webhook workflow, the event body).

pub mod receiver;
pub mod server;
pub mod setup;

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

/// What every benchmark binary runs against: the `switchyard` binary and the local services.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The binary to run (build it with `cargo build --release -p switchyard`).
    #[arg(long, default_value = "target/release/switchyard")]
    pub binary: PathBuf,
    #[arg(
        long,
        env = "SWITCHYARD_TEST_POSTGRES",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pub postgres_url: String,
    #[arg(
        long,
        env = "SWITCHYARD_TEST_REDIS",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
}

impl Target {
    /// Fails with a hint when the binary has not been built.
    pub fn check_binary(&self) -> anyhow::Result<()> {
        if !self.binary.exists() {
            anyhow::bail!(
                "{} not found: run `cargo build --release -p switchyard` first",
                self.binary.display()
            );
        }
        Ok(())
    }
}

/// A progress bar with a label.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>24} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}
