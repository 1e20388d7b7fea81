-- Managed workflows (CONTRACT §8): the workflow an integration installs (`settings.pushTracking`)
-- names that integration, so disabling the integration switches it off and removing the
-- integration deletes it. NULL for every workflow a tenant made through the API.
ALTER TABLE workflows ADD COLUMN integration_id TEXT;
CREATE INDEX workflows_integration ON workflows (tenant_id, integration_id)
  WHERE integration_id IS NOT NULL;
