//! The real `switchyard` binary as a child process: started with flags, read until its ready
//! line, stopped with SIGTERM or killed with SIGKILL — what crash-safety tests need.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{Db, TEST_MASTER_KEY, TestDb, binary, redis_url};

pub struct Process {
    pub child: Child,
    /// `http://ADDR` from the ready line, for `serve`.
    pub base: Option<String>,
}

/// The flags a test process needs for `db`, plus short timings.
pub fn flags(db: &TestDb) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--database-url".into(),
        db.url.clone(),
        "--allow-private-targets".into(),
        "--retry-schedule".into(),
        "200ms,200ms,200ms".into(),
        "--sweep-interval".into(),
        "200ms".into(),
        "--redispatch-after".into(),
        "2s".into(),
        "--lease".into(),
        "2s".into(),
        "--log-format".into(),
        "json".into(),
    ];
    if db.kind == Db::Postgres {
        args.extend(["--master-key".into(), TEST_MASTER_KEY.into()]);
        args.extend(["--redis-url".into(), redis_url()]);
        args.extend(["--redis-prefix".into(), db.redis_prefix.clone()]);
    }
    args
}

impl Process {
    /// Starts `switchyard <subcommand> <flags…>`; for `serve`, waits for the ready line.
    pub async fn start(subcommand: &[&str], db: &TestDb, extra: &[&str]) -> Process {
        let mut command = Command::new(binary());
        // A flag given in `extra` replaces the default of the same name.
        let defaults = flags(db);
        let mut args: Vec<String> = Vec::new();
        let mut i = 0;
        while i < defaults.len() {
            let flag = &defaults[i];
            let takes_value = defaults.get(i + 1).is_some_and(|v| !v.starts_with("--"));
            if !extra.contains(&flag.as_str()) {
                args.push(flag.clone());
                if takes_value {
                    args.push(defaults[i + 1].clone());
                }
            }
            i += if takes_value { 2 } else { 1 };
        }
        command
            .args(subcommand)
            .args(args)
            .args(extra)
            .env("SWITCHYARD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if subcommand.first() == Some(&"serve") && !extra.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = command.spawn().expect("spawn switchyard");
        let mut base = None;
        if subcommand.first() == Some(&"serve") {
            let stdout = child.stdout.take().expect("stdout");
            let mut lines = BufReader::new(stdout).lines();
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .expect("ready line in time")
                .expect("read stdout")
                .expect("a ready line");
            let addr = line
                .strip_prefix("switchyard listening on ")
                .unwrap_or_else(|| panic!("unexpected first line: {line}"));
            base = Some(addr.to_owned());
            // Keep draining stdout so the child never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        }
        Process { child, base }
    }

    pub fn base(&self) -> &str {
        self.base.as_deref().expect("a serve process")
    }

    /// SIGKILL: no chance to clean up, like a crashed machine.
    pub async fn kill9(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// SIGTERM, then the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("exit within 30s after SIGTERM")
            .expect("exit status")
    }
}
