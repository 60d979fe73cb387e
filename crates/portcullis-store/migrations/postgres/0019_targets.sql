-- Targets: systems where grants become real access (DESIGN.md, Targets).
--
-- A target's configuration holds no secret: its credential is sealed with the master key
-- (sealed_secret) or named by a PORTCULLIS_TARGET_SECRET_* environment variable (secret_env).
CREATE TABLE targets (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    config TEXT NOT NULL,
    sealed_secret BYTEA,
    secret_env TEXT,
    drift_mode TEXT NOT NULL,
    reconcile_interval_s BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL
);

-- A role bound to a target: what the role, assigned or activated at scope /targets/NAME, means
-- there (a JSON array of target-side roles or principals), and how (mode: `grant` gives the
-- person's own login the roles; `dynamic` creates a login for the grant alone).
CREATE TABLE target_bindings (
    role TEXT NOT NULL,
    target TEXT NOT NULL REFERENCES targets (name),
    grants TEXT NOT NULL,
    mode TEXT NOT NULL DEFAULT 'grant',
    created_by TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    PRIMARY KEY (role, target)
);

-- Target operations: the outbox of grants and revokes, written in the same transaction as the
-- activation, expiry, revocation or disabling that causes them. Ordered by id per grant: an
-- operation is applied only after every earlier one of the same grant and target finished.
CREATE TABLE target_ops (
    id BIGSERIAL PRIMARY KEY,
    target TEXT NOT NULL,
    op TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    principal_id TEXT NOT NULL REFERENCES principals (id),
    role TEXT NOT NULL,
    target_grants TEXT NOT NULL,
    mode TEXT NOT NULL DEFAULT 'grant',
    starts_at_us BIGINT NOT NULL,
    ends_at_us BIGINT,
    reason TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    budget_from BIGINT NOT NULL DEFAULT 0,
    due_at_us BIGINT NOT NULL,
    next_attempt_at_us BIGINT NOT NULL,
    claimed_by TEXT,
    claimed_until_us BIGINT,
    last_error TEXT,
    failure_reported BOOLEAN NOT NULL DEFAULT FALSE,
    created_at_us BIGINT NOT NULL,
    applied_at_us BIGINT
);
CREATE INDEX target_ops_due ON target_ops (state, next_attempt_at_us);
CREATE INDEX target_ops_grant ON target_ops (target, grant_id);

CREATE TABLE target_op_attempts (
    op_id BIGINT NOT NULL REFERENCES target_ops (id),
    attempt BIGINT NOT NULL,
    worker TEXT NOT NULL,
    started_at_us BIGINT NOT NULL,
    finished_at_us BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT,
    PRIMARY KEY (op_id, attempt)
);

-- The credential of a dynamic grant (a login created for it), sealed under the master key,
-- handed to its holder once (fetched_at_us) and deleted when the grant is revoked.
CREATE TABLE target_credentials (
    target TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    login TEXT NOT NULL,
    sealed_password BYTEA NOT NULL,
    created_at_us BIGINT NOT NULL,
    fetched_at_us BIGINT,
    PRIMARY KEY (target, grant_id)
);
