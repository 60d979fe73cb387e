-- Access reviews (issue 22, item 3). A review names a role at a scope, who reviews (a
-- role-assignable group, a person, or each principal's manager with a fallback), how often a
-- round opens (every_seconds; NULL: only on request) and how long it stays open, and the
-- decision an undecided item gets at the close. A deleted review is disabled; its rows stay.
CREATE TABLE access_reviews (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    scope TEXT NOT NULL,
    reviewers TEXT NOT NULL,
    fallback TEXT,
    every_seconds BIGINT,
    duration_seconds BIGINT NOT NULL,
    default_decision TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    next_round_at_us BIGINT
);

-- A round: open until closes_at_us, when one replica closes it (open -> closed, conditional,
-- with every decision applied in the same transaction); cancelled when its review is deleted.
-- At most one open round per review, by construction.
CREATE TABLE access_review_rounds (
    id TEXT PRIMARY KEY,
    review_id TEXT NOT NULL REFERENCES access_reviews (id),
    state TEXT NOT NULL,
    opened_by TEXT NOT NULL,
    opened_at_us BIGINT NOT NULL,
    closes_at_us BIGINT NOT NULL,
    reminder_at_us BIGINT NOT NULL,
    reminded_at_us BIGINT,
    closed_at_us BIGINT
);
CREATE UNIQUE INDEX access_review_rounds_one_open ON access_review_rounds (review_id)
    WHERE state = 'open';
CREATE INDEX access_review_rounds_closes ON access_review_rounds (closes_at_us)
    WHERE state = 'open';

-- An item: one assignment in a round's reach when it opened, who reviews it, the decision
-- (the first is final; 'default' decides at the close) and what the close did (outcome).
CREATE TABLE access_review_items (
    round_id TEXT NOT NULL REFERENCES access_review_rounds (id),
    assignment_id TEXT NOT NULL REFERENCES role_assignments (id),
    principal_id TEXT NOT NULL REFERENCES principals (id),
    role TEXT NOT NULL,
    scope TEXT NOT NULL,
    kind TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    decision TEXT,
    reason TEXT,
    decided_by TEXT,
    decided_at_us BIGINT,
    applied_at_us BIGINT,
    outcome TEXT,
    PRIMARY KEY (round_id, assignment_id)
);
CREATE INDEX access_review_items_reviewer ON access_review_items (reviewer);

-- A person's manager: their reviewer in a `managers` review.
CREATE TABLE principal_managers (
    principal_id TEXT PRIMARY KEY REFERENCES principals (id),
    manager_id TEXT NOT NULL REFERENCES principals (id),
    set_by TEXT NOT NULL,
    set_at_us BIGINT NOT NULL
);
