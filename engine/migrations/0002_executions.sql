-- Events, the entity store, executions, steps and attempts. The database is the source of truth;
-- queues only carry ids.

-- The latest data and status of every entity the engine has seen.
CREATE TABLE entities (
    tenant_id   TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    data        TEXT NOT NULL,
    status      TEXT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, entity_type, entity_id)
);

CREATE TABLE events (
    id           TEXT PRIMARY KEY NOT NULL,
    tenant_id    TEXT NOT NULL,
    -- The client's idempotency key (`eventId`); generated when absent.
    event_key    TEXT NOT NULL,
    entity_type  TEXT NOT NULL,
    entity_id    TEXT NOT NULL,
    trig         TEXT NOT NULL,
    data         TEXT NOT NULL,
    previous     TEXT,
    occurred_at  BIGINT NOT NULL,
    received_at  BIGINT NOT NULL,
    -- The event whose step emitted this one, and how deep that causal chain is.
    causation_id TEXT,
    depth        BIGINT NOT NULL DEFAULT 0,
    -- JSON list of "workflowId:entityType:entityId" already run in this causal chain.
    chain        TEXT NOT NULL DEFAULT '[]',
    -- pending → processed; a pending event past its lease is re-dispatched by the sweeper.
    state        TEXT NOT NULL,
    lease_until  BIGINT,
    -- JSON: workflows matched, conditions failed or errored, matches refused, with reasons.
    outcome      TEXT,
    UNIQUE (tenant_id, event_key)
);
CREATE INDEX events_pending ON events (state, received_at);
CREATE INDEX events_tenant_trigger ON events (tenant_id, entity_type, trig, id);
CREATE INDEX events_tenant ON events (tenant_id, id);

CREATE TABLE executions (
    id               TEXT PRIMARY KEY NOT NULL,
    tenant_id        TEXT NOT NULL,
    workflow_id      TEXT NOT NULL,
    workflow_version BIGINT NOT NULL,
    event_id         TEXT NOT NULL,
    entity_type      TEXT NOT NULL,
    entity_id        TEXT NOT NULL,
    status           TEXT NOT NULL,
    pause_reason     TEXT,
    step_count       BIGINT NOT NULL,
    current_step     BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    finished_at      BIGINT,
    -- One event never starts the same workflow twice.
    UNIQUE (event_id, workflow_id)
);
CREATE INDEX executions_tenant ON executions (tenant_id, id);
CREATE INDEX executions_workflow ON executions (tenant_id, workflow_id, status);

CREATE TABLE steps (
    id           TEXT PRIMARY KEY NOT NULL,
    execution_id TEXT NOT NULL,
    tenant_id    TEXT NOT NULL,
    position     BIGINT NOT NULL,
    action_type  TEXT NOT NULL,
    -- queued → running → succeeded | failed; blocked (execution paused), cancelled.
    status       TEXT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    -- Failed attempts since the step was last (re)started: what the retry schedule counts.
    failures     BIGINT NOT NULL DEFAULT 0,
    next_run_at  BIGINT NOT NULL,
    lease_owner  TEXT,
    lease_until  BIGINT,
    dispatched_at BIGINT,
    output       TEXT,
    last_error   TEXT,
    UNIQUE (execution_id, position)
);
CREATE INDEX steps_ready ON steps (status, next_run_at);
CREATE INDEX steps_execution ON steps (execution_id);

CREATE TABLE attempts (
    id          TEXT PRIMARY KEY NOT NULL,
    step_id     TEXT NOT NULL,
    tenant_id   TEXT NOT NULL,
    number      BIGINT NOT NULL,
    worker      TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    ended_at    BIGINT,
    -- succeeded | retry | failed | abandoned (the worker's lease ran out)
    outcome     TEXT,
    error       TEXT,
    output      TEXT
);
CREATE INDEX attempts_step ON attempts (step_id, number);

-- Per tenant and outbound URL: consecutive failed attempts, and whether the endpoint is disabled.
CREATE TABLE endpoint_health (
    tenant_id     TEXT NOT NULL,
    url           TEXT NOT NULL,
    failures      BIGINT NOT NULL DEFAULT 0,
    disabled_at   BIGINT,
    disabled_reason TEXT,
    PRIMARY KEY (tenant_id, url)
);

-- Web Push subscriptions saved by a tenant's browsers.
CREATE TABLE push_subscriptions (
    tenant_id  TEXT NOT NULL,
    endpoint   TEXT NOT NULL,
    p256dh     TEXT NOT NULL,
    auth       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, endpoint)
);
