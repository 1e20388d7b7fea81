//! Group commit of incoming events: concurrent `POST /api/events` requests are matched and written
//! together ([`super::batch`]): a few multi-row statements store a batch of events, update their
//! entities and start their executions in one transaction, and the first steps go to the queue in
//! one call after the commit. Matching happens in per-tenant lanes before the shared write, so
//! a tenant's slow conditions hold up only that tenant's events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use uuid::Uuid;

use super::JobError;
use super::batch::Batcher;
use super::matching::Matcher;
use crate::queue::{Dispatch, Job};
use crate::store::{
    CancelCandidate, EventRecord, EventWrite, Ingested, NewEvent, Store, StoreError, StoreResult,
    now_ms,
};

/// Above this many tenants with a lane, the lanes are dropped and made again on demand (a lane
/// is a parked task and a channel; a batch in flight keeps its own lane alive until it ends).
const LANES_KEPT: usize = 10_000;

/// What one tenant's batch writes, and what the write answers for each of its events.
type Writes = Vec<EventWrite>;
type Written = StoreResult<Vec<(Ingested, Vec<(Uuid, i64)>)>>;

/// Group commit in two stages. Each tenant has its own lane (a batcher): its events are
/// deduplicated, read and matched there, so one tenant's slow conditions delay only its own
/// events. The matched batches of every lane then meet in one writer (a second batcher) that
/// writes whatever is waiting in one transaction, so many quiet tenants still share commits.
#[derive(Clone)]
pub struct IngestBatcher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    dispatch: Arc<dyn Dispatch>,
    matcher: Arc<Matcher>,
    writer: Batcher<Writes, Written>,
    lanes: Mutex<HashMap<Uuid, Batcher<NewEvent, StoreResult<Ingested>>>>,
}

