-- Containment (portcullis contain): when a principal was contained (NULL: it is not), and the
-- cut-off before which its access tokens are refused even once it is enabled again (an access
-- token is a signed JWT the store never saw; this is how it dies before its expiry).
ALTER TABLE principals ADD COLUMN contained_at_us BIGINT;
ALTER TABLE principals ADD COLUMN tokens_valid_after_us BIGINT;
