-- Conditional access: policies (in the file format, validated by the domain core before they
-- are written) and named locations. Every change to either bumps `ca_version.version` with a
-- conditional update, so a change checked by the lockout guard against one version fails
-- instead of landing on top of another replica's concurrent change; readers recompile their
-- cached policy set when the version moves.
CREATE TABLE ca_policies (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at_us BIGINT NOT NULL
);

CREATE TABLE ca_locations (
    name TEXT PRIMARY KEY,
    cidrs TEXT NOT NULL,
    trusted BOOLEAN NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at_us BIGINT NOT NULL
);

CREATE TABLE ca_version (
    id INTEGER PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO ca_version (id, version) VALUES (1, 0);
