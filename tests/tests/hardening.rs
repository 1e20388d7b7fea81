//! The HTTP server's bounds against a hostile client (CONTRACT §7), through the real server: slow
//! headers are cut off at `--header-timeout`, a body that never completes is answered 408 at
//! `--request-timeout`, made-up methods and paths add no `/metrics` series, unknown keys and
//! integration ids are refused cheaply, and U+0000 in any string is a 400 on both databases.

use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_tests::{Db, TestServer, on_both_databases, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

on_both_databases! {
    nul_characters_are_refused_everywhere => nul_characters_are_refused_everywhere;
}

fn addr(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// Reads until the peer closes (or `limit` passes); returns what was read and whether it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_connections_are_closed_after_the_header_timeout() {
    let server = TestServer::start_with(Db::Sqlite, &["--header-timeout", "1s"]).await;

    // Ten connections sending their headers one byte every 300 ms (the request line alone would
    // take ~5 s): each is closed about 1 s in, while it is still sending.
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaa\r\n\r\n";
    let mut slow = Vec::new();
    for _ in 0..10 {
        let address = addr(&server);
        slow.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut stream = TcpStream::connect(address).await.expect("connect");
            for byte in request {
                if stream.write_all(&[*byte]).await.is_err() {
                    break;
                }
                // Closed by the server: a read returns at once.
                let mut probe = [0u8; 256];
                match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut probe))
                    .await
                {
                    Ok(Ok(0)) | Ok(Err(_)) => return (started.elapsed(), true),
                    Ok(Ok(_)) => return (started.elapsed(), true),
                    Err(_) => {}
                }
            }
            (started.elapsed(), false)
        }));
    }
    for task in slow {
        let (elapsed, closed) = task.await.expect("task");
        assert!(
            closed,
            "a slow-header connection was still open after {elapsed:?}"
        );
        assert!(
            elapsed < Duration::from_secs(4),
            "closed only after {elapsed:?}"
        );
    }

    // A connection that sends nothing at all is closed too.
    let mut quiet = TcpStream::connect(addr(&server)).await.expect("connect");
    let (_, closed) = read_until_closed(&mut quiet, Duration::from_secs(5)).await;
    assert!(closed, "a silent connection stayed open");

    // A normal client is unaffected.
    let reply = send(server.http.get(server.url("/healthz"))).await;
    assert_eq!(reply.status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_completes_is_answered_408() {
    let server = TestServer::start_with(Db::Sqlite, &["--request-timeout", "1s"]).await;
    let (_, key) = server.tenant("Acme").await;

    let mut stream = TcpStream::connect(addr(&server)).await.expect("connect");
    let head = format!(
        "POST /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"entityType\":"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let started = Instant::now();
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let elapsed = started.elapsed();
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "expected 408, got {answer:?}"
    );
    assert!(answer.contains("REQUEST_TIMEOUT"), "{answer}");
    assert!(
        elapsed < Duration::from_secs(5),
        "answered after {elapsed:?}"
    );

    // Requests within the limit are served as usual.
    let reply = server
        .post(
            &key,
            "/api/events",
            &json!({"entityType": "Order", "trigger": "order_created", "entityId": "o1", "data": {}}),
        )
        .await;
    reply.assert_ok(202);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_and_paths_add_no_metrics_series() {
    let server = TestServer::start(Db::Sqlite).await;
    for i in 0..20 {
        let method = reqwest::Method::from_bytes(format!("BREW{i}").as_bytes()).expect("method");
        let reply = send(server.http.request(method.clone(), server.url("/healthz"))).await;
        assert_eq!(reply.status, 405);
        let reply = send(
            server
                .http
                .request(method, server.url(&format!("/made-up-{i}"))),
        )
        .await;
        assert_eq!(reply.status, 404);
        let reply = send(server.http.get(server.url(&format!("/made-up-{i}/x")))).await;
        assert_eq!(reply.status, 404);
    }
    let metrics = send(server.http.get(server.url("/metrics"))).await;
    assert_eq!(metrics.status, 200);
    let text = metrics.body.as_str().expect("text");
    assert!(!text.contains("BREW"), "a made-up method became a label");
    assert!(!text.contains("made-up"), "a made-up path became a label");
    assert!(
        text.contains(r#"method="OTHER""#) && text.contains(r#"route="unmatched""#),
        "{text}"
    );
    // The execution gauges are there without a query per scrape (refreshed in the background).
    assert!(text.contains("switchyard_executions{"), "{text}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_keys_and_integration_ids_are_refused() {
    let server = TestServer::start(Db::Sqlite).await;
    let unknown = format!("sk_{}", "A".repeat(43));
    for key in ["nope", unknown.as_str(), unknown.as_str()] {
        server
            .get(key, "/api/workflows/Order/configured")
            .await
            .assert_error(403, "FORBIDDEN");
    }
    let id = uuid::Uuid::now_v7();
    for path in [
        "/api/integrations/inbound/not-a-uuid".to_owned(),
        format!("/api/integrations/inbound/{id}"),
        format!("/api/integrations/inbound/{id}"),
    ] {
        let reply = send(
            server
                .http
                .post(server.url(&path))
                .header("content-type", "application/json")
                .body("{}"),
        )
        .await;
        reply.assert_error(404, "NOT_FOUND");
    }
    server.stop().await;
}

async fn nul_characters_are_refused_everywhere(db: Db) {
    let server = TestServer::start(db).await;
    let (_, key) = server.tenant("Acme").await;
    let event = |entity_id: &str, data: serde_json::Value| json!({"entityType": "Order", "trigger": "order_created", "entityId": entity_id, "data": data});
    for body in [
        event("ord\u{0000}", json!({})),
        event("o1", json!({"note\u{0000}": 1})),
        event("o1", json!({"nested": [{"x": "a\u{0000}b"}]})),
        json!({"entityType": "Order", "trigger": "order_created", "entityId": "o1", "eventId": "e\u{0000}", "data": {}}),
    ] {
        server
            .post(&key, "/api/events", &body)
            .await
            .assert_error(400, "VALIDATION_ERROR");
    }
    // An escaped backslash before `u0000` is not a NUL: accepted.
    let reply = server
        .post(
            &key,
            "/api/events",
            &event("o1", json!({"path": "C:\\u0000"})),
        )
        .await;
    reply.assert_ok(202);

    // Other write endpoints: a workflow's name, its conditions, its condition script.
    let workflow = |name: &str, condition: Option<&str>| {
        json!({"name": name, "entityType": "Order", "triggerId": "order_created",
               "condition": condition, "conditions": {"status": "paid"},
               "action": {"type": "update_status", "status": "processing"}})
    };
    for body in [
        workflow("a\u{0000}", None),
        workflow("ok", Some("entity.x == \"\u{0000}\"")),
    ] {
        server
            .post(&key, "/api/workflows/configure", &body)
            .await
            .assert_error(400, "VALIDATION_ERROR");
    }
    // Ids in paths and queries.
    server
        .get(&key, "/api/events/ord%00")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    server
        .get(&key, "/api/events?entityId=a%00")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    // Nothing was stored, and the server is fine.
    let events = server.get(&key, "/api/events").await;
    assert_eq!(events.assert_ok(200).as_array().map(Vec::len), Some(1));
    server.stop().await;
}
