-- Causal chain limits (CONTRACT §7, `--max-chain-executions`).
-- The root of an event's causal chain: the API or store event that started it. NULL for a root
-- itself (every event that no step emitted), so existing rows need no rewrite.
ALTER TABLE events ADD COLUMN root_id TEXT;

-- Executions started so far by each causal chain that went past its root event. Created when the
-- first emitted event of a chain is matched (counting the root's own executions then) and
-- increased in the transaction that starts more, so workers matching one chain's events at once
-- never start more than the limit between them (the row lock / SQLite's write lock serialises them).
CREATE TABLE event_chains (
    root_id    TEXT PRIMARY KEY NOT NULL,
    executions BIGINT NOT NULL
);
