//! The real `switchyard` binary as a child process.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running `switchyard serve` or `switchyard worker`; killed when dropped.
pub struct Server {
    pub child: Child,
    /// `http://ADDR` from the ready line, for `serve`.
    pub base: Option<String>,
}

impl Server {
    /// Starts `binary args…` with its log on this process's stderr; for `serve`, waits for the
    /// ready line.
    pub async fn start(binary: &Path, args: &[String]) -> anyhow::Result<Server> {
        Self::start_with_stderr(binary, args, Stdio::inherit()).await
    }

    /// Like [`Server::start`], with the child's log appended to `log`.
    pub async fn start_logged(
        binary: &Path,
        args: &[String],
        log: &Path,
    ) -> anyhow::Result<Server> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        Self::start_with_stderr(binary, args, Stdio::from(file)).await
    }

    async fn start_with_stderr(
        binary: &Path,
        args: &[String],
        stderr: Stdio,
    ) -> anyhow::Result<Server> {
        let mut child = Command::new(binary)
            .args(args)
            .env("SWITCHYARD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut base = None;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        if args.first().map(String::as_str) == Some("serve") {
            let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .context("no ready line in 60 s")??
                .context("the server exited")?;
            base = Some(
                line.strip_prefix("switchyard listening on ")
                    .with_context(|| format!("unexpected line: {line}"))?
                    .to_owned(),
            );
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server { child, base })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Peak resident set size (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }
}
