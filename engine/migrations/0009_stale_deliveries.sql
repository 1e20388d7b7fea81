-- Stale store deliveries (CONTRACT §8): the resource's own modification time as the store last
-- sent it (Shopify `updated_at`, WooCommerce `date_modified_gmt`), Unix ms. NULL for entities
-- only ever written by events without a source time (POST /api/events, emitted events): those
-- are never compared. A delivery older than this changes nothing and matches nothing
-- (engine/src/domain/staleness.rs).
ALTER TABLE entities ADD COLUMN source_modified_at BIGINT;
