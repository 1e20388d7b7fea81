-- Schedule ticks: one row per (workflow, tick time) that a scheduler fired or skipped. The primary
-- key is the cross-process claim: with several `serve` processes, only the one whose insert took
-- effect ingests the tick's event, in the same transaction (see engine/src/scheduler/mod.rs).
CREATE TABLE schedule_ticks (
    workflow_id      TEXT NOT NULL,
    -- The tick time, Unix milliseconds (whole seconds: cron has no finer field).
    tick_at          BIGINT NOT NULL,
    tenant_id        TEXT NOT NULL,
    -- The workflow version whose schedule produced the tick.
    workflow_version BIGINT NOT NULL,
    -- 0: fired (an event was ingested); 1: skipped (more than one period late), see `reason`.
    skipped          BIGINT NOT NULL DEFAULT 0,
    reason           TEXT,
    -- The tick's event key (`tick_<workflowId>_<tickMs>`); NULL for skipped ticks.
    event_key        TEXT,
    -- Which process recorded the row, and when.
    recorded_by      TEXT NOT NULL,
    recorded_at      BIGINT NOT NULL,
    PRIMARY KEY (workflow_id, tick_at)
);
CREATE INDEX schedule_ticks_tenant ON schedule_ticks (tenant_id, workflow_id, tick_at);

-- The scheduler lists the active workflows of the schedule triggers on every pass.
CREATE INDEX workflows_scheduled ON workflows (trigger_code, is_active);
