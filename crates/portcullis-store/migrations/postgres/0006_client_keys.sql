-- private_key_jwt (RFC 7523) for service accounts: registered public keys and the client
-- assertion ids already accepted.
--
-- A key id names one key of one account for good: removing a key only marks it revoked, so
-- its kid is never reused for another key. Keys are SubjectPublicKeyInfo DER (Ed25519 or
-- P-256), never private keys.
CREATE TABLE client_keys (
    principal_id TEXT NOT NULL REFERENCES principals (id),
    key_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    public_key BYTEA NOT NULL,
    created_by TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    revoked_at_us BIGINT,
    PRIMARY KEY (principal_id, key_id)
);

-- Each accepted assertion's jti, kept until the assertion could no longer pass its exp check.
-- The primary key makes acceptance a conditional insert: of two replicas presented the same
-- assertion, exactly one inserts the row, the other finds it and refuses.
CREATE TABLE client_assertion_jtis (
    principal_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at_us BIGINT NOT NULL,
    PRIMARY KEY (principal_id, jti)
);
CREATE INDEX client_assertion_jtis_expiry ON client_assertion_jtis (expires_at_us);
