-- Token service: service-account client secrets (stored as SHA-256 of 256-bit random values;
-- at most two live at a time so rotation has no downtime), consented application permissions
-- (recorded with who consented; they outlive that person's own role), and revoked access
-- tokens (by jti, kept until they would have expired anyway).
CREATE TABLE client_secrets (
    id TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL REFERENCES principals (id),
    secret_hash BLOB NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    revoked_at_us BIGINT
);
CREATE INDEX client_secrets_principal ON client_secrets (principal_id);

CREATE TABLE consents (
    principal_id TEXT NOT NULL REFERENCES principals (id),
    permission TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    granted_at_us BIGINT NOT NULL,
    PRIMARY KEY (principal_id, permission)
);

CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY,
    expires_at_us BIGINT NOT NULL,
    revoked_at_us BIGINT NOT NULL
);
