//! The `switchyard` binary's operator interface (CONTRACT §2): subcommands print one JSON object,
//! flags are accepted after the subcommand and as environment variables, bad setups are refused
//! with a clear message, the master key file is private, SIGTERM exits 0.

use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use serde_json::Value;
use switchyard_tests::process::Process;
use switchyard_tests::{Db, TestDb, binary, postgres_admin_url};

async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(binary());
    command.args(args).env("SWITCHYARD_LOG", "error");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().await.expect("run switchyard")
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(text.lines().count(), 1, "one JSON object on stdout: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn tenant_and_keys_from_the_command_line() {
    let db = TestDb::new(Db::Sqlite).await.expect("db");
    let url = db.url.as_str();
    let migrated = json(&run(&["migrate", "--database-url", url], &[]).await);
    assert_eq!(migrated["migrated"], true);

    // Flags after the subcommand; a value may begin with `-`.
    let tenant = json(
        &run(
            &[
                "tenant",
                "create",
                "--database-url",
                url,
                "--name",
                "-dash shop",
            ],
            &[],
        )
        .await,
    );
    let tenant_id = tenant["tenantId"].as_str().expect("tenantId");
    assert!(
        tenant["apiKey"]
            .as_str()
            .expect("apiKey")
            .starts_with("sk_")
    );

    // The same setting through the environment.
    let key = json(
        &run(
            &["key", "create", "--tenant", tenant_id],
            &[("DATABASE_URL", url)],
        )
        .await,
    );
    assert_eq!(key["tenantId"], tenant_id);
    assert_ne!(key["apiKey"], tenant["apiKey"]);
    let revoked = json(
        &run(
            &[
                "key",
                "revoke",
                "--key-id",
                key["keyId"].as_str().expect("keyId"),
                "--database-url",
                url,
            ],
            &[],
        )
        .await,
    );
    assert_eq!(revoked["revoked"], true);

    // The plain key is nowhere in the database file.
    let dir = db.sqlite_dir().expect("dir");
    let mut bytes = std::fs::read(dir.join("switchyard.db")).expect("db file");
    bytes.extend(std::fs::read(dir.join("switchyard.db-wal")).unwrap_or_default());
    let plain = tenant["apiKey"].as_str().expect("key").as_bytes();
    assert!(
        !bytes.windows(plain.len()).any(|w| w == plain),
        "an API key is stored in plain"
    );

    // Bad input is refused with a message and a failure status.
    let unknown = run(
        &[
            "key",
            "create",
            "--tenant",
            &uuid::Uuid::now_v7().to_string(),
            "--database-url",
            url,
        ],
        &[],
    )
    .await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no tenant"));
    let bad = run(
        &["key", "revoke", "--key-id", "nope", "--database-url", url],
        &[],
    )
    .await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("UUID"));
}

#[tokio::test]
async fn vapid_keys_are_generated() {
    let keys = json(&run(&["vapid", "generate"], &[]).await);
    let private = keys["privateKey"].as_str().expect("privateKey");
    let public = keys["publicKey"].as_str().expect("publicKey");
    assert_eq!(private.len(), 43, "32 bytes base64url");
    assert_eq!(public.len(), 87, "65 bytes base64url");
    assert_eq!(
        switchyard_actions::vapid::public_key_for(private).expect("valid"),
        public
    );
}

#[tokio::test]
async fn master_key_is_generated_private_and_checked() {
    let db = TestDb::new(Db::Sqlite).await.expect("db");
    let url = db.url.as_str();
    json(
        &run(
            &["tenant", "create", "--name", "a", "--database-url", url],
            &[],
        )
        .await,
    );
    let key_file = db.sqlite_dir().expect("dir").join("master.key");
    let mode = std::fs::metadata(&key_file)
        .expect("master.key created")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Another key cannot decrypt what the first wrote: refused at start, clearly.
    let other = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let refused = run(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            url,
            "--master-key",
            other,
        ],
        &[],
    )
    .await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("master key"), "{stderr}");
    let malformed = run(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            url,
            "--master-key",
            "short",
        ],
        &[],
    )
    .await;
    assert!(!malformed.status.success());
}

#[tokio::test]
async fn a_master_key_file_readable_by_others_is_refused_at_start() {
    let db = TestDb::new(Db::Sqlite).await.expect("db");
    let url = db.url.as_str();
    json(
        &run(
            &["tenant", "create", "--name", "a", "--database-url", url],
            &[],
        )
        .await,
    );
    let key_file = db.sqlite_dir().expect("dir").join("master.key");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let serve = ["serve", "--listen", "127.0.0.1:0", "--database-url", url];
    let refused = run(&serve, &[]).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let fix = format!("chmod 600 {}", key_file.display());
    assert!(stderr.contains(&fix), "says how to fix it: {stderr}");
    assert!(stderr.contains("0644"), "{stderr}");
    // Other subcommands read the key the same way.
    let tenant = run(
        &["tenant", "create", "--name", "b", "--database-url", url],
        &[],
    )
    .await;
    assert!(!tenant.status.success());

    // Fixed as told, it starts.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    json(
        &run(
            &["tenant", "create", "--name", "c", "--database-url", url],
            &[],
        )
        .await,
    );
}

#[tokio::test]
async fn postgres_needs_redis_and_a_master_key() {
    let db = TestDb::new(Db::Postgres).await.expect("db");
    let no_redis = run(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &db.url,
            "--master-key",
            switchyard_tests::TEST_MASTER_KEY,
        ],
        &[],
    )
    .await;
    assert!(!no_redis.status.success());
    assert!(
        String::from_utf8_lossy(&no_redis.stderr).contains("Redis"),
        "{}",
        String::from_utf8_lossy(&no_redis.stderr)
    );
    let no_key = run(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &db.url,
            "--redis-url",
            &switchyard_tests::redis_url(),
        ],
        &[],
    )
    .await;
    assert!(!no_key.status.success());
    assert!(String::from_utf8_lossy(&no_key.stderr).contains("master key"));
    let _ = postgres_admin_url();
    db.cleanup().await;
}

#[tokio::test]
async fn serve_prints_its_address_and_stops_on_sigterm() {
    let db = TestDb::new(Db::Sqlite).await.expect("db");
    let server = Process::start(&["serve"], &db, &[]).await;
    let base = server.base().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    assert!(!base.ends_with(":0"), "the real bound port: {base}");
    let health = reqwest::get(format!("{base}/healthz"))
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let status = server.terminate().await;
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn bad_flags_are_refused() {
    for args in [
        vec!["serve", "--retry-schedule", "soon"],
        vec!["serve", "--listen", "not-an-address"],
        vec!["serve", "--log-format", "xml"],
        vec!["frobnicate"],
    ] {
        let output = run(&args, &[]).await;
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(!output.stderr.is_empty());
    }
    let output = run(&["serve", "--database-url", "mysql://x"], &[]).await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("sqlite://"));
}
