-- Every award names its staff actor in the ledger and, with an Idempotency-Key,
-- in idempotency_keys. As foreign keys, those references took a KEY SHARE lock
-- on the actor's users row in every award: all the awards one admin sends at
-- once shared one row lock (a MultiXact per overlap), and the only reference in
-- the hot path that leaves the student's own rows (a cross-shard one if the
-- student-keyed tables are ever distributed by student id; README "Scaling").
-- apply_xp checks that the actor is an active staff member before it writes,
-- users are deactivated rather than deleted, and the ledger keeps the id it
-- was given (history outlives accounts).
ALTER TABLE xp_events DROP CONSTRAINT xp_events_actor_id_fkey;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_actor_id_fkey;
