-- The device authorization grant (RFC 8628) and refresh tokens.
--
-- Device codes and refresh tokens are 256-bit random values stored only as SHA-256. A device
-- authorization moves pending -> approved|denied -> consumed by conditional updates, so its
-- tokens are issued once even when several replicas are polled at the same moment. Refresh
-- tokens rotate: each use marks the token used and adds its successor to the same family;
-- presenting a used token again revokes the whole family. Both remember the session that
-- approved the device code: revoking that session (sign-out elsewhere, an administrator, a
-- password change) ends the family too.
CREATE TABLE device_authorizations (
    id TEXT PRIMARY KEY,
    device_code_hash BYTEA NOT NULL UNIQUE,
    user_code TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL,
    interval_s BIGINT NOT NULL,
    last_poll_at_us BIGINT,
    principal_id TEXT REFERENCES principals (id),
    strength TEXT,
    auth_time_us BIGINT,
    session_id TEXT,
    decided_at_us BIGINT
);

CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY,
    token_hash BYTEA NOT NULL UNIQUE,
    family_id TEXT NOT NULL,
    principal_id TEXT NOT NULL REFERENCES principals (id),
    client_id TEXT NOT NULL,
    strength TEXT NOT NULL,
    auth_time_us BIGINT NOT NULL,
    session_id TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL,
    family_expires_at_us BIGINT NOT NULL,
    used_at_us BIGINT,
    revoked_at_us BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_principal ON refresh_tokens (principal_id);
