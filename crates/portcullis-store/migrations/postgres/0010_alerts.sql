-- Alert channels and reliable delivery through the outbox.
--
-- Channels live in the database so every replica delivers the same way. Their configuration
-- holds no secret: a webhook's HMAC key is sealed with the master key; SMTP and SMS gateway
-- credentials are named environment variables read at delivery time.
--
-- Outbox rows are written in the same transaction as the event that caused them (alerts by
-- the built-in rules, one row per channel, and per recipient for SMS). A worker claims a due
-- row with a conditional update (so of several replicas one delivers it), records every
-- attempt, retries with backoff and dead-letters after the configured number.
CREATE TABLE alert_channels (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    config TEXT NOT NULL,
    sealed_secret BYTEA,
    min_severity TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_us BIGINT NOT NULL
);

ALTER TABLE outbox ADD COLUMN channel TEXT;
ALTER TABLE outbox ADD COLUMN severity TEXT;
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until_us BIGINT;
ALTER TABLE outbox ADD COLUMN delivered_at_us BIGINT;
-- `alerts retry` gives a dead-lettered message a fresh budget of attempts from here.
ALTER TABLE outbox ADD COLUMN budget_from BIGINT NOT NULL DEFAULT 0;

CREATE TABLE outbox_attempts (
    message_id TEXT NOT NULL REFERENCES outbox (id),
    attempt BIGINT NOT NULL,
    worker TEXT NOT NULL,
    started_at_us BIGINT NOT NULL,
    finished_at_us BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT,
    PRIMARY KEY (message_id, attempt)
);
