//! Group commit of incoming events: concurrent `POST /api/events` requests are written in one
//! transaction instead of one each. The batcher takes whatever is already waiting (it never waits
//! for more), so an idle system pays no latency and a busy one pays one commit per batch.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::queue::{Dispatch, Job};
use crate::store::{Ingested, NewEvent, Store, StoreResult, now_ms};

/// Most events written in one transaction.
const MAX_BATCH: usize = 256;

type Request = (NewEvent, oneshot::Sender<StoreResult<Ingested>>);

#[derive(Clone)]
pub struct IngestBatcher {
    tx: mpsc::Sender<Request>,
}

impl IngestBatcher {
    /// Starts the batching task; it ends when every handle is dropped.
    pub fn start(store: Store, dispatch: Arc<dyn Dispatch>) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run(store, dispatch, rx));
        Self { tx }
    }

    /// Stores the event (durably, before answering) and dispatches its matching.
    pub async fn ingest(&self, event: NewEvent) -> StoreResult<Ingested> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((event, reply)).await.map_err(|_| {
            crate::store::StoreError::Unavailable("the ingest queue is closed".to_owned())
        })?;
        answer.await.map_err(|_| {
            crate::store::StoreError::Unavailable("the ingest task stopped".to_owned())
        })?
    }
}

async fn run(store: Store, dispatch: Arc<dyn Dispatch>, mut rx: mpsc::Receiver<Request>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let events: Vec<NewEvent> = batch.iter().map(|(e, _)| e.clone()).collect();
        let results: Vec<StoreResult<Ingested>> = match store.ingest_events(&events).await {
            Ok(done) => done.into_iter().map(Ok).collect(),
            // The database is down: every event of the batch gets the same answer (503) at once.
            // Only this batch: answering everything queued behind it at once too was tried (the
            // chaos run, docs/chaos.md) and made things worse — the pool times out under
            // congestion as well as when the database is down, and the fast 503s turned into a
            // retry storm that kept the API failing for two minutes after the database was back.
            Err(crate::store::StoreError::Unavailable(reason)) => events
                .iter()
                .map(|_| Err(crate::store::StoreError::Unavailable(reason.clone())))
                .collect(),
            // One bad event must not fail its neighbours: on error, each is tried on its own.
            Err(_) if events.len() > 1 => {
                let mut each = Vec::with_capacity(events.len());
                for event in &events {
                    each.push(store.ingest_event(event).await);
                }
                each
            }
            Err(e) => vec![Err(e)],
        };
        let now = now_ms();
        let jobs: Vec<(Job, i64)> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .filter(|i| !i.duplicate)
            .map(|i| (Job::ProcessEvent { event_id: i.id }, now))
            .collect();
        if !jobs.is_empty()
            && let Err(e) = dispatch.dispatch(&jobs).await
        {
            tracing::warn!(error = %e, count = jobs.len(), "dispatch failed; the sweeper will retry");
        }
        for ((_, reply), result) in batch.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}
