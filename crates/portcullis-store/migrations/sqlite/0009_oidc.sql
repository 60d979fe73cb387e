-- OpenID Connect: registered clients, authorization codes, and people's consent.
--
-- Client secrets and authorization codes are 256-bit random values stored only as SHA-256.
-- An authorization code is redeemed once (a conditional update on used_at_us); the refresh
-- family and access token issued from it are remembered so that presenting the code again
-- revokes them (RFC 6749 §4.1.2). Refresh tokens remember the scope they were granted with.
CREATE TABLE oauth_clients (
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_us BIGINT NOT NULL
);

CREATE TABLE oauth_client_secrets (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    secret_hash BLOB NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    revoked_at_us BIGINT
);
CREATE INDEX oauth_client_secrets_client ON oauth_client_secrets (client_id);

CREATE TABLE authorization_codes (
    id TEXT PRIMARY KEY,
    code_hash BLOB NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    principal_id TEXT NOT NULL REFERENCES principals (id),
    session_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT NOT NULL,
    strength TEXT NOT NULL,
    auth_time_us BIGINT NOT NULL,
    created_at_us BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL,
    used_at_us BIGINT,
    family_id TEXT,
    access_jti TEXT,
    access_expires_at_us BIGINT
);

CREATE TABLE oauth_consents (
    principal_id TEXT NOT NULL REFERENCES principals (id),
    client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    granted_at_us BIGINT NOT NULL,
    PRIMARY KEY (principal_id, client_id)
);

ALTER TABLE refresh_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT '';
