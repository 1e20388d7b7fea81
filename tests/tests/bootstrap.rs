//! First run, with the real binary: `serve` on a database without a tenant creates `default` and
//! prints its API key once, after the unchanged ready line; never again on that database, never
//! with `--no-bootstrap` / `SWITCHYARD_NO_BOOTSTRAP`, and only once when two servers start together.

use std::process::Stdio;
use std::time::Duration;

use switchyard_tests::process::flags;
use switchyard_tests::{Db, TestDb, binary, on_both_databases, send};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

on_both_databases! {
    first_start_prints_a_working_key_and_later_starts_none => first_start_prints_a_working_key_and_later_starts_none;
    two_servers_starting_at_once_create_one_tenant => two_servers_starting_at_once_create_one_tenant;
}

/// A `serve` process whose whole stdout the test reads.
struct Served {
    child: Child,
    base: String,
    lines: Lines<BufReader<ChildStdout>>,
    first: String,
}

async fn start(db: &TestDb, extra: &[&str], env: &[(&str, &str)]) -> Served {
    let mut command = Command::new(binary());
    command
        .arg("serve")
        .args(flags(db))
        .args(["--listen", "127.0.0.1:0", "--shutdown-grace", "2s"])
        .args(extra)
        .env("SWITCHYARD_LOG", "warn")
        .env_remove("SWITCHYARD_NO_BOOTSTRAP")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("spawn switchyard serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("ready line in time")
        .expect("read stdout")
        .expect("a ready line");
    let base = first
        .strip_prefix("switchyard listening on ")
        .unwrap_or_else(|| panic!("the first line must be the ready line, got: {first}"))
        .to_owned();
    Served {
        child,
        base,
        lines,
        first,
    }
}

impl Served {
    /// Waits until the API answers (the bootstrap is printed before it serves).
    async fn ready(&self) {
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = http.get(format!("{}/healthz", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{} never answered /healthz", self.base);
    }

    /// The bootstrap's lines, up to and including the one pointing at the dashboard.
    async fn bootstrap_lines(&mut self) -> Vec<String> {
        let mut seen = Vec::new();
        while !seen.iter().any(|l: &String| l.starts_with("dashboard: ")) {
            let line = tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
                .await
                .expect("bootstrap lines in time")
                .expect("read stdout")
                .unwrap_or_else(|| panic!("stdout ended after {seen:?}"));
            seen.push(line);
        }
        seen
    }

    /// SIGTERM, then every line printed after the ready line (read to the end of the pipe).
    async fn stop(mut self) -> Vec<String> {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        let mut rest = Vec::new();
        let read = async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                rest.push(line);
            }
        };
        tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .expect("stdout closed within 60s after SIGTERM");
        // Only the output matters here; a clean exit on SIGTERM is the recovery tests' concern
        // (and a SIGTERM in the instant between the ready line and the handler being installed
        // ends the process by the default action).
        let _ = tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await;
        rest
    }
}

/// The key from the bootstrap's `api key: sk_…` line, if it printed one.
fn printed_key(lines: &[String]) -> Option<String> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix("api key: "))
        .map(str::to_owned)
}

async fn key_works(base: &str, key: &str) -> bool {
    let http = reqwest::Client::new();
    let reply = send(
        http.get(format!("{base}/api/workflows/Order/configured"))
            .bearer_auth(key),
    )
    .await;
    reply.status == 200
}

async fn first_start_prints_a_working_key_and_later_starts_none(kind: Db) {
    let db = TestDb::new(kind).await.expect("test database");

    let mut first = start(&db, &[], &[]).await;
    first.ready().await;
    let base = first.base.clone();
    assert!(
        first
            .first
            .starts_with("switchyard listening on http://127.0.0.1:")
    );
    let seen = first.bootstrap_lines().await;
    let key = printed_key(&seen).expect("a key");
    assert!(key.starts_with("sk_"), "{key}");
    assert!(
        seen.iter()
            .any(|l| l == &format!("dashboard: {base}/ (sign in with that key)")),
        "{seen:?}"
    );
    assert!(seen[0].contains("`default`"), "{seen:?}");
    assert!(key_works(&base, &key).await, "the printed key is accepted");
    assert!(!key_works(&base, "sk_wrong").await);
    assert!(first.stop().await.is_empty(), "the key is printed once");

    // A second start on the same database: the ready line and nothing else; the first key
    // still works.
    let second = start(&db, &[], &[]).await;
    second.ready().await;
    let base = second.base.clone();
    assert!(key_works(&base, &key).await);
    let rest = second.stop().await;
    assert!(rest.is_empty(), "a second start printed {rest:?}");

    db.cleanup().await;

    // `--no-bootstrap` and its environment variable leave an empty database empty: the next
    // plain start still bootstraps.
    let empty = TestDb::new(kind).await.expect("test database");
    let off = start(&empty, &["--no-bootstrap"], &[]).await;
    off.ready().await;
    assert!(off.stop().await.is_empty());
    let off = start(&empty, &[], &[("SWITCHYARD_NO_BOOTSTRAP", "true")]).await;
    off.ready().await;
    assert!(off.stop().await.is_empty());
    let on = start(&empty, &[], &[]).await;
    on.ready().await;
    let rest = on.stop().await;
    assert!(printed_key(&rest).is_some(), "{rest:?}");
    empty.cleanup().await;
}

async fn two_servers_starting_at_once_create_one_tenant(kind: Db) {
    let db = TestDb::new(kind).await.expect("test database");
    // Migrated first, so the race is the bootstrap's alone.
    let migrated = Command::new(binary())
        .arg("migrate")
        .args(flags(&db))
        .env("SWITCHYARD_LOG", "warn")
        .stdout(Stdio::null())
        .status()
        .await
        .expect("run migrate");
    assert!(migrated.success());

    let (a, b) = tokio::join!(start(&db, &[], &[]), start(&db, &[], &[]));
    a.ready().await;
    b.ready().await;
    let (rest_a, rest_b) = tokio::join!(a.stop(), b.stop());
    let keys: Vec<String> = [&rest_a, &rest_b]
        .into_iter()
        .filter_map(|lines| printed_key(lines))
        .collect();
    assert_eq!(
        keys.len(),
        1,
        "exactly one server bootstraps: {rest_a:?} {rest_b:?}"
    );

    // The one key belongs to the one tenant the database now has.
    let server = start(&db, &[], &[]).await;
    server.ready().await;
    assert!(key_works(&server.base, &keys[0]).await);
    assert!(server.stop().await.is_empty());
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_on_a_database_that_has_a_tenant() {
    let db = TestDb::new(Db::Sqlite).await.expect("test database");
    let created = Command::new(binary())
        .args(["tenant", "create", "--name", "Larkspur Goods"])
        .args(flags(&db))
        .env("SWITCHYARD_LOG", "warn")
        .output()
        .await
        .expect("run tenant create");
    assert!(created.status.success());
    let server = start(&db, &[], &[]).await;
    server.ready().await;
    assert!(server.stop().await.is_empty());
}
