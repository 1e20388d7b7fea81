-- Inbound replay protection (CONTRACT §7): the SHA-256 of each accepted store delivery's topic and
-- raw body, per integration, kept at least 7 days. A captured body replayed under a fresh delivery
-- id finds its digest here and starts nothing. Rows older than the window are pruned as new ones
-- arrive (see engine/src/store/integrations.rs), and go with their integration.
CREATE TABLE inbound_digests (
    integration_id TEXT NOT NULL,
    -- hex SHA-256 of (topic, NUL, raw body)
    digest         TEXT NOT NULL,
    -- JSON array of the event ids the first delivery ingested, shown again on a replay.
    event_keys     TEXT NOT NULL,
    received_at    BIGINT NOT NULL,
    PRIMARY KEY (integration_id, digest)
);
CREATE INDEX inbound_digests_age ON inbound_digests (integration_id, received_at);

-- `/metrics` counts the live (non-terminal) executions in the background: an index on status
-- makes that an index-only count of those rows rather than a scan of every execution.
CREATE INDEX executions_status ON executions (status);
