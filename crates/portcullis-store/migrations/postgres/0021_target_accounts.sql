-- A person's own account at a target, where it is not what the target's login template gives
-- (an Entra UPN on another domain, a database login under another name). external_id is the
-- account's id at the target where it has one (an Entra object id, resolved when it is set).
-- One account belongs to one principal per target: two people never share what a grant or a
-- revoke acts on.
CREATE TABLE target_accounts (
    target TEXT NOT NULL REFERENCES targets (name),
    principal_id TEXT NOT NULL REFERENCES principals (id),
    account TEXT NOT NULL,
    external_id TEXT,
    created_by TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    PRIMARY KEY (target, principal_id),
    UNIQUE (target, account)
);

-- The account (and its id) each operation acts on, taken when its grant was written: a revoke
-- copies its grant's, so it removes what was granted even if the mapping changed since.
ALTER TABLE target_ops ADD COLUMN account TEXT;
ALTER TABLE target_ops ADD COLUMN account_id TEXT;
