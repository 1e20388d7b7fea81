-- Tenants, API keys, workflows and their versions. Ids are UUID text; times are Unix milliseconds.
CREATE TABLE tenants (
    id                 TEXT PRIMARY KEY NOT NULL,
    name               TEXT NOT NULL,
    notification_email TEXT,
    created_at         BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY NOT NULL,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    -- SHA-256 (hex) of the whole key: keys carry 256 random bits, so a fast hash is enough
    -- and the plain key is never stored.
    key_hash   TEXT NOT NULL UNIQUE,
    -- The first characters of the key, to tell keys apart in listings.
    prefix     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE workflows (
    id              TEXT PRIMARY KEY NOT NULL,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    entity_type     TEXT NOT NULL,
    trigger_code    TEXT NOT NULL,
    name            TEXT NOT NULL,
    is_active       BIGINT NOT NULL, -- 0 or 1: the Any driver has no portable boolean
    is_managed      BIGINT NOT NULL DEFAULT 0,
    current_version BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    deleted_at      BIGINT
);
CREATE INDEX workflows_tenant_entity ON workflows (tenant_id, entity_type, id);
CREATE INDEX workflows_match ON workflows (tenant_id, entity_type, trigger_code, is_active);

CREATE TABLE workflow_versions (
    workflow_id TEXT NOT NULL REFERENCES workflows(id),
    version     BIGINT NOT NULL,
    tenant_id   TEXT NOT NULL,
    -- The validated spec (name, trigger, actions with encrypted secrets, conditions, condition,
    -- schedule) as JSON.
    spec        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (workflow_id, version)
);

-- Process-wide facts: e.g. `master_key_check`, a value encrypted under the master key so a start
-- with the wrong key is refused before it can write secrets nobody can read.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
