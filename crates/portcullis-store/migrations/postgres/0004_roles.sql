-- Just-in-time roles. Built-in roles are defined in code (portcullis-core::roles); custom roles
-- live here. A role's settings are stored once changed; no row means the role's defaults.
CREATE TABLE custom_roles (
    slug TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    permissions TEXT NOT NULL,
    created_at_us BIGINT NOT NULL
);

CREATE TABLE role_settings (
    role TEXT PRIMARY KEY,
    settings TEXT NOT NULL,
    updated_at_us BIGINT NOT NULL
);

-- Assignments: principal x role x scope, eligible or active, from starts_at to ends_at (NULL:
-- permanent). An ended assignment keeps its row (ended_at_us, end_reason) for the record.
CREATE TABLE role_assignments (
    id TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL REFERENCES principals (id),
    role TEXT NOT NULL,
    scope TEXT NOT NULL,
    kind TEXT NOT NULL,
    starts_at_us BIGINT NOT NULL,
    ends_at_us BIGINT,
    created_by TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    ended_at_us BIGINT,
    end_reason TEXT
);
CREATE INDEX role_assignments_principal ON role_assignments (principal_id);
CREATE INDEX role_assignments_role ON role_assignments (role);
CREATE INDEX role_assignments_deadline ON role_assignments (ends_at_us)
    WHERE ended_at_us IS NULL AND ends_at_us IS NOT NULL;

-- Activation requests. An active request is a grant until ends_at_us.
CREATE TABLE activation_requests (
    id TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL REFERENCES principals (id),
    role TEXT NOT NULL,
    scope TEXT NOT NULL,
    eligibility_id TEXT NOT NULL REFERENCES role_assignments (id),
    state TEXT NOT NULL,
    duration_seconds BIGINT NOT NULL,
    justification TEXT,
    ticket TEXT,
    approvals_required BIGINT NOT NULL,
    created_at_us BIGINT NOT NULL,
    timeout_at_us BIGINT,
    activated_at_us BIGINT,
    ends_at_us BIGINT,
    closed_at_us BIGINT,
    closed_by TEXT,
    close_reason TEXT
);
CREATE INDEX activation_requests_principal ON activation_requests (principal_id, state);
CREATE INDEX activation_requests_ends ON activation_requests (ends_at_us) WHERE state = 'active';
CREATE INDEX activation_requests_timeout ON activation_requests (timeout_at_us)
    WHERE state = 'pending_approval';

-- One decision per approver per request: N-of-M counts distinct people by construction.
CREATE TABLE request_decisions (
    request_id TEXT NOT NULL REFERENCES activation_requests (id),
    approver_id TEXT NOT NULL REFERENCES principals (id),
    decision TEXT NOT NULL,
    reason TEXT,
    at_us BIGINT NOT NULL,
    PRIMARY KEY (request_id, approver_id)
);

-- Messages to deliver, written in the same transaction as the change that caused them
-- (notifications now; alerts and delivery with the alerting issue).
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    recipient TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at_us BIGINT NOT NULL,
    last_error TEXT
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at_us);

-- The first administrator holds a permanent active Global Administrator assignment (the one
-- standing exception besides break-glass accounts; whoami and the posture report say so).
INSERT INTO role_assignments (id, principal_id, role, scope, kind, starts_at_us, ends_at_us,
                              created_by, created_at_us)
SELECT 'a_first_admin_' || id, id, 'global-administrator', '/', 'active', created_at_us, NULL,
       'bootstrap', created_at_us
FROM principals WHERE first_admin;
