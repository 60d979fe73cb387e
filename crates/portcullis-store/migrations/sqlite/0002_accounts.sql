-- Accounts: principals (users, groups, service accounts), credentials, sessions, throttling.
CREATE TABLE principals (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    display_name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    guest_organisation TEXT,
    role_assignable BOOLEAN NOT NULL DEFAULT FALSE,
    emergency BOOLEAN NOT NULL DEFAULT FALSE,
    privileged BOOLEAN NOT NULL DEFAULT FALSE,
    first_admin BOOLEAN NOT NULL DEFAULT FALSE,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    created_at_us BIGINT NOT NULL,
    last_sign_in_us BIGINT
);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES principals (id),
    member_id TEXT NOT NULL REFERENCES principals (id),
    added_at_us BIGINT NOT NULL,
    PRIMARY KEY (group_id, member_id)
);

CREATE TABLE passwords (
    principal_id TEXT PRIMARY KEY REFERENCES principals (id),
    phc TEXT NOT NULL,
    updated_at_us BIGINT NOT NULL
);

CREATE TABLE mfa_factors (
    id TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL REFERENCES principals (id),
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    sealed_secret BLOB NOT NULL,
    confirmed BOOLEAN NOT NULL,
    last_step BIGINT,
    created_at_us BIGINT NOT NULL,
    last_used_us BIGINT,
    UNIQUE (principal_id, name)
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    token_hash BLOB NOT NULL UNIQUE,
    principal_id TEXT NOT NULL REFERENCES principals (id),
    strength TEXT NOT NULL,
    scope TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    last_seen_us BIGINT NOT NULL,
    strong_auth_at_us BIGINT,
    client_ip TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    revoked_at_us BIGINT
);
CREATE INDEX sessions_principal ON sessions (principal_id);

CREATE TABLE pending_signins (
    id_hash BLOB PRIMARY KEY,
    principal_id TEXT NOT NULL REFERENCES principals (id),
    created_at_us BIGINT NOT NULL
);

CREATE TABLE throttle (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_failure_us BIGINT NOT NULL
);
