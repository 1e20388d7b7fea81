//! The local webhook receiver: answers 200 at once and records every delivery.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

/// Deliveries seen by the receiver.
#[derive(Default)]
pub struct Seen {
    /// Event id (the body's `data.event.id`: the key of the event that started the delivery)
    /// → first arrival.
    pub arrivals: HashMap<String, Instant>,
    /// Every delivery, duplicates included.
    pub total: usize,
    /// `webhook-id` (the step's idempotency key) → deliveries carrying it.
    pub webhook_ids: HashMap<String, u32>,
    /// When the last delivery, duplicate or not, arrived.
    pub last: Option<Instant>,
}

pub type SharedSeen = Arc<Mutex<Seen>>;

async fn receive(State(seen): State<SharedSeen>, headers: HeaderMap, body: Bytes) -> StatusCode {
    // `X-Switchyard-Event-Id` is per delivered step; the event's own key is in the body.
    let id = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|delivery| delivery["data"]["event"]["id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let webhook_id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if let Ok(mut seen) = seen.lock() {
        let now = Instant::now();
        seen.total += 1;
        seen.last = Some(now);
        seen.arrivals.entry(id).or_insert(now);
        *seen.webhook_ids.entry(webhook_id).or_default() += 1;
    }
    StatusCode::OK
}

/// Starts the receiver on a free loopback port; its URL and what it records.
pub async fn start_receiver() -> anyhow::Result<(String, SharedSeen)> {
    let seen = SharedSeen::default();
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}/hook"), seen))
}

/// Distinct events delivered so far.
pub fn delivered(seen: &SharedSeen) -> usize {
    seen.lock().map(|s| s.arrivals.len()).unwrap_or(0)
}

/// Forgets everything recorded so far.
pub fn reset(seen: &SharedSeen) {
    if let Ok(mut s) = seen.lock() {
        *s = Seen::default();
    }
}
