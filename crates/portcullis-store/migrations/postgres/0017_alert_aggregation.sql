-- Alert aggregation, the SMS cap, and channel configurations sealed under the master key.
--
-- alert_aggregates: the open window of each (rule, key, outcome) that alerted (failures and
-- successes apart, so failures cannot hide a success). The first alert of a window is
-- delivered at once; later ones are counted here by the writer, in the transaction
-- that commits their events (serialised on the chain head, so replicas share one count), into
-- one summary outbox row per channel due when the window ends. `summary_ids` names those
-- rows (JSON array); `detail` holds the bounded lists (JSON). Rows whose window has ended are
-- deleted by the writer.
CREATE TABLE alert_aggregates (
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    outcome TEXT NOT NULL,
    window_end_us BIGINT NOT NULL,
    summary_ids TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (rule, key, outcome)
);
CREATE INDEX alert_aggregates_end ON alert_aggregates (window_end_us);

-- The SMS cap counts messages by when they were first attempted (a suppressed message never
-- is); a message that goes out after suppressed ones names itself in their `reported_in`, so
-- it can say how many were held back.
ALTER TABLE outbox ADD COLUMN first_attempt_at_us BIGINT;
ALTER TABLE outbox ADD COLUMN reported_in TEXT;
CREATE INDEX outbox_channel_recipient ON outbox (channel, recipient, first_attempt_at_us);
CREATE INDEX outbox_reported_in ON outbox (reported_in) WHERE reported_in IS NOT NULL;

-- A channel's full configuration (URL with its path and query, every header value, the body
-- template) sealed under the master key with `alert_channel_config:NAME` as associated data;
-- `config` keeps only what lists show. Rows written before this migration are sealed by the
-- server on its first start (a migration has no key); until then `sealed_config` is NULL.
ALTER TABLE alert_channels ADD COLUMN sealed_config BYTEA;
