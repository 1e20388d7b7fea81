-- Store integrations (CONTRACT §6). Credentials are one JSON document encrypted under the master
-- key (AES-256-GCM, the tenant id as associated data); they never appear in plain text here.
-- Removing an integration deletes its row, so its credentials are gone for good.
CREATE TABLE integrations (
    id           TEXT PRIMARY KEY NOT NULL,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    -- The provider's code (`shopify`, `woocommerce`, `custom`).
    provider     TEXT NOT NULL,
    -- The normalized store URL; NULL for providers without a store (`custom`).
    store_url    TEXT,
    -- active | disabled
    status       TEXT NOT NULL,
    -- `enc:v1:…` of the credentials JSON.
    credentials  TEXT NOT NULL,
    -- JSON: autoImportOrders, syncProducts, pushTracking.
    settings     TEXT NOT NULL,
    connected_at BIGINT NOT NULL,
    disabled_at  BIGINT
);
CREATE INDEX integrations_tenant ON integrations (tenant_id, id);
-- "One active integration per provider and store" is checked in the configuring transaction:
-- a partial unique index would say it better, but is not portable across both databases.
CREATE INDEX integrations_store ON integrations (tenant_id, provider, store_url, status);
