-- No reserved entity id (CONTRACT §8): schedule ticks have no entity. Their events and executions
-- used the entity id `schedule`, which is also the key of a real entity with that id in the
-- entity store, so a tick's run read that entity's data and its `update_status` changed it. They
-- now carry the empty entity id, which no real entity can have (every way in refuses a blank
-- `entityId`), so no entity store row is read or written for a tick.
--
-- A tick's event is the only event on a `*_schedule` trigger (posting one is refused) and its key
-- starts with `tick_`. Executions first, while their events still say `schedule`.
UPDATE executions SET entity_id = ''
WHERE entity_id = 'schedule'
  AND event_id IN (
    SELECT id FROM events
    WHERE entity_id = 'schedule'
      AND trig IN ('order_schedule', 'shipment_schedule', 'customer_schedule', 'product_schedule')
      AND substr(event_key, 1, 5) = 'tick_'
  );
UPDATE events SET entity_id = ''
WHERE entity_id = 'schedule'
  AND trig IN ('order_schedule', 'shipment_schedule', 'customer_schedule', 'product_schedule')
  AND substr(event_key, 1, 5) = 'tick_';
