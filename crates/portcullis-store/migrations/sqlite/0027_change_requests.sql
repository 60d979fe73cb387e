-- Four eyes on the PAM's own settings (issue 22, item 6): a weakening change waits here until a
-- second top-tier person approves it or, where no other exists, until `effective_at_us` (the
-- cooling-off period). `payload` is the change as asked (JSON); `weakenings` names how it
-- weakens (JSON array). The state moves pending → applied | denied | cancelled once.
CREATE TABLE change_requests (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL,
    weakenings TEXT NOT NULL,
    requested_by_id TEXT NOT NULL REFERENCES principals (id),
    requested_by TEXT NOT NULL,
    requested_at_us BIGINT NOT NULL,
    effective_at_us BIGINT,
    state TEXT NOT NULL,
    decided_by TEXT,
    decided_at_us BIGINT,
    reason TEXT
);
CREATE INDEX change_requests_due ON change_requests (effective_at_us) WHERE state = 'pending';
