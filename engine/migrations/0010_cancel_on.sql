-- cancelOn (CONTRACT §8). An execution remembers why it was cancelled (`cancelReason`):
-- `cancel_on:<trigger code>`, `manual`, or `workflow_deleted`; NULL for executions not cancelled
-- and for those cancelled before this migration.
ALTER TABLE executions ADD COLUMN cancel_reason TEXT;

-- Per workflow, the triggers that cancel its queued and waiting executions and the key template of
-- each (NULL: the event's entity type and id). Rewritten on every save; an incoming event finds
-- its candidate workflows by the (tenant_id, trigger_code) prefix of the primary key.
CREATE TABLE workflow_cancel_triggers (
    tenant_id TEXT NOT NULL,
    trigger_code TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    key_template TEXT,
    PRIMARY KEY (tenant_id, trigger_code, workflow_id)
);

-- Per execution, the keys it can be cancelled by, rendered when it was created.
CREATE TABLE execution_keys (
    execution_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    trigger_code TEXT NOT NULL,
    cancel_key TEXT NOT NULL,
    PRIMARY KEY (execution_id, trigger_code)
);
CREATE INDEX execution_keys_lookup ON execution_keys (tenant_id, trigger_code, cancel_key, workflow_id);
