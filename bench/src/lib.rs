//! Shared pieces of the `bench` and `chaos` binaries: a webhook receiver that records what it is
//! sent, the real `switchyard` binary as a child process, and the setup both runs need (a fresh
//! database, a tenant, the webhook workflow, the event body).

pub mod receiver;
pub mod server;
pub mod setup;

use indicatif::{ProgressBar, ProgressStyle};

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
