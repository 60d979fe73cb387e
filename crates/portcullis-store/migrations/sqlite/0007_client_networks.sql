-- Networks a service account may authenticate from (CIDR allow-list, IPv4 and IPv6). No row:
-- any network. `cidrs` is a JSON array of canonical CIDR strings, validated before it is
-- written (no host bits, no overlaps).
CREATE TABLE client_networks (
    principal_id TEXT PRIMARY KEY REFERENCES principals (id),
    cidrs TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at_us BIGINT NOT NULL
);
