-- Custom alert rules: match an event's action (and optionally outcome, actor, target) and
-- fire when `count` such events for one key (the target or the actor) fall within
-- `window_seconds`. A rule fires at most once per key per window (alert_rule_fired), so a
-- burst is one alert, not one per event past the threshold. Evaluated by the writer in the
-- transaction that commits the event, like the built-in rules.
CREATE TABLE alert_rules (
    name TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    outcome TEXT,
    actor TEXT,
    target TEXT,
    group_by TEXT NOT NULL,
    count BIGINT NOT NULL,
    window_seconds BIGINT NOT NULL,
    severity TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_us BIGINT NOT NULL
);

CREATE TABLE alert_rule_fired (
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    fired_at_us BIGINT NOT NULL,
    PRIMARY KEY (rule, key)
);

-- The rules count recent events of one action for one target or actor.
CREATE INDEX audit_events_action_time ON audit_events (action, time_us);
