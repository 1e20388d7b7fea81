//! The embedded dispatcher: the SQLite file is the queue. Pending events and due steps are read
//! from their indexed tables, tenants served in turn (CONTRACT §7 "Fair queuing", see
//! `Store::due_steps`); a process-local notification wakes idle fetchers at once when work is
//! added in-process, and a short poll catches delayed steps coming due and other processes' work.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use super::{Delivery, Dispatch, Job, QueueDepth, QueueError};
use crate::store::{Store, StoreError, now_ms};

/// How often an idle fetcher looks for work that no notification announced.
const POLL: Duration = Duration::from_millis(25);

pub struct SqliteDispatch {
    store: Store,
    notify: Notify,
    /// Jobs handed to this process's workers and not yet acknowledged: not handed out twice.
    in_flight: Mutex<HashSet<Job>>,
}

impl SqliteDispatch {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            notify: Notify::new(),
            in_flight: Mutex::new(HashSet::new()),
        }
    }

    fn unavailable(e: StoreError) -> QueueError {
        QueueError::Unavailable(e.to_string())
    }

    async fn candidates(&self, max: usize) -> Result<Vec<Delivery>, QueueError> {
        let now = now_ms();
        let held = self.in_flight.lock().map(|s| s.len()).unwrap_or(0);
        let limit = u32::try_from(max + held).unwrap_or(u32::MAX);
        let events = self
            .store
            .pending_events_in_turn(now, limit)
            .await
            .map_err(Self::unavailable)?;
        let steps = self
            .store
            .due_steps(now, limit)
            .await
            .map_err(Self::unavailable)?;
        let mut in_flight = self
            .in_flight
            .lock()
            .map_err(|_| QueueError::Unavailable("dispatcher state poisoned".to_owned()))?;
        let mut out = Vec::new();
        let jobs = events
            .into_iter()
            .map(|(tenant_id, event_id)| Job::ProcessEvent {
                tenant_id,
                event_id,
            })
            .chain(
                steps
                    .into_iter()
                    .map(|(tenant_id, step_id)| Job::RunStep { tenant_id, step_id }),
            );
        for job in jobs {
            if out.len() >= max {
                break;
            }
            if in_flight.insert(job) {
                out.push(Delivery {
                    job,
                    receipt: String::new(),
                });
            }
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Dispatch for SqliteDispatch {
    async fn dispatch(&self, _jobs: &[(Job, i64)]) -> Result<(), QueueError> {
        // The rows are the queue; waking the fetchers is all there is to do.
        self.notify.notify_waiters();
        Ok(())
    }

    async fn fetch(
        &self,
        _worker: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.notify.notified();
            let found = self.candidates(max).await?;
            if !found.is_empty() {
                return Ok(found);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let _ = tokio::time::timeout(POLL.min(deadline - now), notified).await;
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        if let Ok(mut in_flight) = self.in_flight.lock() {
            in_flight.remove(&delivery.job);
        }
        Ok(())
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let (ready, delayed) = self.store.queue_counts().await.map_err(Self::unavailable)?;
        let in_flight = self.in_flight.lock().map(|s| s.len() as u64).unwrap_or(0);
        Ok(QueueDepth {
            ready: u64::try_from(ready).unwrap_or(0).saturating_sub(in_flight),
            delayed: u64::try_from(delayed).unwrap_or(0),
            in_flight,
        })
    }

    async fn ping(&self) -> Result<(), QueueError> {
        self.store.ping().await.map_err(Self::unavailable)
    }

    fn can_lose_jobs(&self) -> bool {
        false
    }
}
