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

/// CPU time used so far (user + system), in milliseconds, by the processes named here: the
/// given pids, every process whose command is `postgres` or `redis-server`, and this one. Two
/// samples around a phase tell what each part of the system spent on it (`/proc`, Linux only;
/// a PostgreSQL backend that exits inside the phase takes its time with it).
#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    pub servers: Vec<f64>,
    pub postgres: f64,
    pub redis: f64,
    pub bench: f64,
    /// The whole machine (every core), from `/proc/stat`.
    pub machine: f64,
}

impl CpuSample {
    pub fn take(server_pids: &[Option<u32>]) -> Self {
        let ms_per_tick = 1000.0 / USER_HZ;
        let of = |pid: u32| {
            proc_ticks(pid)
                .map(|t| t as f64 * ms_per_tick)
                .unwrap_or(0.0)
        };
        let mut sample = CpuSample {
            servers: server_pids
                .iter()
                .map(|p| p.map(of).unwrap_or(0.0))
                .collect(),
            bench: of(std::process::id()),
            machine: machine_ticks() as f64 * ms_per_tick,
            ..Default::default()
        };
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|s| s.parse::<u32>().ok())
                else {
                    continue;
                };
                match std::fs::read_to_string(format!("/proc/{pid}/comm")).as_deref() {
                    Ok("postgres\n") => sample.postgres += of(pid),
                    Ok("redis-server\n") => sample.redis += of(pid),
                    _ => {}
                }
            }
        }
        sample
    }

    /// CPU milliseconds per event spent between `self` (earlier) and `later`, as one line:
    /// each server, PostgreSQL, Redis, the bench (client and receiver) and the machine.
    pub fn per_event(&self, later: &CpuSample, events: usize, server_names: &[&str]) -> String {
        let per = |a: f64, b: f64| (b - a) / events.max(1) as f64;
        let mut parts: Vec<String> = self
            .servers
            .iter()
            .zip(&later.servers)
            .zip(server_names)
            .map(|((a, b), name)| format!("{name} {:.3}", per(*a, *b)))
            .collect();
        parts.push(format!(
            "postgres {:.3}",
            per(self.postgres, later.postgres)
        ));
        parts.push(format!("redis {:.3}", per(self.redis, later.redis)));
        parts.push(format!("bench {:.3}", per(self.bench, later.bench)));
        parts.push(format!("machine {:.3}", per(self.machine, later.machine)));
        parts.join(" · ")
    }
}

/// utime + stime of a process (all its threads), in clock ticks.
fn proc_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3 of stat(5), utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Busy ticks of every core (everything but idle and iowait), from `/proc/stat`.
fn machine_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = stat.lines().next() else {
        return 0;
    };
    line.split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse::<u64>().ok())
        .enumerate()
        // user nice system idle iowait irq softirq steal guest guest_nice: idle and iowait are
        // not busy, and guest time is already counted in user time.
        .filter(|(i, _)| !matches!(i, 3 | 4 | 8 | 9))
        .map(|(_, v)| v)
        .sum()
}

/// The kernel's clock ticks per second in `/proc` (`USER_HZ`): 100 on every Linux ABI we run on.
const USER_HZ: f64 = 100.0;
