-- Signing keys per algorithm: EdDSA (access tokens, audit checkpoints, ID tokens by default),
-- ES256 and RS256 (ID tokens of relying parties that ask for them). One key per algorithm is
-- active; the keys before this migration are all Ed25519.
ALTER TABLE signing_keys ADD COLUMN algorithm TEXT NOT NULL DEFAULT 'EdDSA';

-- The algorithm a relying party's ID tokens are signed with (id_token_signed_response_alg);
-- NULL is EdDSA.
ALTER TABLE oauth_clients ADD COLUMN id_token_alg TEXT;
