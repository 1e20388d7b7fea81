//! The scale-out dispatcher: Redis Streams with one consumer group for runnable jobs, plus a sorted
//! set for jobs that are due later. Redis holds nothing the database cannot rebuild (the sweeper
//! re-dispatches whatever is lost), so every Redis state this code meets — a wiped key, a missing
//! group, a restarted server — is something to recover from, never something to fail on.
//!
//! Keys, under a configurable prefix:
//! - `{prefix}:ready` — a stream, consumer group `workers`, one entry per job (field `job`);
//! - `{prefix}:delayed` — a sorted set, score = due time (Unix ms), member = encoded job + `#` +
//!   a random nonce, so the same job can be scheduled twice.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions};
use redis::streams::{StreamInfoConsumersReply, StreamPendingReply, StreamReadReply};
use redis::{AsyncConnectionConfig, Client, Cmd, FromRedisValue, RedisError, RedisResult, Script};

use super::{Delivery, Dispatch, Job, QueueDepth, QueueError};
use crate::store::now_ms;

const GROUP: &str = "workers";
const FIELD: &str = "job";
/// Hex digits of the nonce that makes delayed members unique.
const NONCE_LEN: usize = 16;
/// Commands on the shared connection never block server-side, so a slow answer means a sick
/// connection. Big dispatches are split (see `DISPATCH_CHUNK`) so none legitimately takes long.
const SHARED_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Jobs per pipeline in `dispatch`.
const DISPATCH_CHUNK: usize = 5_000;
/// How much longer than its `BLOCK` a blocking read may take before its connection is presumed dead.
const BLOCK_GRACE: Duration = Duration::from_secs(2);
/// Idle blocking connections kept for reuse; more concurrent fetchers than this just reconnect.
const MAX_IDLE_BLOCKING: usize = 64;

/// Moves due members of the delayed set to the stream, one `XADD` per member. A loop rather than
/// one `XADD`/`ZREM` with `unpack(due)`: Lua's unpack limit (~8,000) is what stopped apalis-redis
/// for good after a burst of due jobs. Returns the earliest remaining due time (or -1) so an idle
/// fetcher can cut its blocking read short when a delayed job comes due.
const PROMOTE_LUA: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local cut = -(tonumber(ARGV[3]) + 2)
for i = 1, #due do
  redis.call('XADD', KEYS[2], '*', 'job', string.sub(due[i], 1, cut))
  redis.call('ZREM', KEYS[1], due[i])
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, first[2] or '-1'}
";

#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// A delivery unacknowledged this long is taken over by the next fetching worker: long enough
    /// for a live worker to finish a step and record it, short enough to recover a dead one fast.
    pub reclaim_after: Duration,
    /// Delayed jobs moved to the stream per fetch; bounds the time one Lua call holds Redis.
    pub move_batch: usize,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            reclaim_after: Duration::from_secs(15),
            move_batch: 1000,
        }
    }
}

pub struct RedisDispatch {
    client: Client,
    /// Multiplexed and self-reconnecting: everything except blocking reads.
    shared: ConnectionManager,
    /// Connections for `XREADGROUP … BLOCK`, one per concurrent fetch: a blocked command on the
    /// multiplexed connection would stall every command queued behind it. A connection that
    /// failed is dropped instead of returned, which is how it gets recreated.
    blocking: Mutex<Vec<MultiplexedConnection>>,
    ready_key: String,
    delayed_key: String,
    options: RedisOptions,
    promote: Script,
}

