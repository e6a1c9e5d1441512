-- A real repair runs a full check right away (trigger 'repair'), so the
-- status shows the repaired state instead of the violations until the next tick.
ALTER TABLE integrity_checks DROP CONSTRAINT integrity_checks_trigger_check;
ALTER TABLE integrity_checks ADD CONSTRAINT integrity_checks_trigger_check
  CHECK (trigger IN ('schedule', 'manual', 'cli', 'startup', 'repair'));
