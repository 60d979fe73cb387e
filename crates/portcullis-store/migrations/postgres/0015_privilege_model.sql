-- The privilege model (DESIGN.md): where and how a device code was requested, shown to the
-- person asked to approve it, so a phished code can be recognised ("did you start this?").
ALTER TABLE device_authorizations ADD COLUMN client_ip TEXT NOT NULL DEFAULT '';
ALTER TABLE device_authorizations ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';

-- Smart lockout: the addresses (IPv4, or an IPv6 /64) each account signed in from
-- successfully, and when last; failures for an account from other addresses cannot keep it
-- out of these. Swept after 30 days.
CREATE TABLE signin_addresses (
    principal_id TEXT NOT NULL REFERENCES principals (id),
    address TEXT NOT NULL,
    last_success_us BIGINT NOT NULL,
    PRIMARY KEY (principal_id, address)
);

-- A break-glass password is 100 random characters (about 580 bits): slow hashing adds nothing
-- to it, and a keyed SHA-256 verifier lets its sign-in skip the Argon2 queue that a flood fills.
ALTER TABLE breakglass_accounts ADD COLUMN verifier BYTEA;

-- The access token issued with each refresh token: revoking the family (reuse, sign-out, a
-- disabled account) revokes the access tokens minted from it too, not only future refreshes.
ALTER TABLE refresh_tokens ADD COLUMN access_jti TEXT;
ALTER TABLE refresh_tokens ADD COLUMN access_expires_at_us BIGINT;

-- Bounded growth from unauthenticated requests: WebAuthn sign-in challenges and device codes
-- are capped per address (the address is kept with them), and a passwordless start for a name
-- without passkeys gets a decoy challenge (recorded here) shaped like a real one, so the answer
-- tells nobody who has passkeys.
ALTER TABLE webauthn_ceremonies ADD COLUMN client_ip TEXT NOT NULL DEFAULT '';
CREATE INDEX webauthn_ceremonies_address ON webauthn_ceremonies (client_ip, created_at_us);
CREATE INDEX device_authorizations_address ON device_authorizations (client_ip, expires_at_us);
CREATE TABLE webauthn_decoys (
    id_hash BYTEA PRIMARY KEY,
    name TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    created_at_us BIGINT NOT NULL
);
CREATE INDEX webauthn_decoys_address ON webauthn_decoys (client_ip, created_at_us);
