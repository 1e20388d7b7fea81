-- Managed workflows (CONTRACT §8): the workflow an integration installs (`settings.pushTracking`)
-- names that integration, so disabling the integration switches it off and removing the
-- integration deletes it. NULL for every workflow a tenant made through the API. At most one live
-- managed workflow per integration: two configure calls racing to install it cannot both succeed.
ALTER TABLE workflows ADD COLUMN integration_id TEXT;
CREATE UNIQUE INDEX workflows_integration ON workflows (integration_id)
  WHERE integration_id IS NOT NULL AND deleted_at IS NULL;
