-- WebAuthn: credentials are second factors (kind 'webauthn'; the sealed secret holds the
-- serialised credential, last_step its signature counter); ceremonies are kept server-side so
-- any replica can finish one, and each can be finished once.
ALTER TABLE mfa_factors ADD COLUMN credential_id BYTEA;
CREATE UNIQUE INDEX mfa_factors_credential_id ON mfa_factors (credential_id);

CREATE TABLE webauthn_ceremonies (
    id_hash BYTEA PRIMARY KEY,
    principal_id TEXT NOT NULL REFERENCES principals (id),
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    factor_name TEXT,
    pending_signin_hash BYTEA,
    created_at_us BIGINT NOT NULL
);
