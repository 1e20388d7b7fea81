//! The scale-out dispatcher: per-tenant lanes of ready jobs served in turn, a Redis Stream with one
//! consumer group for jobs handed to workers, plus a sorted set for jobs that are due later. Redis
//! holds nothing the database cannot rebuild (the sweeper re-dispatches whatever is lost), so every
//! Redis state this code meets — a wiped key, a missing group, a restarted server — is something to
//! recover from, never something to fail on.
//!
//! Keys, under a configurable prefix:
//! - `{prefix}:lane:{tenant}` — a list, one tenant's ready jobs, oldest first;
//! - `{prefix}:tenants` — a list of the tenants whose lane is not empty, in serving order: a fetch
//!   takes one job from the head tenant's lane and moves that tenant to the back while its lane
//!   holds more, so ready work is served round-robin across tenants (CONTRACT §7 "Fair queuing");
//! - `{prefix}:ready` — a stream, consumer group `workers`: the jobs a fetch took from the lanes,
//!   delivered and not yet acknowledged (field `job`). Its pending list is what `XAUTOCLAIM` takes
//!   over from dead workers. (Versions before the lanes put every ready job here; entries such a
//!   version left behind are delivered first, then the lanes.)
//! - `{prefix}:delayed` — a sorted set, score = due time (Unix ms), member = encoded job + `#` +
//!   a random nonce, so the same job can be scheduled twice; due members move to their tenant's lane;
//! - `{prefix}:wake` — a short capped stream, one entry per dispatch: idle fetchers block on it.
//!
//! Every move between lanes, the tenant list and the stream happens inside one Lua script, so a
//! tenant is in the list exactly when its lane holds jobs, whatever runs concurrently.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{StreamAutoClaimOptions, StreamAutoClaimReply, StreamInfoConsumersReply};
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
/// Jobs per script call in `dispatch`.
const DISPATCH_CHUNK: usize = 5_000;
/// How much longer than its `BLOCK` a blocking read may take before its connection is presumed dead.
const BLOCK_GRACE: Duration = Duration::from_secs(2);
/// Idle blocking connections kept for reuse; more concurrent fetchers than this just reconnect.
const MAX_IDLE_BLOCKING: usize = 64;