impl IngestBatcher {
    /// Starts the writer; lanes start with their tenant's first event. Tasks end when every
    /// handle is dropped.
    pub fn start(store: Store, dispatch: Arc<dyn Dispatch>, matcher: Arc<Matcher>) -> Self {
        let writer = {
            let store = store.clone();
            Batcher::start(move |batches: Vec<Writes>| {
                let store = store.clone();
                async move { write_batches(&store, batches).await }
            })
        };
        Self {
            inner: Arc::new(Inner {
                store,
                dispatch,
                matcher,
                writer,
                lanes: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The tenant's lane, started if it has none.
    fn lane(&self, tenant_id: Uuid) -> Batcher<NewEvent, StoreResult<Ingested>> {
        let start = || {
            let (store, dispatch, matcher, writer) = (
                self.inner.store.clone(),
                self.inner.dispatch.clone(),
                self.inner.matcher.clone(),
                self.inner.writer.clone(),
            );
            Batcher::start(move |events: Vec<NewEvent>| {
                let (store, dispatch, matcher, writer) = (
                    store.clone(),
                    dispatch.clone(),
                    matcher.clone(),
                    writer.clone(),
                );
                async move { ingest_batch(&store, dispatch.as_ref(), &matcher, &writer, &events).await }
            })
        };
        let Ok(mut lanes) = self.inner.lanes.lock() else {
            return start();
        };
        if lanes.len() > LANES_KEPT && !lanes.contains_key(&tenant_id) {
            lanes.clear();
        }
        lanes.entry(tenant_id).or_insert_with(start).clone()
    }

    /// Stores the event (durably, before answering) with its matching and executions.
    pub async fn ingest(&self, event: NewEvent) -> StoreResult<Ingested> {
        self.lane(event.tenant_id)
            .call(event)
            .await
            .unwrap_or_else(|| {
                Err(StoreError::Unavailable(
                    "the ingest task stopped".to_owned(),
                ))
            })
    }
}

/// Writes the matched batches of several lanes in one transaction; a failed transaction is
/// retried one lane's batch at a time ([`super::batch::answer_each`]).
async fn write_batches(store: &Store, batches: Vec<Writes>) -> Vec<Written> {
    let joined;
    let all: &[EventWrite] = if batches.len() == 1 {
        &batches[0]
    } else {
        joined = batches.iter().flatten().cloned().collect::<Vec<_>>();
        &joined
    };
    match store.write_matched_events(all).await {
        Ok(written) => {
            let mut written = written.into_iter();
            batches
                .iter()
                .map(|batch| Ok(written.by_ref().take(batch.len()).collect()))
                .collect()
        }
        Err(error) => {
            super::batch::answer_each(&batches, error, |batch| {
                let (store, batch) = (store.clone(), batch.clone());
                async move { store.write_matched_events(&batch).await }
            })
            .await
        }
    }
}

async fn ingest_batch(
    store: &Store,
    dispatch: &dyn Dispatch,
    matcher: &Matcher,
    writer: &Batcher<Writes, Written>,
    events: &[NewEvent],
) -> Vec<StoreResult<Ingested>> {
    let started = std::time::Instant::now();
    let now = now_ms();
    let (results, jobs): (Vec<StoreResult<Ingested>>, Vec<(Job, i64)>) = match ingest_matched(
        store, matcher, writer, events,
    )
    .await
    {
        Ok(done) => {
            // Each event of the batch is recorded with its share of the batch's time.
            let share = started.elapsed().as_secs_f64() / events.len().max(1) as f64;
            let histogram = metrics::histogram!("switchyard_event_match_seconds");
            for _ in events {
                histogram.record(share);
            }
            let mut jobs = Vec::new();
            let results =
                done.into_iter()
                    .zip(events)
                    .map(|((ingested, steps), event)| {
                        let tenant_id = event.tenant_id;
                        jobs.extend(steps.into_iter().map(|(step_id, at)| {
                            (Job::RunStep { tenant_id, step_id }, at.max(now))
                        }));
                        Ok(ingested)
                    })
                    .collect();
            metrics::counter!("switchyard_matches_total").increment(jobs.len() as u64);
            (results, jobs)
        }
        // The database is down: every event of the batch gets the same answer (503) at once.
        // Only this batch: answering everything queued behind it at once too was tried (the
        // chaos run, docs/chaos.md) and made things worse — the pool times out under
        // congestion as well as when the database is down, and the fast 503s turned into a
        // retry storm that kept the API failing for two minutes after the database was back.
        Err(IngestError::Store(StoreError::Unavailable(reason))) => (
            events
                .iter()
                .map(|_| Err(StoreError::Unavailable(reason.clone())))
                .collect(),
            Vec::new(),
        ),
        // Matching could not be decided here (a stored workflow that no longer loads) or the
        // batch could not be written: the events are stored to be matched by a worker
        // instead, which records what went wrong on the event; one bad event must not fail
        // its neighbours.
        Err(e) => {
            tracing::warn!(error = %e, count = events.len(), "matching at ingest failed; events left to the workers");
            let mut results = Vec::with_capacity(events.len());
            for event in events {
                results.push(store.ingest_event(event).await);
            }
            let jobs = results
                .iter()
                .zip(events)
                .filter_map(|(r, event)| Some((r.as_ref().ok()?, event.tenant_id)))
                .filter(|(i, _)| !i.duplicate)
                .map(|(i, tenant_id)| {
                    let event_id = i.id;
                    (
                        Job::ProcessEvent {
                            tenant_id,
                            event_id,
                        },
                        now,
                    )
                })
                .collect();
            (results, jobs)
        }
    };
    super::dispatch_logged(dispatch, &jobs).await;
    results
}

#[derive(Debug, thiserror::Error)]
enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Match(#[from] JobError),
}

/// How each event of a batch is answered before anything is written.
enum Slot {
    /// Written: its answer is the next of the batch's writes.
    Write,
    /// The tenant already has this event id.
    Stored(Uuid, String),
    /// Same tenant and event id as an earlier event of this batch.
    SameAs(usize),
}

/// Matches a batch of API events and writes them, their entities and their executions in one
/// transaction. Returns, per event, what was stored and the first steps to dispatch.
async fn ingest_matched(
    store: &Store,
    matcher: &Matcher,
    writer: &Batcher<Writes, Written>,
    events: &[NewEvent],
) -> Result<Vec<(Ingested, Vec<(Uuid, i64)>)>, IngestError> {
    // Ids and keys; events the tenant already has (or that repeat an earlier one of this batch)
    // are duplicates and start nothing.
    let keyed: Vec<(Uuid, String)> = events
        .iter()
        .map(|event| {
            let id = Uuid::now_v7();
            let key = event
                .event_key
                .clone()
                .unwrap_or_else(|| format!("evt_{}", id.simple()));
            (id, key)
        })
        .collect();
    let mut by_tenant: HashMap<Uuid, Vec<String>> = HashMap::new();
    for (event, (_, key)) in events.iter().zip(&keyed) {
        if event.event_key.is_some() {
            by_tenant
                .entry(event.tenant_id)
                .or_default()
                .push(key.clone());
        }
    }

    // Each entity's data as stored, then as each event of the batch leaves it, in order.
    let mut wanted: HashMap<(Uuid, String), Vec<String>> = HashMap::new();
    let mut triggers: Vec<(Uuid, String, String)> = Vec::new();
    for event in events {
        wanted
            .entry((event.tenant_id, event.entity_type.as_str().to_owned()))
            .or_default()
            .push(event.entity_id.clone());
        triggers.push((
            event.tenant_id,
            event.entity_type.as_str().to_owned(),
            event.trigger.clone(),
        ));
    }
    triggers.sort();
    triggers.dedup();

    // The three reads are independent: they run at once, each on its own connection.
    let keys_read = async {
        let mut found = HashMap::new();
        for (tenant, keys) in by_tenant {
            found.insert(tenant, store.event_ids_by_key(tenant, &keys).await?);
        }
        Ok::<_, StoreError>(found)
    };
    let entities_read = async {
        let mut found: HashMap<(Uuid, String, String), Value> = HashMap::new();
        for ((tenant, entity_type), mut ids) in wanted {
            ids.sort();
            ids.dedup();
            for (id, data) in store.entities_data(tenant, &entity_type, &ids).await? {
                found.insert((tenant, entity_type.clone(), id), data);
            }
        }
        Ok::<_, StoreError>(found)
    };
    let workflows_read = async {
        type Found = (Vec<(Uuid, i64)>, Vec<CancelCandidate>);
        let mut found: HashMap<(Uuid, String, String), Found> = HashMap::new();
        for key in triggers {
            let both = store.match_candidates(key.0, &key.1, &key.2).await?;
            found.insert(key, both);
        }
        Ok::<_, StoreError>(found)
    };
    let (stored_keys, mut entities, candidates) =
        tokio::try_join!(keys_read, entities_read, workflows_read)?;

    let mut slots = Vec::with_capacity(events.len());
    let mut writes: Vec<EventWrite> = Vec::new();
    let mut first_of_key: HashMap<(Uuid, String), usize> = HashMap::new();
    for (index, (event, (id, key))) in events.iter().zip(keyed).enumerate() {
        if let Some(stored) = stored_keys
            .get(&event.tenant_id)
            .and_then(|keys| keys.get(&key))
        {
            slots.push(Slot::Stored(*stored, key));
            continue;
        }
        if let Some(&earlier) = first_of_key.get(&(event.tenant_id, key.clone())) {
            slots.push(Slot::SameAs(earlier));
            continue;
        }
        first_of_key.insert((event.tenant_id, key.clone()), index);

        let entity_key = (
            event.tenant_id,
            event.entity_type.as_str().to_owned(),
            event.entity_id.clone(),
        );
        let previous = match &event.previous {
            Some(p) => Some(Value::Object(p.clone())),
            None => entities.get(&entity_key).cloned(),
        };
        if event.update_entity {
            entities.insert(entity_key, Value::Object(event.data.clone()));
        }
        let mut record = EventRecord::from_new(event, id, key, previous);
        let trigger_key = (
            event.tenant_id,
            record.entity_type.clone(),
            record.trigger.clone(),
        );
        let (starts, cancel_candidates) = candidates.get(&trigger_key).cloned().unwrap_or_default();
        let cancels = if cancel_candidates.is_empty() {
            Vec::new()
        } else {
            super::cancel_on::hits(&record, &super::event_view(&record), &cancel_candidates)
        };
        // Executions that earlier events of this batch start are not stored yet: those this
        // event cancels are cancelled right after they are (same transaction, same SQL).
        let cancels_in_batch = if cancels.is_empty() {
            Vec::new()
        } else {
            super::cancel_on::in_batch(&cancels, writes.iter().flat_map(|w| &w.executions))
        };
        let mut decision = matcher.decide(&record, starts).await?;
        // An API event is the root of its causal chain: nothing has counted against it yet.
        let limit = matcher.limits.max_chain_executions;
        decision.limit_chain(usize::try_from(limit).unwrap_or(usize::MAX), limit);
        record.state = "processed".to_owned();
        record.outcome = Some(decision.outcome());
        slots.push(Slot::Write);
        writes.push(EventWrite {
            record,
            update_entity: event.update_entity,
            executions: decision.executions,
            source_modified_at: event.source_modified_at,
            stale: false,
            cancels,
            cancels_in_batch,
        });
    }

    let mut written = writer
        .call(writes)
        .await
        .unwrap_or_else(|| Err(StoreError::Unavailable("the write task stopped".to_owned())))?
        .into_iter();
    let mut out: Vec<(Ingested, Vec<(Uuid, i64)>)> = Vec::with_capacity(events.len());
    for slot in slots {
        let answer = match slot {
            Slot::Write => written
                .next()
                .ok_or_else(|| StoreError::Corrupt("a batch write came back short".to_owned()))?,
            Slot::Stored(id, key) => (
                Ingested {
                    id,
                    event_key: key,
                    duplicate: true,
                    stale: false,
                },
                Vec::new(),
            ),
            Slot::SameAs(earlier) => {
                let first = &out[earlier].0;
                (
                    Ingested {
                        id: first.id,
                        event_key: first.event_key.clone(),
                        duplicate: true,
                        stale: false,
                    },
                    Vec::new(),
                )
            }
        };
        out.push(answer);
    }
    Ok(out)
}
