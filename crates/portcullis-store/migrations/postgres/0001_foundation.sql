-- Foundation: tenant, keys, bootstrap token, settings, and the audit chain.
CREATE TABLE tenant (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    created_at_us BIGINT NOT NULL,
    -- A known plaintext sealed under the master key: opening it proves the key is right.
    key_check BYTEA NOT NULL
);

CREATE TABLE signing_keys (
    key_id TEXT PRIMARY KEY,
    public_key BYTEA NOT NULL,
    sealed_private_key BYTEA NOT NULL,
    created_at_us BIGINT NOT NULL,
    active BOOLEAN NOT NULL
);

CREATE TABLE bootstrap_tokens (
    id TEXT PRIMARY KEY,
    token_hash BYTEA NOT NULL UNIQUE,
    expires_at_us BIGINT NOT NULL,
    used_at_us BIGINT
);

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at_us BIGINT NOT NULL
);

CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash BYTEA NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);

CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY,
    time_us BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash BYTEA NOT NULL,
    hash BYTEA NOT NULL
);
CREATE INDEX audit_events_actor ON audit_events (actor, seq);
CREATE INDEX audit_events_action ON audit_events (action, seq);
CREATE INDEX audit_events_time ON audit_events (time_us);

CREATE TABLE audit_checkpoints (
    seq BIGINT PRIMARY KEY,
    hash BYTEA NOT NULL,
    key_id TEXT NOT NULL,
    signature BYTEA NOT NULL,
    created_at_us BIGINT NOT NULL
);
