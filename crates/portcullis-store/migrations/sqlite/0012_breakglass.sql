-- Break-glass (emergency access) accounts: a principal with emergency = TRUE plus its
-- credential custody. Only the Argon2id hash of a split password is stored (in `passwords`);
-- the shares never reach the server. `custodians` is a JSON array of principal names in share
-- order (share i belongs to custodians[i-1]); for a FIDO2 account it is [key holder, PIN holder]
-- and `threshold` is 0.
CREATE TABLE breakglass_accounts (
    principal_id TEXT PRIMARY KEY REFERENCES principals (id),
    credential TEXT NOT NULL,
    custodians TEXT NOT NULL,
    threshold BIGINT NOT NULL,
    key_holder TEXT,
    pin_holder TEXT,
    created_by TEXT NOT NULL,
    created_at_us BIGINT NOT NULL
);

-- Drills: a tested sign-in, recorded with the session that proved it (the session is ended
-- at once; "last use" counts only sessions that were not drills).
CREATE TABLE breakglass_drills (
    id TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL REFERENCES principals (id),
    session_id TEXT NOT NULL UNIQUE,
    at_us BIGINT NOT NULL
);
CREATE INDEX breakglass_drills_principal ON breakglass_drills (principal_id, at_us);

-- The writer tags every event naming an emergency account; it looks them up per batch.
CREATE INDEX principals_emergency ON principals (name) WHERE emergency;

-- Periodic jobs that must run once per period across all replicas (e.g. the daily
-- stale-drill alert): a replica runs one only if it moves `last_run_us` forward.
CREATE TABLE periodic_jobs (
    name TEXT PRIMARY KEY,
    last_run_us BIGINT NOT NULL
);
