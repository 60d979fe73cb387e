-- Just-in-time group membership (issue 22, item 5). An eligible assignment of the pseudo-role
-- `group-member` at `/groups/NAME` lets its holder activate membership of group NAME like a
-- role; the membership lasts while that activation is active. Everything that counts
-- membership reads these views instead of `group_members`, so an active membership counts
-- wherever a permanent one does:
-- - `group_memberships`: permanent members (`until_us` NULL) and active just-in-time members
--   (`until_us` the activation's end; readers that know the time also check it).
-- - `group_reach`: those, and the holders of a live eligible membership (`until_us` its end),
--   who can become members at will: counted where the question is who *can* reach a role
--   (the last Global Administrator guard, who can approve a change request).
CREATE VIEW group_memberships AS
    SELECT group_id, member_id, CAST(NULL AS BIGINT) AS until_us FROM group_members
    UNION ALL
    SELECT g.id AS group_id, r.principal_id AS member_id, r.ends_at_us AS until_us
    FROM activation_requests r JOIN principals g ON g.kind = 'group' AND r.scope = '/groups/' || g.name
    WHERE r.role = 'group-member' AND r.state = 'active';

CREATE VIEW group_reach AS
    SELECT group_id, member_id, until_us FROM group_memberships
    UNION ALL
    SELECT g.id AS group_id, a.principal_id AS member_id, a.ends_at_us AS until_us
    FROM role_assignments a JOIN principals g ON g.kind = 'group' AND a.scope = '/groups/' || g.name
    WHERE a.role = 'group-member' AND a.kind = 'eligible' AND a.ended_at_us IS NULL;

CREATE INDEX activation_requests_role_scope ON activation_requests (role, scope) WHERE state = 'active';