/// Appends jobs to their tenants' lanes (KEYS: tenants, wake; ARGV: lane prefix, then tenant and
/// job pairs). A tenant whose lane was empty joins the back of the serving order. The wake entry
/// ends the blocking read of every idle fetcher, also when only delayed jobs were added (their due
/// time may be earlier than the one the fetcher waits for).
const DISPATCH_LUA: &str = r"
for i = 2, #ARGV, 2 do
  if redis.call('RPUSH', ARGV[1] .. ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('RPUSH', KEYS[1], ARGV[i])
  end
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', '64', '*', 'n', '1')
return 0
";

/// One fetch (KEYS: stream, delayed, tenants, wake; ARGV: lane prefix, worker, max, now, move
/// batch, nonce length, unknown tenant):
/// 1. due delayed jobs move to their tenant's lane (at most `move batch`, bounding the time one
///    call holds Redis). A loop, never `unpack(due)`: Lua's unpack limit (~8,000) is what stopped
///    apalis-redis for good after a burst of due jobs. A job without a tenant (version 1) goes to
///    the unknown tenant's lane;
/// 2. entries already in the stream and never delivered are delivered first (left by an older
///    version, or a wipe of the group);
/// 3. the rest is taken from the lanes one job per tenant in turn, added to the stream and read
///    from it by the group, so the pending list tracks it like any delivery.
///
/// Returns the earliest remaining due time (or -1), the wake stream's last id (the fetcher blocks
/// for entries after it, so a dispatch between this script and the blocking read is not missed),
/// then entry id and job pairs.
const FETCH_LUA: &str = r"
local stream, delayed, tenants, wake = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local lanes, worker, max = ARGV[1], ARGV[2], tonumber(ARGV[3])
local cut = -(tonumber(ARGV[6]) + 2)

local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', ARGV[4], 'LIMIT', 0, ARGV[5])
for i = 1, #due do
  local job = string.sub(due[i], 1, cut)
  local ok, decoded = pcall(cjson.decode, job)
  local tenant = ARGV[7]
  if ok and type(decoded) == 'table' and type(decoded['tenant_id']) == 'string' then
    tenant = decoded['tenant_id']
  end
  if redis.call('RPUSH', lanes .. tenant, job) == 1 then
    redis.call('RPUSH', tenants, tenant)
  end
  redis.call('ZREM', delayed, due[i])
end

redis.pcall('XGROUP', 'CREATE', stream, 'workers', '0', 'MKSTREAM')
local out = {}
local function read(n)
  local reply = redis.call('XREADGROUP', 'GROUP', 'workers', worker, 'COUNT', n, 'STREAMS', stream, '>')
  if not reply then return 0 end
  local entries = reply[1][2]
  for _, entry in ipairs(entries) do
    local job = ''
    local fields = entry[2]
    if type(fields) == 'table' then
      for j = 1, #fields - 1, 2 do
        if fields[j] == 'job' then job = fields[j + 1] end
      end
    end
    out[#out + 1] = entry[1]
    out[#out + 1] = job
  end
  return #entries
end

local got = read(max)
local picked = 0
while got + picked < max do
  local tenant = redis.call('LPOP', tenants)
  if not tenant then break end
  local lane = lanes .. tenant
  local job = redis.call('LPOP', lane)
  if job then
    redis.call('XADD', stream, '*', 'job', job)
    picked = picked + 1
    if redis.call('LLEN', lane) > 0 then
      redis.call('RPUSH', tenants, tenant)
    end
  end
end
if picked > 0 then read(picked) end

local first = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
local last = redis.call('XREVRANGE', wake, '+', '-', 'COUNT', 1)
local wake_id = '0-0'
if last[1] then wake_id = last[1][1] end
table.insert(out, 1, wake_id)
table.insert(out, 1, first[2] or '-1')
return out
";

/// Queue depth in one call (KEYS: stream, delayed, tenants; ARGV: lane prefix): jobs in lanes,
/// stream length, pending count (0 without a group), delayed count.
const DEPTH_LUA: &str = r"
local queued = 0
for _, tenant in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
  queued = queued + redis.call('LLEN', ARGV[1] .. tenant)
end
local pending = 0
local summary = redis.pcall('XPENDING', KEYS[1], 'workers')
if type(summary) == 'table' and summary[1] then pending = summary[1] end
return {queued, redis.call('XLEN', KEYS[1]), pending, redis.call('ZCARD', KEYS[2])}
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
    /// Connections for `XREAD … BLOCK`, one per concurrent fetch: a blocked command on the
    /// multiplexed connection would stall every command queued behind it. A connection that
    /// failed is dropped instead of returned, which is how it gets recreated.
    blocking: Mutex<Vec<MultiplexedConnection>>,
    ready_key: String,
    delayed_key: String,
    tenants_key: String,
    wake_key: String,
    /// `{prefix}:lane:`, completed with a tenant id.
    lane_prefix: String,
    options: RedisOptions,
    dispatch_script: Script,
    fetch_script: Script,
    depth_script: Script,
}

/// What one run of the fetch script found.
struct Taken {
    entries: Vec<(String, String)>,
    next_due: Option<i64>,
    wake_id: String,
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
            tenants_key: format!("{prefix}:tenants"),
            wake_key: format!("{prefix}:wake"),
            lane_prefix: format!("{prefix}:lane:"),
            options,
            dispatch_script: Script::new(DISPATCH_LUA),
            fetch_script: Script::new(FETCH_LUA),
            depth_script: Script::new(DEPTH_LUA),
        };
        this.ensure_group()
            .await
            .map_err(|e| unavailable("connect", &e))?;
        Ok(this)
    }

    /// Creates the consumer group (and the stream) unless it exists. Reads start at `0`, not `$`:
    /// when the group is missing (a wipe or restart), every entry in the stream was added since and
    /// nobody has received it, so all of it must be delivered.
    async fn ensure_group(&self) -> RedisResult<()> {
        let cmd = Cmd::xgroup_create_mkstream(&self.ready_key, GROUP, "0");
        match cmd.query_async::<()>(&mut self.shared.clone()).await {
            Err(e) if has_code(&e, "BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// Runs `cmd`; if the group is gone, recreates it and runs `cmd` once more.
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        match cmd.query_async(&mut self.shared.clone()).await {
            Err(e) if group_lost(&e) => {
                self.ensure_group().await?;
                cmd.query_async(&mut self.shared.clone()).await
            }
            other => other,
        }
    }

    /// Promotes due delayed jobs, then takes up to `max` jobs for `worker`: undelivered stream
    /// entries first, then one job per tenant in turn (see `FETCH_LUA`).
    async fn take(&self, worker: &str, max: usize) -> RedisResult<Taken> {
        let reply: Vec<String> = self
            .fetch_script
            .key(&self.ready_key)
            .key(&self.delayed_key)
            .key(&self.tenants_key)
            .key(&self.wake_key)
            .arg(&self.lane_prefix)
            .arg(worker)
            .arg(max)
            .arg(now_ms())
            .arg(self.options.move_batch.max(1))
            .arg(NONCE_LEN)
            .arg(Job::UNKNOWN_TENANT.to_string())
            .invoke_async(&mut self.shared.clone())
            .await?;
        let mut reply = reply.into_iter();
        // Scores come back as Redis formats doubles; due times are whole ms well below 2^53.
        let next_due = reply
            .next()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s >= 0.0)
            .map(|s| s as i64);
        let wake_id = reply.next().unwrap_or_else(|| "0-0".to_owned());
        let mut entries = Vec::new();
        while let (Some(id), Some(job)) = (reply.next(), reply.next()) {
            entries.push((id, job));
        }
        Ok(Taken {
            entries,
            next_due,
            wake_id,
        })
    }

    /// Takes over entries delivered to some worker more than `reclaim_after` ago and never acked.
    async fn reclaim(&self, worker: &str, max: usize) -> RedisResult<Vec<(String, String)>> {
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
        Ok(reply
            .claimed
            .into_iter()
            .map(|entry| {
                let job = entry.get::<String>(FIELD).unwrap_or_default();
                (entry.id, job)
            })
            .collect())
    }

    /// Waits up to `block` for a dispatch after the wake entry `after`, on a connection of its
    /// own with a deadline past its `BLOCK`. Whether anything came does not matter: the caller
    /// fetches again either way.
    async fn wait_for_dispatch(&self, after: &str, block: Duration) -> RedisResult<()> {
        let block_ms = usize::try_from(block.as_millis())
            .unwrap_or(usize::MAX)
            .max(1);
        let cmd = Cmd::xread_options(
            &[&self.wake_key],
            &[after],
            &redis::streams::StreamReadOptions::default()
                .count(1)
                .block(block_ms),
        );
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
        let answer = tokio::time::timeout(
            block + BLOCK_GRACE,
            cmd.query_async::<redis::Value>(&mut conn),
        )
        .await;
        let result = match answer {
            Ok(Ok(_)) => Ok(()),
            // A server error (`UNBLOCKED`: the key was deleted while we waited) leaves the
            // connection sound and only means: look again.
            Ok(Err(e)) if e.clone().into_server_errors().is_some() || e.code().is_some() => {
                tracing::debug!(error = %e, "blocking read on the wake stream ended");
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "blocking read outlived its deadline",
            ))),
        };
        if result.is_ok()
            && let Ok(mut pool) = self.blocking.lock()
            && pool.len() < MAX_IDLE_BLOCKING
        {
            pool.push(conn);
        }
        result
    }

    /// Entries whose `job` field is not a job this build understands are acknowledged and deleted
    /// here: redelivering them would loop forever, and the database still knows the real work.
    async fn deliveries(&self, entries: Vec<(String, String)>) -> RedisResult<Vec<Delivery>> {
        let mut out = Vec::with_capacity(entries.len());
        let mut garbage = Vec::new();
        for (id, text) in entries {
            match Job::decode(&text) {
                Some(job) => out.push(Delivery { job, receipt: id }),
                None => garbage.push(id),
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
        let failed = |e: RedisError| unavailable("dispatch", &e);
        for chunk in jobs.chunks(DISPATCH_CHUNK) {
            let mut delayed = Vec::new();
            let mut invocation = self.dispatch_script.prepare_invoke();
            invocation
                .key(&self.tenants_key)
                .key(&self.wake_key)
                .arg(&self.lane_prefix);
            for (job, at) in chunk {
                if *at <= now {
                    invocation
                        .arg(job.tenant_id().to_string())
                        .arg(job.encode());
                } else {
                    let nonce: u64 = rand::random();
                    delayed.push((*at, format!("{}#{nonce:0NONCE_LEN$x}", job.encode())));
                }
            }
            if !delayed.is_empty() {
                Cmd::zadd_multiple(&self.delayed_key, &delayed)
                    .query_async::<()>(&mut self.shared.clone())
                    .await
                    .map_err(failed)?;
            }
            // Lanes need no group: the fetch that moves a job to the stream creates it.
            invocation
                .invoke_async::<()>(&mut self.shared.clone())
                .await
                .map_err(failed)?;
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
            let mut entries = self.reclaim(worker, max).await.map_err(failed)?;
            let mut wait_after = None;
            if entries.len() < max {
                let taken = self
                    .take(worker, max - entries.len())
                    .await
                    .map_err(failed)?;
                entries.extend(taken.entries);
                wait_after = Some((taken.wake_id, taken.next_due));
            }
            let deliveries = self.deliveries(entries).await.map_err(failed)?;
            let now = Instant::now();
            if !deliveries.is_empty() || now >= deadline {
                return Ok(deliveries);
            }
            let Some((wake_id, next_due)) = wait_after else {
                continue;
            };
            // Wait with empty hands only, and never past the next delayed job's due time: the
            // wake stream only hears of dispatches, and nobody promotes that job while every
            // fetcher waits.
            let mut block = deadline - now;
            if let Some(due) = next_due {
                let until_due = u64::try_from(due.saturating_sub(now_ms())).unwrap_or(0);
                block = block.min(Duration::from_millis(until_due));
            }
            if !block.is_zero() {
                self.wait_for_dispatch(&wake_id, block)
                    .await
                    .map_err(failed)?;
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
            .query(&Cmd::xinfo_consumers(&self.ready_key, GROUP))
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
        let (queued, len, pending, delayed): (u64, u64, u64, u64) = self
            .depth_script
            .key(&self.ready_key)
            .key(&self.delayed_key)
            .key(&self.tenants_key)
            .arg(&self.lane_prefix)
            .invoke_async(&mut self.shared.clone())
            .await
            .map_err(|e| unavailable("depth", &e))?;
        Ok(QueueDepth {
            // Delivered entries stay in the stream until acknowledged; undelivered ones (left by
            // an older version) are ready like the lanes.
            ready: queued + len.saturating_sub(pending),
            delayed,
            in_flight: pending,
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
