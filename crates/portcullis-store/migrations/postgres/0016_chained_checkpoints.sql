-- Chained audit checkpoints (issue 14): each checkpoint also signs the previous checkpoint's
-- sequence number and digest, its creation time (created_at_us, already present) and the
-- checkpoint cadence in force, so deleting or editing a checkpoint breaks the next one's link
-- and verification knows, also offline, how much history may follow the last checkpoint.
-- Rows written before this migration keep these columns NULL: they are legacy checkpoints,
-- verified as a prefix (the first chained checkpoint links to the last of them).
ALTER TABLE audit_checkpoints ADD COLUMN prev_seq BIGINT;
ALTER TABLE audit_checkpoints ADD COLUMN prev_digest BYTEA;
ALTER TABLE audit_checkpoints ADD COLUMN cadence_events BIGINT;
ALTER TABLE audit_checkpoints ADD COLUMN cadence_seconds BIGINT;
