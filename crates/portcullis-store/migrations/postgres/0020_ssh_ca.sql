-- SSH certificate authorities (target kind ssh-ca): short-lived OpenSSH user certificates made
-- from active grants, and the serials a KRL takes back before they expire.

-- What a binding adds at an ssh-ca target: a JSON object {"extensions": [...],
-- "force_command": "..."}; NULL elsewhere.
ALTER TABLE target_bindings ADD COLUMN options TEXT;

-- A target's CA keys: the newest one without retired_at_us signs; every key whose
-- trusted_until_us is unset or in the future is served in ca.pub (rotation with an overlap).
-- The private key is sealed under the master key (associated data: ssh_ca:TARGET:FINGERPRINT).
CREATE TABLE ssh_ca_keys (
    target TEXT NOT NULL REFERENCES targets (name),
    fingerprint TEXT NOT NULL,
    public_key TEXT NOT NULL,
    sealed_private BYTEA NOT NULL,
    created_at_us BIGINT NOT NULL,
    retired_at_us BIGINT,
    trusted_until_us BIGINT,
    PRIMARY KEY (target, fingerprint)
);

-- Every certificate issued (never its private key: the holder keeps that). revoked_at_us is
-- set in the same transaction as the end of any grant it was made from, or the principal's
-- disabling; the KRL lists revoked certificates not yet expired.
CREATE TABLE ssh_certificates (
    target TEXT NOT NULL REFERENCES targets (name),
    serial BIGINT NOT NULL,
    ca_fingerprint TEXT NOT NULL,
    principal_id TEXT NOT NULL REFERENCES principals (id),
    key_id TEXT NOT NULL,
    principals TEXT NOT NULL,
    key_fingerprint TEXT NOT NULL,
    valid_after_us BIGINT NOT NULL,
    valid_before_us BIGINT NOT NULL,
    issued_at_us BIGINT NOT NULL,
    revoked_at_us BIGINT,
    revoked_reason TEXT,
    PRIMARY KEY (target, serial)
);
CREATE INDEX ssh_certificates_live ON ssh_certificates (target, valid_before_us);
CREATE INDEX ssh_certificates_principal ON ssh_certificates (principal_id, valid_before_us);

-- The grants a certificate was made from: any of them ending revokes it.
CREATE TABLE ssh_certificate_grants (
    target TEXT NOT NULL,
    serial BIGINT NOT NULL,
    grant_id TEXT NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (target, serial, grant_id)
);
CREATE INDEX ssh_certificate_grants_grant ON ssh_certificate_grants (grant_id);
