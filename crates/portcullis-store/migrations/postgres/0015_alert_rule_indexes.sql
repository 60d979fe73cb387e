-- Custom alert rules count one action's events for one target (or actor) within a window;
-- these indexes let that count touch only the key's events.
CREATE INDEX audit_events_action_target_time ON audit_events (action, target, time_us);
CREATE INDEX audit_events_action_actor_time ON audit_events (action, actor, time_us);
