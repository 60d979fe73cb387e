-- Activations that start later and extensions of active ones (issue 22, item 4).
-- `starts_at_us`: when a scheduled activation starts (NULL: at once). A request in state
-- 'scheduled' grants nothing until the expiry worker starts it.
-- `extends_id`: for an extension request, the activation it extends; its duration is the
-- extra time asked for, and once approved it is 'applied' and the activation's end moves.
ALTER TABLE activation_requests ADD COLUMN starts_at_us BIGINT;
ALTER TABLE activation_requests ADD COLUMN extends_id TEXT REFERENCES activation_requests (id);
CREATE INDEX activation_requests_starts ON activation_requests (starts_at_us)
    WHERE state = 'scheduled';
-- At most one extension of an activation waits for approval at a time.
CREATE UNIQUE INDEX activation_requests_one_pending_extension ON activation_requests (extends_id)
    WHERE state = 'pending_approval' AND extends_id IS NOT NULL;