impl RedisDispatch {
    pub async fn connect(
        url: &str,
        prefix: &str,
        options: RedisOptions,
    ) -> Result<Self, QueueError> {
        let client = Client::open(url).map_err(|e| unavailable("connect", &e))?;
        // Bounded reconnect back-off: a caller waiting on a dead Redis should hear so in seconds.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(SHARED_RESPONSE_TIMEOUT))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(1));
        let shared = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| unavailable("connect", &e))?;
        let this = Self {
            client,
            shared,
            blocking: Mutex::new(Vec::new()),
            ready_key: format!("{prefix}:ready"),
            delayed_key: format!("{prefix}:delayed"),
            options,
            promote: Script::new(PROMOTE_LUA),
        };
        this.ensure_group()
            .await
            .map_err(|e| unavailable("connect", &e))?;
        Ok(this)
    }

    /// Creates the consumer group (and the stream) unless it exists. Reads start at `0`, not `$`:
    /// when the group is missing (a wipe or restart), every entry in the stream was added since and
    /// nobody has received it — `dispatch` may already have recreated the stream with a plain
    /// `XADD` — so all of it must be delivered.
    async fn ensure_group(&self) -> RedisResult<()> {
        let cmd = Cmd::xgroup_create_mkstream(&self.ready_key, GROUP, "0");
        match cmd.query_async::<()>(&mut self.shared.clone()).await {
            Err(e) if has_code(&e, "BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// Runs `op`; if the group is gone, recreates it and runs `op` once more.
    async fn with_group<T, F, Fut>(&self, op: F) -> RedisResult<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        match op().await {
            Err(e) if group_lost(&e) => {
                self.ensure_group().await?;
                op().await
            }
            other => other,
        }
    }

    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        self.with_group(|| async { cmd.query_async(&mut self.shared.clone()).await })
            .await
    }

    /// Moves due delayed jobs to the stream; the earliest due time still waiting, if any.
    async fn promote_due(&self) -> RedisResult<Option<i64>> {
        let (_moved, next): (u64, String) = self
            .promote
            .key(&self.delayed_key)
            .key(&self.ready_key)
            .arg(now_ms())
            .arg(self.options.move_batch.max(1))
            .arg(NONCE_LEN)
            .invoke_async(&mut self.shared.clone())
            .await?;
        // Scores come back as Redis formats doubles; due times are whole ms well below 2^53.
        Ok(next
            .parse::<f64>()
            .ok()
            .filter(|s| *s >= 0.0)
            .map(|s| s as i64))
    }

    /// Takes over entries delivered to some worker more than `reclaim_after` ago and never acked.
    async fn reclaim(&self, worker: &str, max: usize) -> RedisResult<Vec<StreamId>> {
        let idle = u64::try_from(self.options.reclaim_after.as_millis()).unwrap_or(u64::MAX);
        let cmd = Cmd::xautoclaim_options(
            &self.ready_key,
            GROUP,
            worker,
            idle,
            "0-0",
            StreamAutoClaimOptions::default().count(max),
        );
        let reply: StreamAutoClaimReply = self.query(&cmd).await?;
        Ok(reply.claimed)
    }

    /// New entries for `worker`; waits up to `block` for one when `block` is not zero.
    async fn read_new(
        &self,
        worker: &str,
        max: usize,
        block: Duration,
    ) -> RedisResult<Vec<StreamId>> {
        let mut options = StreamReadOptions::default().group(GROUP, worker).count(max);
        let block_ms = block.as_millis();
        if block_ms > 0 {
            options = options.block(usize::try_from(block_ms).unwrap_or(usize::MAX));
        }
        let cmd = Cmd::xread_options(&[&self.ready_key], &[">"], &options);
        let reply: Option<StreamReadReply> = if block_ms == 0 {
            self.query(&cmd).await?
        } else {
            // `UNBLOCKED` (the stream was deleted while we waited) counts as a lost group too.
            self.with_group(|| self.query_blocking(&cmd, block)).await?
        };
        Ok(reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default())
    }

    /// Runs a blocking read on a connection of its own, with a deadline past its `BLOCK`.
    async fn query_blocking<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
        block: Duration,
    ) -> RedisResult<T> {
        let idle = self.blocking.lock().ok().and_then(|mut pool| pool.pop());
        let mut conn = match idle {
            Some(conn) => conn,
            None => {
                // Our own deadline below replaces the response timeout, which must not cut a
                // legitimate block short (redis-rs's default is 500 ms).
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(SHARED_RESPONSE_TIMEOUT))
                    .set_response_timeout(None);
                self.client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?
            }
        };
        let answer = tokio::time::timeout(block + BLOCK_GRACE, cmd.query_async(&mut conn)).await;
        let result = match answer {
            Ok(result) => result,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "blocking read outlived its deadline",
            ))),
        };
        // A server error answer leaves the connection sound; anything else may not.
        let reusable = match &result {
            Ok(_) => true,
            Err(e) => e.clone().into_server_errors().is_some(),
        };
        if reusable
            && let Ok(mut pool) = self.blocking.lock()
            && pool.len() < MAX_IDLE_BLOCKING
        {
            pool.push(conn);
        }
        result
    }

    /// Entries whose `job` field is not a job this build understands are acknowledged and deleted
    /// here: redelivering them would loop forever, and the database still knows the real work.
    async fn deliveries(&self, entries: Vec<StreamId>) -> RedisResult<Vec<Delivery>> {
        let mut out = Vec::with_capacity(entries.len());
        let mut garbage = Vec::new();
        for entry in entries {
            match entry.get::<String>(FIELD).as_deref().and_then(Job::decode) {
                Some(job) => out.push(Delivery {
                    job,
                    receipt: entry.id,
                }),
                None => garbage.push(entry.id),
            }
        }
        if !garbage.is_empty() {
            tracing::warn!(
                stream = %self.ready_key,
                count = garbage.len(),
                ids = ?garbage,
                "dropping stream entries that are not jobs"
            );
            self.forget(&garbage).await?;
        }
        Ok(out)
    }

    /// Acknowledges and deletes entries: acknowledged entries are deleted so the stream only ever
    /// holds work not yet done.
    async fn forget(&self, ids: &[String]) -> RedisResult<()> {
        redis::pipe()
            .xack(&self.ready_key, GROUP, ids)
            .ignore()
            .xdel(&self.ready_key, ids)
            .ignore()
            .query_async::<()>(&mut self.shared.clone())
            .await
    }
}

