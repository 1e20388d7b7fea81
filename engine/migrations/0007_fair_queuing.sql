-- Fair queuing (CONTRACT §7): the embedded dispatcher serves tenants in turn. It finds the tenants
-- with queued steps (pending events) by one index seek each and reads each tenant's oldest due
-- steps (events) from the same index, so a fetch never scans one tenant's whole backlog.
CREATE INDEX steps_queued_by_tenant ON steps (status, tenant_id, next_run_at);
CREATE INDEX events_pending_by_tenant ON events (state, tenant_id, received_at);
