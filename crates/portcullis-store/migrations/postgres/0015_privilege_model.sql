-- The privilege model (DESIGN.md): where and how a device code was requested, shown to the
-- person asked to approve it, so a phished code can be recognised ("did you start this?").
ALTER TABLE device_authorizations ADD COLUMN client_ip TEXT NOT NULL DEFAULT '';
ALTER TABLE device_authorizations ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