#[async_trait::async_trait]
impl Dispatch for RedisDispatch {
    async fn dispatch(&self, jobs: &[(Job, i64)]) -> Result<(), QueueError> {
        let now = now_ms();
        for chunk in jobs.chunks(DISPATCH_CHUNK) {
            let mut pipe = redis::pipe();
            let mut delayed = Vec::new();
            for (job, at) in chunk {
                if *at <= now {
                    pipe.xadd(&self.ready_key, "*", &[(FIELD, job.encode())])
                        .ignore();
                } else {
                    let nonce: u64 = rand::random();
                    delayed.push((*at, format!("{}#{nonce:0NONCE_LEN$x}", job.encode())));
                }
            }
            if !delayed.is_empty() {
                pipe.zadd_multiple(&self.delayed_key, &delayed).ignore();
            }
            // XADD and ZADD need no group: a stream recreated here gets its group from the next
            // fetch, which reads it from the start.
            pipe.query_async::<()>(&mut self.shared.clone())
                .await
                .map_err(|e| unavailable("dispatch", &e))?;
        }
        Ok(())
    }

    async fn fetch(
        &self,
        worker: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + wait;
        let failed = |e: RedisError| unavailable("fetch", &e);
        loop {
            let next_due = self.promote_due().await.map_err(failed)?;
            let mut entries = self.reclaim(worker, max).await.map_err(failed)?;
            if entries.len() < max {
                // Block only with empty hands, and never past the next delayed job's due time:
                // the blocking read only wakes for new stream entries, and nobody promotes that
                // job while every fetcher is blocked.
                let mut block = deadline.saturating_duration_since(Instant::now());
                if !entries.is_empty() {
                    block = Duration::ZERO;
                } else if let Some(due) = next_due {
                    let until_due = u64::try_from(due.saturating_sub(now_ms())).unwrap_or(0);
                    block = block.min(Duration::from_millis(until_due));
                }
                let fresh = self
                    .read_new(worker, max - entries.len(), block)
                    .await
                    .map_err(failed)?;
                entries.extend(fresh);
            }
            let deliveries = self.deliveries(entries).await.map_err(failed)?;
            if !deliveries.is_empty() || Instant::now() >= deadline {
                return Ok(deliveries);
            }
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        if delivery.receipt.is_empty() {
            return Ok(());
        }
        // Without its group, XACK answers 0 rather than NOGROUP: nothing to recreate here.
        self.forget(std::slice::from_ref(&delivery.receipt))
            .await
            .map_err(|e| unavailable("ack", &e))
    }

    async fn ack_many(&self, deliveries: &[Delivery]) -> Result<(), QueueError> {
        let receipts: Vec<String> = deliveries
            .iter()
            .filter(|d| !d.receipt.is_empty())
            .map(|d| d.receipt.clone())
            .collect();
        if receipts.is_empty() {
            return Ok(());
        }
        self.forget(&receipts)
            .await
            .map_err(|e| unavailable("ack", &e))
    }

    async fn prune_workers(&self, keep: &str, idle: Duration) -> Result<usize, QueueError> {
        let idle_ms = usize::try_from(idle.as_millis()).unwrap_or(usize::MAX);
        let consumers: StreamInfoConsumersReply = self
            .with_group(|| async {
                self.query(&Cmd::xinfo_consumers(&self.ready_key, GROUP))
                    .await
            })
            .await
            .map_err(|e| unavailable("prune", &e))?;
        let mut removed = 0;
        for consumer in consumers.consumers {
            if consumer.name == keep || consumer.pending > 0 || consumer.idle < idle_ms {
                continue;
            }
            let cmd = Cmd::xgroup_delconsumer(&self.ready_key, GROUP, &consumer.name);
            let _: usize = self
                .query(&cmd)
                .await
                .map_err(|e| unavailable("prune", &e))?;
            removed += 1;
        }
        Ok(removed)
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let (len, pending, delayed): (u64, StreamPendingReply, u64) = self
            .with_group(|| async {
                redis::pipe()
                    .xlen(&self.ready_key)
                    .xpending(&self.ready_key, GROUP)
                    .zcard(&self.delayed_key)
                    .query_async(&mut self.shared.clone())
                    .await
            })
            .await
            .map_err(|e| unavailable("depth", &e))?;
        let in_flight = pending.count() as u64;
        Ok(QueueDepth {
            // Delivered entries stay in the stream until acknowledged.
            ready: len.saturating_sub(in_flight),
            delayed,
            in_flight,
        })
    }

    async fn ping(&self) -> Result<(), QueueError> {
        Cmd::ping()
            .query_async::<String>(&mut self.shared.clone())
            .await
            .map(drop)
            .map_err(|e| unavailable("ping", &e))
    }
}

/// The group or its stream vanished (a wipe, a restart of a Redis that keeps nothing on disk).
fn group_lost(e: &RedisError) -> bool {
    has_code(e, "NOGROUP") || has_code(e, "UNBLOCKED")
}

/// Whether the server answered `code`, to a single command or to any command of a pipeline
/// (`RedisError::code` does not look into pipelines).
fn has_code(e: &RedisError, code: &str) -> bool {
    e.code() == Some(code)
        || e.clone()
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, s)| s.code() == code))
}

/// A short reason for callers (it may reach `/readyz`); the full error goes to the log.
fn unavailable(what: &str, e: &RedisError) -> QueueError {
    tracing::debug!(error = %e, "redis {what} failed");
    let reason = if e.is_timeout() {
        "timed out"
    } else if e.is_connection_refusal() {
        "connection refused"
    } else if e.is_connection_dropped() || e.is_io_error() {
        "connection lost"
    } else {
        e.code().unwrap_or_else(|| e.category())
    };
    QueueError::Unavailable(format!("redis {what}: {reason}"))
}
