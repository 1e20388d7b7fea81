//! A real HTTP receiver for webhook deliveries, on 127.0.0.1:0, whose answers a test can change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

/// One delivery as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Value,
    pub raw: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Ok,
    Status(u16),
    /// Wait this long, then answer 200.
    Slow(Duration),
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    answers: Vec<Answer>,
    default: Option<Answer>,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let answer = {
        let mut inner = inner.lock().expect("receiver lock");
        let received = Received {
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        v.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            raw: body.to_vec(),
            at: Instant::now(),
        };
        inner.received.push(received);
        if inner.answers.is_empty() {
            inner.default.unwrap_or(Answer::Ok)
        } else {
            inner.answers.remove(0)
        }
    };
    match answer {
        Answer::Ok => StatusCode::OK,
        Answer::Status(code) => {
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        }
        Answer::Slow(wait) => {
            tokio::time::sleep(wait).await;
            StatusCode::OK
        }
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            inner,
        }
    }

    /// Answers for the next deliveries, in order; after them, the default.
    pub fn script(&self, answers: &[Answer]) {
        self.inner.lock().expect("lock").answers = answers.to_vec();
    }

    /// How every delivery is answered once the script is used up.
    pub fn answer_always(&self, answer: Answer) {
        self.inner.lock().expect("lock").default = Some(answer);
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().expect("lock").received.clone()
    }

    pub fn count(&self) -> usize {
        self.inner.lock().expect("lock").received.len()
    }

    /// Waits until at least `n` deliveries arrived, or panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "receiver got {} of {n} deliveries in {timeout:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
