-- Where the SIEM export (audit_export) stands, per sink: the last event delivered, and the
-- replica that holds the lease to deliver (one per replica group, so each event goes out once).
-- A writer that moves seq forward hides events from the SIEM, but every exported event carries
-- its seq and prev_hash, so the receiver sees the gap.
CREATE TABLE audit_export_cursors (
    sink TEXT PRIMARY KEY,
    seq BIGINT NOT NULL DEFAULT 0,
    holder TEXT NOT NULL,
    lease_until_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL
);
