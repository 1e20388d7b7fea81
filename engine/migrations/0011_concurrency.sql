-- Per-key concurrency (CONTRACT §8). An execution of a workflow with `concurrency` carries its
-- rendered key, the limit it was created under and its event's `occurredAt`, so a claim can tell
-- whether it is among the first `limit` unfinished executions of its key (in event order, then
-- arrival: the execution id is a UUID v7). `concurrency_slots` has one row per workflow and key:
-- a claim that gates and a finish that releases both update it first, so on PostgreSQL they take
-- turns on its row lock and a release never misses an execution parked at the same moment.
ALTER TABLE executions ADD COLUMN concurrency_key TEXT;
ALTER TABLE executions ADD COLUMN concurrency_limit BIGINT;
ALTER TABLE executions ADD COLUMN occurred_at BIGINT;
CREATE INDEX executions_concurrency ON executions (workflow_id, concurrency_key, occurred_at, id)
  WHERE concurrency_key IS NOT NULL;
CREATE TABLE concurrency_slots (
  workflow_id TEXT NOT NULL,
  concurrency_key TEXT NOT NULL,
  turns BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (workflow_id, concurrency_key)
);

-- Debounce (CONTRACT §8): a debounced execution carries its rendered key and the time of the
-- first event of its burst (for `maxWait`). A newer matching event with the same key cancels the
-- pending one (its first step not started) and takes its burst's first time; the key's slot row
-- (under `debounce:<key>`) serialises two such events.
ALTER TABLE executions ADD COLUMN debounce_key TEXT;
ALTER TABLE executions ADD COLUMN debounce_first_at BIGINT;
CREATE INDEX executions_debounce ON executions (workflow_id, debounce_key)
  WHERE debounce_key IS NOT NULL;
