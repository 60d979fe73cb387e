-- A session may end earlier than its lifetimes say: a conditional-access sign-in frequency
-- that applied when it was opened bounds it (NULL: only the lifetimes).
ALTER TABLE sessions ADD COLUMN ends_at_us BIGINT;
